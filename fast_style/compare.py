"""What the trained network buys against Gatys optimisation, measured honestly.

``compare`` scores the network and the optimisation baseline with the loss the model was
trained with (rebuilt from its ``model.json``: same loss network, layers and weights), on
the same photos at the same size, against the painting at the scale the network was trained
against. Every number is computed on the 8-bit image exactly as it is written to disk, so a
reader can reload any PNG and get the reported loss back.

The baseline runs once per photo for the largest step budget; the smaller budgets are
snapshots of that run, timed by when the run reached them (L-BFGS's first N steps do not
depend on how many follow, so a snapshot *is* an N-step run). With ``refine``, the network's
picture is refined the same way (:mod:`fast_style.refine`), and ``network+N`` is timed as the
network plus the N steps, so the table runs from instant to optimised.

This module obtains the numbers; :mod:`fast_style.compare_report` summarises and renders them,
and :mod:`fast_style.pictures` lays out the grid.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from fast_style.carried_paintings import read_paintings
from fast_style.compare_report import REPORT_FILES, average, cell_label, times_faster, write_report
from fast_style.config import to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import find_images, load_image, open_image, save_image, tensor_to_image
from fast_style.losses import PerceptualLoss
from fast_style.model_loss import Painting, build_loss, given_painting, trained_loss, trained_painting
from fast_style.optimize import check_finite_result, optimize_image, quantize
from fast_style.pictures import make_grid
from fast_style.precision import resolve_precision
from fast_style.refine import refine as refine_picture
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
    check_finite_output(output, photo)
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


def run_refine(start: torch.Tensor, photo: torch.Tensor, loss: PerceptualLoss, steps: Sequence[int], *,
               device: torch.device, desc: str,
               show_progress: bool | None = None) -> dict[int, tuple[torch.Tensor, float]]:
    """One refinement of the network's picture ``start`` to ``max(steps)``; for each budget its image and
    the time to reach it (after an untimed one-step warm-up, like :func:`run_gatys`)."""
    refine_picture(start, photo, loss, 1, show_progress=False)
    reached: dict[int, float] = {}
    started = clock(device)

    def on_step(step: int, image: torch.Tensor) -> None:
        if step in steps:
            reached[step] = clock(device) - started

    result = refine_picture(start, photo, loss, max(steps), snapshots=tuple(steps), on_step=on_step, desc=desc,
                            show_progress=show_progress)
    return {step: (result.snapshots[step], reached[step]) for step in steps}


def compared_painting(stylizer: Stylizer, model: str | Path, style: str | None, style_name: str | None,
                      size: int) -> Painting:
    """``--style PAINTING``, else the painting the model (or its style ``style_name``) was trained on: the
    copy it carries, or the file its model.json records where that is still there."""
    if style:
        return given_painting(style, size)
    if stylizer.kind.takes_style:
        raise FastStyleError("compare needs --style PAINTING: this model takes any painting")
    carried = read_paintings(stylizer.path) if stylizer.path is not None else {}
    return trained_painting(stylizer.metadata, model, carried, style_name)


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
            device: str = "auto", precision: str = "auto", refine: Sequence[int] = (),
            show_progress: bool | None = None) -> dict[str, Any]:
    """Stylize each photo with the network, the network refined by each of ``refine`` steps, and by
    optimisation; score them all, write the report.

    ``precision`` is what the network and the optimisation run in (see :mod:`fast_style.precision`);
    every image is scored in fp32, so reports of different precisions compare.

    Writes ``images/<photo>_<method>.png``, ``report.json``, ``grid.png`` and ``report.html``
    under ``output`` and returns the report.
    """
    steps, refine = sorted(set(steps)), sorted(set(refine))
    torch_device = resolve_device(device)
    seed_everything(0)
    resolved = resolve_precision(precision, torch_device)
    stylizer = load_stylizer(model, device=device, precision=resolved.name)
    # A multi-style model is compared one style at a time: --style names it (not a painting file).
    style_name = style if stylizer.styles else None
    config, style_size, _ = trained_loss(stylizer.metadata, model, style_name)
    if style_name is not None:
        stylizer.choose_style(style_name)
        style = None  # the painting is the one that row was trained on
    paths = find_images([str(photo) for photo in photos], exclude=[output])
    methods = ["network", *[f"network+{n}" for n in refine], *[f"gatys-{n}" for n in steps]]
    # Per-photo results are never a photo or a special file (the command checks the report files).
    results_files = [f"images/{stem}_{method}.png" for stem in unique_stems(paths) for method in methods]
    check_output_folder(output, results_files, inputs=[*paths, style], overwrite=True)
    painting = compared_painting(stylizer, model, style, style_name, style_size)
    # The painting model.json names (its label, where it came from a file) is an input too.
    check_output_folder(output, [*REPORT_FILES, *results_files], inputs=[painting.label], overwrite=True)
    if stylizer.kind.takes_style:  # the network sees the same painting the loss scores against
        stylizer.set_style([(painting.image, 1.0)])
    loss = build_loss(config, [(painting, config.style_weight)], precision=resolved.name, device=torch_device,
                      model=model)
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
        if refine:
            network_image, network_seconds = outputs["network"]
            refined = run_refine(network_image, photo, loss, refine, device=torch_device, desc=f"refine {stem}",
                                 show_progress=show_progress)
            outputs.update({f"network+{n}": (image, network_seconds + seconds)
                            for n, (image, seconds) in refined.items()})
        gatys = run_gatys(photo, loss, steps, optimizer=optimizer, device=torch_device,
                          desc=f"gatys {stem}", show_progress=show_progress)
        outputs.update({f"gatys-{n}": value for n, value in gatys.items()})
        rows = write_results(path, photo, outputs, loss, output / "images" / stem)
        results += rows
        grid_rows.append([(tensor_to_image(photo), path.name), (tensor_to_image(painting.image), painting.name),
                          *[(open_image(row["image"]), cell_label(row)) for row in rows]])

    averages = average(results, methods)
    report = {
        "model": str(model), "style": {"image": painting.label, "size": style_size,
                                       **({"name": style_name} if style_name else {})},
        "photos": [str(path) for path in paths], "size": size, "steps": steps, "refine": refine,
        "optimizer": optimizer,
        "device": device_label(torch_device), **resolved.as_dict(), "loss": to_dict(config), "loss_network": describe(loss.network),
        "results": results, "averages": averages,
        "speedup": {method: averages[method]["speedup"] for method in methods[1:]},
        "grid": "grid.png", "html": "report.html",
    }
    grid = make_grid(["photo", "painting", "network", *[f"network+{n}" for n in refine],
                      *[f"Gatys-{n}" for n in steps]], grid_rows)
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
