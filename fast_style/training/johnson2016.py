"""``johnson2016``'s training step: one painting per network (the network: :mod:`fast_style.networks.johnson2016`).

**Starting from a trained network** (``init_from: MODEL``): a single-painting model's weights, or a
multi-style model's convolutions with the mean of its paintings' norm rows, i.e. a network that
already paints, between the paintings it knows (docs/recipe.md measures the head start against a
random start). ``trainable: norm`` then trains only the instance norms' scales and shifts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from fast_style.checkpoint import read_model
from fast_style.config import to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import load_image
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.models import resolve_model_path
from fast_style.networks.multi_style import MultiStyleNet
from fast_style.training.stability import step_generator, terms_with_stability
from fast_style.training.tasks import register
from fast_style.transformer import ARCHITECTURE, ModelConfig, TransformerNet
from fast_style.vgg import describe


@torch.no_grad()
def start_network(init_from: str) -> TransformerNet:
    """The network ``init_from`` (a path or bundled name) gives a new painting: a johnson2016 model as it
    is, a multi-style one with each norm's rows averaged. Its size is the model's, whatever ``model`` says."""
    with naming(f"init_from={init_from}"):
        trained, _metadata = read_model(resolve_model_path(init_from))
    if trained.config.architecture not in (ARCHITECTURE, "johnson2016_multi"):
        raise FastStyleError(f"init_from={init_from}: holds a {trained.config.architecture} network; a painting's "
                             "network starts from a johnson2016 or johnson2016_multi model")
    network = TransformerNet(ModelConfig(trained.config.width, trained.config.residual_blocks))
    rows = isinstance(trained, MultiStyleNet)
    network.load_state_dict({key: value.mean(0) if rows and value.dim() == 2 else value
                             for key, value in trained.state_dict().items()})
    return network


def norm_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The instance norms' scales and shifts, the only parameters left trainable (``trainable: norm``)."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    norms = [module for module in network.modules() if isinstance(module, nn.InstanceNorm2d)]
    trainable = [parameter for norm in norms for parameter in (norm.weight, norm.bias)]
    for parameter in trainable:
        parameter.requires_grad_(True)
    return trainable


class JohnsonTask:
    """The training step of :class:`~fast_style.training.trainer.Trainer` for one painting: the network stylizes the
    photos and the perceptual loss scores them against the photos and the painting's Gram matrices
    (and, with ``stability.weight``, against its stylization of a shifted, noisy copy:
    :mod:`fast_style.training.stability`)."""

    def __init__(self, config: Any, device: torch.device, memory_format: torch.memory_format):
        if not config.style_image:
            raise FastStyleError("train needs a painting: set style_image=PATH (in the config or as an override)")
        self.config, self.memory_format = config, memory_format
        if config.trainable == "norm" and not config.init_from:
            raise FastStyleError("trainable=norm trains only the norms, so it needs trained convolutions: set "
                                 "init_from=MODEL (a bundled name or a model.safetensors)")
        network = start_network(config.init_from) if config.init_from else TransformerNet(config.model)
        if config.init_from and network.config != config.model:
            raise FastStyleError(f"init_from={config.init_from} is a network of width {network.config.width} with "
                                 f"{network.config.residual_blocks} residual blocks, but model asks for width "
                                 f"{config.model.width} with {config.model.residual_blocks}: drop the model "
                                 "settings to start from it, or set init_from=null to train that size from scratch")
        self._trainable = norm_parameters(network) if config.trainable == "norm" else None
        self.model = network.to(device, memory_format=memory_format)
        self.model.use_cheaper_layers(device.type == "cpu")  # same function, cheaper on CPU
        self.network = self.model  # what model.safetensors stores
        self.loss = PerceptualLoss.from_config(config.loss, config.precision).to(device)
        style = load_image(config.style_image, size=config.style_size).unsqueeze(0).to(device)
        with naming(config.style_image):  # e.g. too small for the loss network
            self.loss.set_style(style)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates: every parameter, or (``trainable: norm``) the norms' scales and shifts."""
        return list(self.model.parameters()) if self._trainable is None else self._trainable

    def terms(self, forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., LossTerms],
              photos: torch.Tensor, step: int) -> LossTerms:
        """The perceptual terms, with the stability term where ``stability.weight`` asks for it."""
        settings = self.config.stability
        if not settings.weight:
            return score(forward(photos), content=photos)
        generator = step_generator(self.config.seed, step)
        return terms_with_stability(forward, score, photos, settings, generator, self.memory_format)

    @torch.no_grad()
    def validate(self, photos: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """Loss on the held-out photos, and their stylizations for TensorBoard."""
        self.model.eval()
        stylized = self.model(photos.contiguous(memory_format=self.memory_format)).float()
        with self.loss.network.computing("fp32"):  # comparable across precisions, and exact
            terms = self.loss(stylized, content=photos).as_floats()
        self.model.train()
        return terms, stylized.cpu()

    def metadata(self, steps: int) -> dict[str, Any]:
        config = self.config
        return {"style": {"image": config.style_image, "name": Path(config.style_image).stem, "size": config.style_size},
                "loss": to_dict(config.loss), "loss_network": describe(self.loss.network),
                "init_from": config.init_from, "trainable": config.trainable}  # where the network started


register(ARCHITECTURE, JohnsonTask)
