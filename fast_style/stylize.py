"""Instant stylization with a trained network: tensors and PIL images of any size, in memory.

:class:`Stylizer` wraps a network of any registered kind (:mod:`fast_style.networks`) loaded from a
model file and turns photos into stylized photos of exactly the same size. Kinds that take any
painting (``adain``) get it once per run through :meth:`Stylizer.set_style`. Images too big to run in one go are
tiled so that the result equals the untiled one: overlapping windows wider than the receptive field,
with every instance norm using statistics gathered over the whole image (see
:func:`fast_style.tiling.stylize_tiled`). The colour and strength options are applied here too
(:func:`finish`), so every caller (files, video, the Python API) gets the same result. Photos on
disk are :mod:`fast_style.stylize_files`'s job.

What is fast, and why (figures: docs/performance.md, measured with ``fast-style bench``):

* One forward pass is the whole cost; keep the :class:`Stylizer` and call it repeatedly (loading a
  model and the first call at a new size, which picks kernels, cost more than one image).
* ``precision="auto"`` runs bf16 where the hardware has native bf16 maths (CPUs with AMX-BF16 or
  AVX512-BF16, CUDA GPUs) and fp32 elsewhere: emulated bf16 is slower than fp32.
* On CPU, untiled passes run :func:`~fast_style.inference.inference_network`, an exact rewrite of
  the network (transposed convs for upsample + conv, group norm reading channels_last in place, a
  row-split final conv, and in fp32 Winograd residual convs).
* Batches of same-sized images amortise per-call overhead on GPUs; on CPU a batch of N costs about
  N single images. Time grows with the pixel count, so ``--size`` is the big lever.
* Tiling happens only when an image would not fit: it costs more time for less peak memory.

``refine=N`` (``--refine N``) follows the network with N optimisation steps on the model's own loss
(:mod:`fast_style.refine`): seconds per photo instead of milliseconds, for a picture closer to Gatys's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageOps
from torch import nn

from fast_style import refine as refinement
from fast_style.carried_paintings import read_paintings
from fast_style.checkpoint import read_model
from fast_style.errors import FastStyleError
from fast_style.images import image_to_tensor, resize_longer_side, tensor_to_image
from fast_style.inference import has_flat_photo
from fast_style.model_loss import Painting, build_loss, trained_loss, trained_painting
from fast_style.models import resolve_model_path
from fast_style.networks import kind_of
from fast_style.networks.multi_style import mix_of, parse_mix
from fast_style.paintings import load_painting, parse_styles
from fast_style.precision import Precision, resolve_precision
from fast_style.runtime import resolve_device
from fast_style.tiling import HALO, check_tile

if TYPE_CHECKING:
    from fast_style.losses import PerceptualLoss

CPU_MAX_PIXELS = 4_000_000  # above this (per batch) CPU inference is tiled: activations get into GBs
CPU_TILE = 1024  # window side on CPU: big enough that the overlap costs little, small enough to be quick
# Whether untiled passes use inference_network() by default: on CPU, where it is much faster; not on
# CUDA, where it was faster at 512x512 but slower at 1024x1024 (docs/performance.md).
FAST_DEFAULT: dict[str, bool] = {"cpu": True, "cuda": False}
GPU_MEMORY_SHARE = 0.5  # fraction of free GPU memory one pass may plan to use


# ----------------------------------------------------------------------------- loading


def load_stylizer(model: str | Path, *, device: str = "auto", precision: str = "auto",
                  channels_last: bool = False, fast: bool | None = None, compile: bool = False) -> Stylizer:
    """Load a model file into a ready-to-run :class:`Stylizer` (defaults: the fastest measured, see above;
    ``precision="auto"``: bf16 where the hardware has native bf16 maths, see :mod:`fast_style.precision`;
    ``fast=None``: the inference form where it measured faster, see :data:`FAST_DEFAULT`; ``compile``:
    see :class:`Stylizer`)."""
    torch_device = resolve_device(device)
    resolved = resolve_precision(precision, torch_device)
    network, metadata = read_model(resolve_model_path(str(model)))
    if fast is None:
        fast = FAST_DEFAULT.get(torch_device.type, False)
    return Stylizer(network, metadata, torch_device, resolved, channels_last, fast, compile,
                    resolve_model_path(str(model)))


# ----------------------------------------------------------------------------- colour


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (the Y of JPEG's YCbCr), (B,3,H,W) -> (B,1,H,W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("bchw,c->bhw", rgb, weights).unsqueeze(1)


def preserve_color(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luminance transfer: Y from ``stylized``, Cb/Cr from ``photo``, both (B,3,H,W) in [0,1].

    YCbCr -> RGB adds Y to every channel with weight 1, so swapping Y is the same as adding the
    luma difference to the photo; the only loss of chroma is clamping where the result leaves [0,1].
    """
    return (photo + (luminance(stylized) - luminance(photo))).clamp(0.0, 1.0)


