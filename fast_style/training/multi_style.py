"""Training one network for several paintings (``style_images: [a.jpg, b.jpg, ...]``), or adding paintings to one.

The trainer (:mod:`fast_style.training.trainer`) owns the loop, photos, checkpoints, logging and precision; this
module is the conditional network's step. Every image of a batch is stylized with one painting's row
and scored against that painting's style targets (the perceptual loss takes one target per image),
each painting with its own style weight and the size its targets were taken at.

**Which painting each image gets** (``style_assignment``): ``per_image`` deals the paintings out in
shuffled rounds over the run's images, so every painting is seen equally often and every batch mixes
several; ``per_batch`` gives a whole batch one painting (magenta's way). Both depend only on (seed,
step), so a resumed run assigns exactly what an uninterrupted one would (docs/recipe.md has the
measurement behind the default).

**Adding paintings** (``init_from: MODEL``): the network starts as MODEL (a multi-style model, or a
single-painting one whose painting becomes the first row), with a row for each new painting in
``style_images``, initialised to the mean of the existing rows. ``trainable: norm`` then trains only the
rows of the ``style_images`` paintings: every convolution and every other row keeps its exact bits, so
the styles already in MODEL stylize exactly as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.checkpoint import read_model
from fast_style.config import to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import load_image
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.model_file import is_int
from fast_style.models import resolve_model_path
from fast_style.networks.multi_style import ARCHITECTURE, MultiStyleConfig, MultiStyleNet
from fast_style.training.tasks import register
from fast_style.vgg import describe

ASSIGNMENT_SEED_OFFSET = 5_555_555  # keeps painting draws apart from the photo sampler's seeds
StyleAssignment = Literal["per_image", "per_batch"]


@dataclass
class StylePainting:
    """An entry of ``style_images`` written as a mapping: a painting with its own size and style weight
    (``{image: a.jpg, size: 384, style_weight: 20}``); a plain path takes ``style_size`` and
    ``loss.style_weight``."""

    image: str | None = None
    size: int | None = None
    style_weight: float | None = None


@dataclass
class Painting:
    """A painting of the run, resolved: its row's name, file, size and style weight."""

    name: str
    image: str
    size: int
    style_weight: float

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "image": self.image, "size": self.size, "style_weight": self.style_weight}


def unique_names(paths: list[str]) -> list[str]:
    """File stems, numbered where two paintings share one (``wave``, ``wave_2``)."""
    seen: Counter[str] = Counter()
    names = []
    for path in paths:
        stem = Path(path).stem
        seen[stem] += 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def resolve_paintings(config: Any) -> list[Painting]:
    """``style_images`` as :class:`Painting` entries; a wrong entry is one line naming it."""
    entries = config.style_images or []
    if not entries:
        raise FastStyleError("a multi-style network needs paintings: set style_images=[a.jpg, b.jpg]")
    if config.style_image:
        raise FastStyleError("set style_image (one painting) or style_images (several in one network), not both")
    paths, sizes, weights = [], [], []
    for number, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = StylePainting(image=entry)
        if not entry.image:
            raise FastStyleError(f"style_images[{number}]: give the painting as image: PATH")
        if entry.size is not None and entry.size <= 0 or entry.style_weight is not None and entry.style_weight < 0:
            raise FastStyleError(f"style_images[{number}] ({entry.image}): size must be above 0 and "
                                 "style_weight 0 or more")
        paths.append(entry.image)
        sizes.append(entry.size or config.style_size)
        weights.append(config.loss.style_weight if entry.style_weight is None else entry.style_weight)
    return [Painting(name, path, size, weight)
            for name, path, size, weight in zip(unique_names(paths), paths, sizes, weights)]


def shuffled_round(styles: int, seed: int, round_: int) -> torch.Tensor:
    """The order of the paintings in round ``round_`` of the run."""
    generator = torch.Generator().manual_seed((seed + ASSIGNMENT_SEED_OFFSET) * 1_000_003 + round_)
    return torch.randperm(styles, generator=generator)


def style_assignment(styles: int, seed: int, first: int, count: int) -> torch.Tensor:
    """The painting (0..styles-1) at positions ``first..first+count-1`` of the run: images for
    ``per_image``, steps for ``per_batch``.

    Rounds of ``styles`` consecutive positions each hold every painting once, in an order shuffled by
    (seed, round): balanced at every point of the run, and a function of the position alone.
    """
    parts, position, end = [], first, first + count
    while position < end:
        round_, place = divmod(position, styles)
        take = min(styles - place, end - position)
        parts.append(shuffled_round(styles, seed, round_)[place:place + take])
        position += take
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def assignment_counts(styles: int, seed: int, positions: int) -> torch.Tensor:
    """How often each painting is assigned over the run's first ``positions`` positions."""
    rounds, rest = divmod(positions, styles)
    counts = torch.full((styles,), rounds, dtype=torch.long)
    counts[shuffled_round(styles, seed, rounds)[:rest]] += 1
    return counts


