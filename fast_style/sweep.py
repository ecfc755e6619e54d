"""``fast-style sweep``: one optimisation per style/content weight ratio, to show the balance.

Choosing loss weights is the first thing anyone tuning a style does; a sweep answers it with
pictures (a labelled strip and an animation, laid out by :mod:`fast_style.pictures`) and the
numbers behind them (``sweep.json``). It involves no trained network, so it lives apart from
:mod:`fast_style.compare`, which measures one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

from fast_style.compare import device_label
from fast_style.config import to_dict
from fast_style.errors import FastStyleError
from fast_style.images import atomic_write_bytes, load_image, save_image, tensor_to_image
from fast_style.losses import PerceptualLoss
from fast_style.optimize import OptimizeConfig, check_finite_result, optimize_image
from fast_style.pictures import hstack, label_frames, write_gif
from fast_style.precision import resolve_precision
from fast_style.runtime import resolve_device, seed_everything
from fast_style.safety import make_result_folder
from fast_style.vgg import build_loss_network, describe


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
    make_result_folder(output, "frames", "sweep folder")
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