def blend(stylized: torch.Tensor, photo: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength`` 0 gives the photo exactly, 1 the stylization, in between a linear mix."""
    return torch.lerp(photo, stylized, strength)


def finish(stylized: torch.Tensor, photo: torch.Tensor, *, keep_colors: bool, strength: float) -> torch.Tensor:
    """Apply the user's colour and strength options to a network output (``photo`` on any device)."""
    photo = photo.to(stylized.device, torch.float32)
    if keep_colors:
        stylized = preserve_color(stylized, photo)
    return stylized if strength == 1.0 else blend(stylized, photo, strength)


# ----------------------------------------------------------------------------- the stylizer


@dataclass
class Options:
    """How each photo is prepared and finished: the flags that are not about files or devices."""

    size: int | None = None
    preserve_color: bool = False
    strength: float = 1.0
    tile: int | None = None
    keep_alpha: bool = False
    batch_size: int = 1
    overwrite: bool = False
    refine: int = 0  # optimisation steps after the network (fast_style.refine); 0: the network's picture

    def __post_init__(self) -> None:
        """Refuse impossible values before any model is loaded or image read."""
        self.refine = refinement.parse_steps(self.refine)
        if self.size is not None and self.size < 1:
            raise FastStyleError(f"--size {self.size}: must be a positive number of pixels (the longer side)")
        if not 0.0 <= self.strength <= 1.0:
            raise FastStyleError(f"--strength {self.strength}: must be between 0 (the photo) and 1 (full style)")
        if self.tile is not None:
            check_tile(self.tile)
        if self.batch_size < 1:
            raise FastStyleError(f"--batch-size {self.batch_size}: must be at least 1")


@dataclass
class Stylizer:
    """A loaded network, ready to stylize tensors or PIL images; keep one and call it repeatedly."""

    model: nn.Module
    metadata: dict
    device: torch.device
    precision: Precision = Precision("fp32", "asked for")  # and why (see fast_style.precision), for reports
    channels_last: bool = False
    fast: bool = False  # untiled passes run inference_network(model): same outputs, cheaper layers
    # torch.compile untiled passes (CUDA graphs on CUDA): each new image shape costs a compilation of
    # seconds, so it pays only for long runs of same-sized images (--size) on a GPU (docs/performance.md).
    compile: bool = False
    path: Path | None = None  # the model file, whose carried paintings refinement reads

    def __post_init__(self) -> None:
        # Winograd on CPU in fp32 only: cuDNN picks its own algorithms, and bf16 would lose too much.
        self.winograd = self.fast and self.device.type == "cpu" and self.precision.dtype == torch.float32
        self.source, self.kind = self.model, kind_of(self.model)  # the network as loaded, and its kind
        # Multi-style models (johnson2016_multi): a style must be chosen by name before stylizing, and
        # what then runs is the plain network of that mix (see set_style).
        self.styles: list[str] = self.kind.style_names(self.model) if hasattr(self.kind, "style_names") else []
        # What refinement's loss scores against: the chosen styles (name, weight) of a multi-style model,
        # the paintings (image, weight) of an any-painting one, or the painting use_painting() gave.
        self.style_choice: list[tuple[str | torch.Tensor, float]] = []
        self.painting: Painting | None = None  # from use_painting()
        self._refine_loss: PerceptualLoss | None = None  # built on the first refinement, for the current choice
        if self.styles:
            self.model = self.network = self.tiled_network = None
        else:
            self._run(self.model)

    def _run(self, network: nn.Module) -> None:
        """Make ``network`` (fp32, as built) the one stylizing: on the device, in the precision, with its
        inference form and compilation where asked for."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        dtype = self.precision.dtype
        self.runs_as = kind_of(network)
        fast_form = self.runs_as.inference_form(network, self.winograd) if self.fast else None
        self.network = fast_form.to(self.device, dtype) if fast_form is not None else None
        self.model = network.to(self.device, dtype, memory_format=memory_format).eval()
        # Tiles run the network stage by stage, so they need it uncompiled.
        self.tiled_network = self.model if self.network is None else self.network
        if self.compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            self.network = torch.compile(self.model if self.network is None else self.network, mode=mode,
                                         dynamic=False)

    def auto_tile(self, height: int, width: int, batch_size: int = 1) -> int | None:
        """The tile side to use for this shape, or None when it fits in one pass.

        CPU: a pixel threshold (RAM is plentiful, but time and GBs of activations are not).
        CUDA: the largest tile whose estimated activations fit in a share of free GPU memory.
        """
        pixels = height * width * batch_size
        if self.device.type != "cuda":
            return CPU_TILE if pixels > CPU_MAX_PIXELS else None
        free, _total = torch.cuda.mem_get_info(self.device)
        budget_pixels = int(free * GPU_MEMORY_SHARE / self.bytes_per_pixel())
        if pixels <= budget_pixels:
            return None
        side = int((budget_pixels / batch_size) ** 0.5) // 64 * 64
        return max(side, 4 * HALO)

    def bytes_per_pixel(self) -> int:
        """Peak memory per input pixel of an untiled pass (each kind knows its own)."""
        self.require_style()
        return self.runs_as.bytes_per_pixel(self.model, torch.finfo(self.precision.dtype).bits // 8)

    def set_style(self, style: str | Path | Image.Image | torch.Tensor
                  | Sequence[tuple[str | Path | Image.Image | torch.Tensor, float]], alpha: float = 1.0) -> None:
        """The painting(s) every following photo is stylized with, for kinds that take any painting, or
        the style (mix) of a multi-style model (see :meth:`choose_style`).

        ``style``: a file, a PIL image, a (3,H,W) tensor, ``"a.jpg=0.5,b.jpg=0.5"``, or (painting, weight)
        pairs; ``alpha`` 0 keeps the photo's features, 1 is the full style. The paintings' statistics are
        computed here, once, at the size the model was trained with.
        """
        if self.styles:
            self.choose_style(style, alpha)
            return
        if not self.kind.takes_style:
            raise FastStyleError(f"--style: this model ({self.kind.name}) was trained for one painting and takes "
                                 "no --style or --alpha; use an adain model (e.g. --model arbitrary) for any painting, "
                                 "or a multi-style model (e.g. --model multi_style)")
        if isinstance(style, str):
            style = parse_styles(style)
        elif not isinstance(style, Sequence):
            style = [(style, 1.0)]
        size = (self.metadata.get("style") or {}).get("size")
        paintings = [(load_painting(painting, size), weight) for painting, weight in style]
        self.model.set_style(paintings, alpha)
        self.style_choice, self._refine_loss = paintings, None

    def choose_style(self, style: str | Mapping[str, float] | Sequence[tuple[str, float]] | torch.Tensor,
                     alpha: float = 1.0) -> None:
        """For a multi-style model: stylize with one of its styles, ``"wave"``, or a mix, ``"a=0.7,b=0.3"``,
        ``{"a": 0.7, "b": 0.3}``, (name, weight) pairs or a weight per style (normalised to sum to 1)."""
        if alpha != 1.0:
            raise FastStyleError("--alpha is for adain models; a multi-style model mixes styles (a=0.7,b=0.3) "
                                 "and blends with the photo through --strength")
        if isinstance(style, torch.Tensor):
            mix = mix_of(self.styles, dict(zip(self.styles, style.tolist())), "weights")
        elif isinstance(style, str):
            mix = parse_mix(style, self.styles)
        else:
            pairs = style.items() if isinstance(style, Mapping) else style
            mix = mix_of(self.styles, {str(name): float(weight) for name, weight in pairs}, str(style))
        self.source.select(mix)
        self._run(self.source.single_style())
        self.style_choice = [(name, float(weight)) for name, weight in zip(self.styles, mix.tolist()) if weight > 0]
        self._refine_loss = None

    def require_style(self) -> None:
        """A multi-style model with no style chosen yet is one clear line naming its styles."""
        if self.model is None:
            raise FastStyleError(f"this model holds {len(self.styles)} styles ({', '.join(self.styles)}): choose one "
                                 f"with --style {self.styles[0]}, or mix them: --style a=0.7,b=0.3 (Python: "
                                 f"stylizer.stylize(image, style='{self.styles[0]}'))")

    def stylize_tensor(self, batch: torch.Tensor, *, tile: int | None = None) -> torch.Tensor:
        """(B,3,H,W) in [0,1] on any device -> same shape, float32 in [0,1] on ``self.device``.

        No autograd; tiled when ``tile`` is given and smaller than the image, or when the image would
        not fit (see :meth:`auto_tile`). The result is an ordinary tensor (not an inference tensor), so
        callers may modify it in place.
        """
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B,3,H,W) batch, got shape {tuple(batch.shape)}")
        self.require_style()
        batch_size, _, height, width = batch.shape
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = batch.to(self.device, self.precision.dtype).contiguous(memory_format=memory_format)
        tile = tile or self.auto_tile(height, width, batch_size)
        with torch.inference_mode():
            plain = self.network is None or (self.winograd and has_flat_photo(batch))
            if tile is None or (height <= tile and width <= tile):
                result = (self.model if plain else self.network)(batch)
            else:
                result = self.runs_as.stylize_tiled(self.model if plain else self.tiled_network, batch, tile)
        return result.float().clone(memory_format=torch.contiguous_format)

    def use_painting(self, painting: str | Path | Image.Image | torch.Tensor) -> None:
        """The painting refinement scores against, for a single-painting model that does not carry its own
        (models written before models carried paintings); the network is unchanged."""
        if self.styles or self.kind.takes_style:
            raise FastStyleError("--style: this model's --style already names what refinement scores against "
                                 "(a style of a multi-style model, the painting of an any-painting one)")
        _, size, _ = trained_loss(self.metadata, self.path or "the model")
        label = str(painting) if isinstance(painting, (str, Path)) else "the painting"
        self.painting = Painting(load_painting(painting, size), label, Path(label).name)
        self._refine_loss = None

    def refine_loss(self) -> PerceptualLoss:
        """The model's own loss against the current painting(s), built on first use (fast_style.model_loss)."""
        if self._refine_loss is None:
            self._refine_loss = self._build_refine_loss()
        return self._refine_loss

    def _build_refine_loss(self) -> PerceptualLoss:
        self.require_style()
        model = self.path or "the model"
        carried = read_paintings(self.path) if self.path is not None else {}
        if self.styles:  # a multi-style row or mix: each painting with its own style weight
            pairs = []
            for name, weight in self.style_choice:
                config, _, _ = trained_loss(self.metadata, model, name)
                painting = trained_painting(self.metadata, model, carried, name, need="--refine")
                painting.weight = weight
                pairs.append((painting, config.style_weight))
        elif self.kind.takes_style:  # the paintings given with --style
            config, _, _ = trained_loss(self.metadata, model)
            if not self.style_choice:
                raise FastStyleError("this model stylizes with any painting: pass --style PAINTING")
            pairs = [(Painting(image, "--style", "--style", weight), config.style_weight)
                     for image, weight in self.style_choice]
        else:
            config, _, _ = trained_loss(self.metadata, model)
            painting = self.painting or trained_painting(self.metadata, model, carried, need="--refine")
            pairs = [(painting, config.style_weight)]
        return build_loss(config, pairs, precision=self.precision.name, device=self.device, model=model)

    def refine(self, stylized: torch.Tensor, photos: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` optimisation steps on the model's loss from each network picture of ``stylized``
        ((B,3,H,W) from :meth:`stylize_tensor`) of ``photos``; one photo at a time, so a batch gives
        each photo the result it gets alone."""
        loss = self.refine_loss()
        photos = photos.to(self.device, torch.float32)
        return torch.cat([refinement.refine(image[None], photo[None], loss, steps).image
                          for image, photo in zip(stylized, photos)])

    def stylize(self, image: Image.Image, *, size: int | None = None, preserve_color: bool = False,
                strength: float = 1.0, tile: int | None = None, style=None, alpha: float = 1.0,
                refine: int = 0) -> Image.Image:
        """Stylize a PIL image (any mode; EXIF orientation applied; alpha, if any, kept) -> PIL image.

        The output has exactly the input's size, or a longer side of ``size`` when given. ``style`` and
        ``alpha``: see :meth:`set_style` (kept for later calls; without ``style`` the last one is used).
        ``refine``: optimisation steps on the model's loss after the network (see :mod:`fast_style.refine`;
        the painting is the one the model carries, or see :meth:`use_painting`).
        """
        if style is not None:
            self.set_style(style, alpha)
        options = Options(size=size, preserve_color=preserve_color, strength=strength, tile=tile, refine=refine)
        photo = prepare_photo(ImageOps.exif_transpose(image), options.size)
        return tensor_to_image(stylize_batch(self, [photo], options)[0])


def prepare_photo(image: Image.Image, size: int | None) -> torch.Tensor:
    """Resize (longer side = ``size``) and convert to a (3|4,H,W) tensor; 16-bit/CMYK/greyscale become RGB."""
    if size is not None:
        image = resize_longer_side(image, size)
    return image_to_tensor(image)


def check_finite_output(result: torch.Tensor, photos: torch.Tensor | None = None) -> None:
    """A network whose finite weights still overflow gives NaN, which would be written as a black image
    with exit 0, or saturates to one flat colour: refuse both (it does so for every photo). ``photos``
    (the (B,3,H,W) batch stylized): a flat result counts only where its photo is not flat itself."""
    if not bool(torch.isfinite(result).all()):
        raise FastStyleError("the model produced NaN or infinite pixels; its weights are broken (too large "
                             "or altered): retrain or re-download it")
    if photos is not None and result.numel():
        levels = result[:, :3].mul(255.0).round().flatten(2)  # (B, 3, pixels) in 8-bit levels
        flat = (levels.amax(-1) == levels.amin(-1)).all(-1)
        spread = photos[:, :3].flatten(2).to(result.device).float().aminmax(dim=-1)  # per channel, over pixels
        varied = ((spread.max - spread.min) > 8 / 255).any(-1)  # a photo with something in it
        if bool((flat & varied).any()):
            raise FastStyleError("the model turned the photo into one flat colour; its weights are broken (too "
                                 "large or altered): retrain or re-download it")


def stylize_batch(stylizer: Stylizer, photos: list[torch.Tensor], options: Options) -> list[torch.Tensor]:
    """Same-sized (3|4,H,W) photos -> finished (3|4,H,W) CPU results, alpha re-attached."""
    batch = torch.stack([photo[:3] for photo in photos])
    stylized = stylizer.stylize_tensor(batch, tile=options.tile)
    if options.refine:  # before the colour and strength options, which apply to the refined picture
        stylized = stylizer.refine(stylized, batch, options.refine)
    result = finish(stylized, batch, keep_colors=options.preserve_color, strength=options.strength).cpu()
    check_finite_output(result, batch)
    return [torch.cat([styled, photo[3:]]) for styled, photo in zip(result, photos)]