def base_network(init_from: str) -> tuple[MultiStyleNet, list[dict[str, Any]]]:
    """The trained model to start from, as a multi-style network, and its paintings' records.

    A single-painting (johnson2016) model becomes a multi-style network of one row: its norms' parameters.
    """
    with naming(f"init_from={init_from}"):
        network, metadata = read_model(resolve_model_path(init_from))
    if isinstance(network, MultiStyleNet):
        records = metadata.get("styles")
        if not isinstance(records, list) or len(records) != len(network.styles):
            records = [{"name": name} for name in network.styles]
        return network, records
    if network.config.architecture != "johnson2016":
        raise FastStyleError(f"init_from={init_from}: a {network.config.architecture} model; paintings can be added "
                             "to a johnson2016 or johnson2016_multi model")
    style = metadata.get("style") if isinstance(metadata.get("style"), dict) else {}
    name = str(style.get("name") or Path(init_from).stem)
    converted = MultiStyleNet(MultiStyleConfig(network.config.width, network.config.residual_blocks, [name]))
    shapes = {key: value.shape for key, value in converted.state_dict().items()}  # norms: (channels,) -> (1, channels)
    converted.load_state_dict({key: value.reshape(shapes[key]) for key, value in network.state_dict().items()})
    return converted, [{"name": name, **{key: style[key] for key in ("image", "size") if key in style}}]


@torch.no_grad()
def extended(base: MultiStyleNet, names: list[str]) -> MultiStyleNet:
    """``base`` with a row for each of ``names`` it lacks, each the mean of ``base``'s rows."""
    added = [name for name in names if name not in base.styles]
    network = MultiStyleNet(replace(base.config, styles=base.styles + added))
    state = base.state_dict()
    for key, value in network.state_dict().items():
        old = state[key]
        if old.shape != value.shape:  # a norm's (styles, channels) rows
            old = torch.cat([old, old.mean(0, keepdim=True).expand(len(added), -1)])
        value.copy_(old)
    return network


