"""``johnson2016``'s training step: one painting per network (the network: :mod:`fast_style.networks.johnson2016`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from fast_style.config import to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import load_image
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.training.stability import step_generator, terms_with_stability
from fast_style.training.tasks import register
from fast_style.transformer import ARCHITECTURE, TransformerNet
from fast_style.vgg import describe


class JohnsonTask:
    """The training step of :class:`~fast_style.training.trainer.Trainer` for one painting: the network stylizes the
    photos and the perceptual loss scores them against the photos and the painting's Gram matrices
    (and, with ``stability.weight``, against its stylization of a shifted, noisy copy:
    :mod:`fast_style.training.stability`)."""

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


register(ARCHITECTURE, JohnsonTask)
