"""Measure temporal stabilisation on synthetic clips with exact motion (issue 19's bar).

For each clip (slow pans, a zoom, a hard cut between two photos) and each setting
(``STABILITY@HOLD``, as ``--stability``/``--hold`` of ``fast-style video``): the motion-compensated
flicker (exact motion) of the input, of frame-by-frame stylization and of the stabilised output,
their ratio (mean and worst pair), the mean per-frame perceptual loss terms (the model's own
training loss against its painting) relative to frame-by-frame, and, around the cut, how far the
stabilised frames are from frame-by-frame. Prints a JSON line per clip, then one JSON document.

    python3 scripts/measure_video.py --model wave --photos /work/shared/data/eval/kodak24 \
        --size 256x192 --frames 24 --stability 0.6@1,0.15@4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fast_style.carried_paintings import read_paintings
from fast_style.images import load_image
from fast_style.losses import PerceptualLoss
from fast_style.model_loss import trained_loss, trained_painting
from fast_style.stylize import Options, load_stylizer, stylize_batch
from fast_style.video.flicker import FlickerMeter, flicker
from fast_style.video.stabilize import Stabilizer
from fast_style.video.synthetic import exact_motions, pan_maps, render, zoom_maps


def clips(photos: list[np.ndarray], size: tuple[int, int], count: int) -> dict[str, tuple[list, list]]:
    """name -> (frames, exact motions)."""
    width, height = size
    result = {}
    for name, speed in (("pan_3px", (3.0, 0.0)), ("pan_1.3px_diagonal", (1.3, 0.7))):
        maps = pan_maps(count, (40.0, 40.0), speed)
        result[name] = (render(photos[0], maps, size, noise=2.0), exact_motions(maps, size))
    maps = zoom_maps(count, size, (photos[1].shape[1] / 2, photos[1].shape[0] / 2), 1.01)
    result["zoom_1%"] = (render(photos[1], maps, size, noise=2.0, seed=1), exact_motions(maps, size))
    half = count // 2
    first, second = pan_maps(half, (30.0, 30.0), (2.0, 0.0)), pan_maps(count - half, (60.0, 20.0), (2.0, 0.0))
    frames = render(photos[2], first, size, 2.0, seed=2) + render(photos[3], second, size, 2.0, seed=3)
    motions = exact_motions(first, size) + exact_motions(second, size)
    result["cut"] = (frames, motions)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wave")
    parser.add_argument("--photos", default="/work/shared/data/eval/kodak24")
    parser.add_argument("--size", default="256x192")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--stability", default="0.4,0.5,0.6,0.7,0@2,0.3@2,0@3,0.3@3",
                        help="settings to measure: STABILITY or STABILITY@HOLD; '' for frame by frame only "
                             "(the network's own stability)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--clips", default="pan_3px,pan_1.3px_diagonal,zoom_1%,cut")
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.split("x"))
    # "0.6" blends every frame; "0@3" holds the carried texture and renews it every 3rd frame.
    settings = [(float(value.partition("@")[0]), int(value.partition("@")[2] or 1))
                for value in args.stability.split(",") if value]
    files = sorted(Path(args.photos).glob("*.png"))[:4]
    photos = [load_image(path).permute(1, 2, 0).mul(255).round().byte().numpy() for path in files]
    stylizer = load_stylizer(args.model, device="cpu", precision=args.precision)
    config, _, _ = trained_loss(stylizer.metadata, args.model)
    loss = PerceptualLoss.from_config(config)
    painting = trained_painting(stylizer.metadata, args.model, read_paintings(stylizer.path))
    loss.set_style(painting.image.unsqueeze(0))

    def score(frames: list[np.ndarray], outputs: list[np.ndarray]) -> dict[str, float]:
        """Mean per-frame loss terms (frames scored one at a time: a batch would change nothing)."""
        images = torch.from_numpy(np.stack(outputs)).permute(0, 3, 1, 2).float()
        content = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return loss(images, content).as_floats()

    def change(terms: dict[str, float], base: dict[str, float]) -> dict[str, float]:
        return {name: terms[name] / base[name] - 1 for name in terms}

    report = {"model": args.model, "size": args.size, "frames": args.frames, "photos": [f.name for f in files],
              "motion": "exact", "clips": {}}
    for name, (frames, motions) in clips(photos, size, args.frames).items():
        if name not in args.clips.split(","):
            continue
        tensors = [torch.from_numpy(frame).permute(2, 0, 1).float() / 255 for frame in frames]
        styled = [result.permute(1, 2, 0).numpy() for result in stylize_batch(stylizer, tensors, Options())]
        inputs = [frame.astype(np.float32) / 255 for frame in frames]
        base = flicker(styled, motions)
        entry = {"input_flicker": flicker(inputs, motions), "frame_by_frame_flicker": base,
                 "frame_by_frame_loss": score(frames, styled), "stabilised": {}}
        for stability, hold in settings:
            stabilizer = Stabilizer(stability, hold=hold)
            steps = [stabilizer(frame, out) for frame, out in zip(frames, styled)]
            outputs = [step.output for step in steps]
            meter = FlickerMeter()
            for output, motion in zip(outputs, motions):
                meter.add(output, motion)
            value = meter.value
            row = {"flicker": value, "ratio": value / base, "worst_pair_ratio": meter.worst / base,
                   "loss_change": change(score(frames, outputs), entry["frame_by_frame_loss"]),
                   "cuts_detected": [i for i, step in enumerate(steps) if step.cut and i > 0],
                   "trusted_min": min(step.motion.trusted for step in steps if step.motion is not None),
                   "trusted_at_cuts": [stabilizer.flow.motion(frames[i - 1], frames[i]).trusted
                                       for i, step in enumerate(steps) if step.cut and i > 0]}
            if name == "cut":
                half = args.frames // 2
                row["after_cut_mean_abs_vs_frame_by_frame"] = [
                    float(np.abs(outputs[i] - styled[i]).mean() * 255) for i in range(half, half + 4)]
                row["before_cut_mean_abs_vs_frame_by_frame"] = [
                    float(np.abs(outputs[i] - styled[i]).mean() * 255) for i in range(half - 3, half)]
            entry["stabilised"][f"{stability}@{hold}"] = row
        report["clips"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