def freeze_all_but_rows(network: MultiStyleNet, rows: list[int]) -> list[nn.Parameter]:
    """Train only ``rows`` of every conditional norm: the convolutions stop needing gradients, and the
    other rows' gradients are zeroed, so Adam (whose moments then stay 0) leaves them bit-identical."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    keep = torch.zeros(len(network.styles), 1)
    keep[rows] = 1.0
    trainable = []
    for norm in network.norms:
        for parameter in (norm.weight, norm.bias):
            parameter.requires_grad_(True)
            parameter.register_hook(lambda grad, keep=keep: grad * keep.to(grad.device, grad.dtype))
            trainable.append(parameter)
    return trainable


class MultiStyleTask:
    """The training step of :class:`~fast_style.training.trainer.Trainer` for a conditional network (see the module)."""

    def __init__(self, config: Any, device: torch.device, memory_format: torch.memory_format):
        self.config, self.memory_format = config, memory_format
        self.paintings = resolve_paintings(config)
        names = [painting.name for painting in self.paintings]
        if config.trainable == "norm" and not config.init_from:
            raise FastStyleError("trainable=norm trains only the paintings' norm rows, so it needs trained "
                                 "convolutions: set init_from=MODEL (a bundled name or a model.safetensors)")
        self.earlier: list[dict[str, Any]] = []
        if config.init_from:
            base, self.earlier = base_network(config.init_from)
            model = extended(base, names)
        else:
            model = MultiStyleNet(MultiStyleConfig(config.model.width, config.model.residual_blocks, names))
        self.rows = [model.styles.index(name) for name in names]  # the rows this run trains, in style_images order
        self._trainable = freeze_all_but_rows(model, self.rows) if config.trainable == "norm" else None
        self.model = model.to(device, memory_format=memory_format)
        self.model.use_cheaper_layers(device.type == "cpu")  # same function, cheaper on CPU
        self.network = self.model  # what model.safetensors stores
        self.loss = PerceptualLoss.from_config(replace(config.loss, style_weight=1.0), config.precision).to(device)
        self.style_targets = self._style_targets(device)
        self.style_weights = torch.tensor([painting.style_weight for painting in self.paintings], device=device)
        self.row_of = torch.tensor(self.rows, device=device)  # painting index -> the model's row

    def _style_targets(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Each painting's style statistics (at its own size), stacked: layer -> (paintings, ...)."""
        per_painting = []
        for painting in self.paintings:
            image = load_image(painting.image, size=painting.size).unsqueeze(0).to(device)
            with naming(painting.image):  # e.g. too small for the loss network
                self.loss.set_style(image)
            per_painting.append(self.loss.style_targets)
        return {layer: torch.cat([targets[layer] for targets in per_painting]) for layer in per_painting[0]}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates: every parameter, or (``trainable: norm``) the norms' rows."""
        return list(self.model.parameters()) if self._trainable is None else self._trainable

    def assigned(self, step: int, count: int) -> torch.Tensor:
        """Which painting (index into ``self.paintings``) each of this rank's ``count`` images gets at ``step``."""
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        styles, seed = len(self.paintings), self.config.seed
        if self.config.style_assignment == "per_batch":
            return style_assignment(styles, seed, step, 1).expand(count)
        return style_assignment(styles, seed, (step * world + rank) * count, count)

    def use(self, paintings: torch.Tensor) -> torch.Tensor:
        """Stylize with, and score against, these paintings (one index per image); returns each image's
        style weight."""
        paintings = paintings.to(self.style_weights.device)
        self.model.select(F.one_hot(self.row_of[paintings], len(self.model.styles)).float())
        self.loss.style_targets = {layer: targets[paintings] for layer, targets in self.style_targets.items()}
        return self.style_weights[paintings]

    def terms(self, forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., LossTerms],
              photos: torch.Tensor, step: int) -> LossTerms:
        style_weights = self.use(self.assigned(step, photos.shape[0]))
        terms = score(forward(photos), content=photos)
        return replace(terms, style=terms.style * style_weights)

    @torch.no_grad()
    def validate(self, photos: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """Each painting's loss on the held-out photos (``loss_NAME``; ``loss`` etc. are their mean), and the
        photos stylized with every painting in turn, for TensorBoard."""
        self.model.eval()
        totals: dict[str, float] = {}
        pictures = []
        for index, painting in enumerate(self.paintings):
            style_weights = self.use(torch.full((photos.shape[0],), index, dtype=torch.long))
            stylized = self.model(photos.contiguous(memory_format=self.memory_format)).float()
            with self.loss.network.computing("fp32"):  # comparable across precisions, and exact
                terms = self.loss(stylized, content=photos)
            terms = replace(terms, style=terms.style * style_weights).as_floats()
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value / len(self.paintings)
            totals[f"loss_{painting.name}"] = terms["loss"]
            pictures.append(stylized.cpu())
        self.model.train()
        return totals, torch.cat(pictures)

    def checkpoint_record(self) -> dict[str, Any]:
        """The ``init_from`` model's style records as the run's first start read them: a resumed leg counts
        on from those, even if that file has since been replaced (e.g. re-bundled with this run's images)."""
        return {"earlier_styles": self.earlier}

    def restore_record(self, record: dict[str, Any]) -> None:
        """Take the earlier style records back from a checkpoint (older checkpoints have none: keep the file's)."""
        earlier = record.get("earlier_styles")
        if isinstance(earlier, list):
            self.earlier = earlier

    def images_seen(self, steps: int) -> dict[str, int]:
        """How many training images each of this run's paintings was assigned in its first ``steps`` steps."""
        batch, styles = self.config.batch_size, len(self.paintings)
        if self.config.style_assignment == "per_batch":
            counts = assignment_counts(styles, self.config.seed, steps) * batch
        else:
            counts = assignment_counts(styles, self.config.seed, steps * batch)
        return {painting.name: int(count) for painting, count in zip(self.paintings, counts)}

    def metadata(self, steps: int) -> dict[str, Any]:
        """``styles`` (one record per row, in order: the earlier model's, then this run's) and the loss.

        A row the ``init_from`` model already had keeps learning here, so its ``images_seen`` adds this
        run's images to the earlier model's: a trunk trained in many legs counts all of them.
        """
        config, seen = self.config, self.images_seen(steps)
        earlier = {record.get("name"): record for record in self.earlier}
        before = {name: record["images_seen"] for name, record in earlier.items()
                  if is_int(record.get("images_seen")) and record["images_seen"] >= 0}  # model.json is untrusted
        ours = {painting.name: {**painting.record(), "images_seen": seen[painting.name] + before.get(painting.name, 0),
                                "images_seen_this_run": seen[painting.name]}
                for painting in self.paintings}
        styles = [ours.get(name) or {**earlier.get(name, {}), "name": name} for name in self.model.styles]
        return {"styles": styles, "loss": to_dict(config.loss), "loss_network": describe(self.loss.network),
                "style_assignment": config.style_assignment, "init_from": config.init_from,
                "trainable": config.trainable}


register(ARCHITECTURE, MultiStyleTask)
