"""``johnson2016``: Johnson et al.'s transformation network, one painting per trained network.

The network itself is :mod:`fast_style.transformer`; its inference form
:mod:`fast_style.inference`, its exact tiling :mod:`fast_style.tiling`. This module is the
registry entry that ties them to model files, stylize, export and compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from fast_style.config import to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import load_image
from fast_style.inference import inference_network
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.networks import ExportSpec, register
from fast_style.networks.stability import step_generator, terms_with_stability
from fast_style.tiling import stylize_tiled
from fast_style.transformer import ARCHITECTURE, ModelConfig, TransformerNet
from fast_style.vgg import describe


class Johnson2016:
    """Registry entry for :class:`~fast_style.transformer.TransformerNet`."""

    name = ARCHITECTURE
    takes_style = False

    def build(self, settings: dict[str, Any]) -> TransformerNet:
        return TransformerNet(ModelConfig(**settings))

    def stored_tensors(self, network: TransformerNet) -> dict[str, torch.Tensor]:
        return network.state_dict()

    def load_tensors(self, network: TransformerNet, tensors: dict[str, torch.Tensor]) -> None:
        network.load_state_dict({name: value.float() for name, value in tensors.items()})

    def inference_form(self, network: TransformerNet, winograd: bool) -> TransformerNet:
        return inference_network(network, winograd=winograd)

    def stylize_tiled(self, network: TransformerNet, batch: torch.Tensor, tile: int) -> torch.Tensor:
        return stylize_tiled(network, batch, tile)

    def bytes_per_pixel(self, network: TransformerNet, element: int) -> int:
        """Measured 6.2 x width x element size on an H100 (the last upsample's 2w full-size channels,
        their padded copy and the w-channel output, plus workspaces); 7x leaves a margin."""
        return 7 * network.config.width * element

    def export_spec(self, network: TransformerNet) -> ExportSpec:
        from fast_style.export import ExportableNet  # export imports the registry: import here, not at the top

        axes = {0: "batch", 2: "height", 3: "width"}
        return ExportSpec(ExportableNet(network).eval(), ["image"], {"image": axes, "stylized": axes},
                          lambda shape, generator: (torch.rand(shape, generator=generator),), network)

    def training(self, config: Any, device: torch.device, memory_format: torch.memory_format) -> JohnsonTask:
        return JohnsonTask(config, device, memory_format)


class JohnsonTask:
    """The training step of :class:`fast_style.train.Trainer` for one painting: the network stylizes the
    photos and the perceptual loss scores them against the photos and the painting's Gram matrices
    (and, with ``stability.weight``, against its stylization of a shifted, noisy copy:
    :mod:`fast_style.networks.stability`)."""

    def __init__(self, config: Any, device: torch.device, memory_format: torch.memory_format):
        if not config.style_image:
            raise FastStyleError("train needs a painting: set style_image=PATH (in the config or as an override)")
        self.config, self.memory_format = config, memory_format
        self.model = TransformerNet(config.model).to(device, memory_format=memory_format)
        self.model.use_cheaper_layers(device.type == "cpu")  # same function, cheaper on CPU
        self.network = self.model  # what model.safetensors stores
        self.loss = PerceptualLoss.from_config(config.loss, config.precision).to(device)
        style = load_image(config.style_image, size=config.style_size).unsqueeze(0).to(device)
        with naming(config.style_image):  # e.g. too small for the loss network
            self.loss.set_style(style)

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
                "loss": to_dict(config.loss), "loss_network": describe(self.loss.network)}


KIND = register(Johnson2016())
