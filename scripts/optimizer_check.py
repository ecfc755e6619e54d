"""Does Gatys optimisation keep improving the image that is actually saved?

For each photo (Kodak) against one painting (default starry_night), this prints as JSON the
loss of the *saved* image (clamped to [0, 1] and quantised to 8 bits, exactly what a PNG
holds) after 50, 100 and 300 iterations of:

* ``lbfgs``: fast_style's L-BFGS on image = sigmoid(z) with a strong-Wolfe line search;
* ``adam``: fast_style's Adam on pixels, projected into [0, 1] after every step;
* ``unbounded_lbfgs`` (the baseline, defined only here): the same L-BFGS (same history,
  learning rate and line search budget) directly on unbounded pixels, clamped only when
  saved, plus the fraction of its pixels outside [0, 1] and the loss it believes it has
  reached on the unclamped pixels.

``evaluations`` counts loss evaluations (forward + backward) over all iterations: the line
search can spend more than one per iteration.

The property fast_style needs: for ``lbfgs`` and ``adam`` the saved loss falls from each
checkpoint to the next (``falls`` in the summary). On 2 CPU cores use ``--size 128``.

    python3 scripts/optimizer_check.py --size 128 --photos 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

from fast_style.images import load_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.optimize import optimize_image, quantize
from fast_style.runtime import resolve_device, seed_everything

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS = ["kodim23.png", "kodim04.png", "kodim21.png", "kodim01.png", "kodim15.png", "kodim19.png"]


def unbounded_lbfgs(content: torch.Tensor, loss: PerceptualLoss, targets: dict[str, torch.Tensor],
                    checkpoints: list[int]) -> dict[str, dict[int, float]]:
    """The baseline: L-BFGS on raw pixels (no bound), clamped only at the checkpoints."""
    pixels = content.detach().contiguous().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([pixels], lr=1.0, max_iter=1, max_eval=25, history_size=50, tolerance_grad=0.0,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")
    evaluations = 0
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        # As in fast_style: each L-BFGS step first re-evaluates the point its last line search
        # accepted; reuse that evaluation (loss and gradient) so the evaluation counts compare.
        nonlocal evaluations
        if last and torch.equal(last["at"], pixels):
            return last["loss"]
        evaluations += 1
        opt.zero_grad(set_to_none=True)
        total = loss(pixels, content_targets=targets).total.sum()
        total.backward()
        last.update(at=pixels.detach().clone(), loss=total.detach())
        return total

    saved, unclamped, out_of_range = {}, {}, {}
    for step in range(1, max(checkpoints) + 1):
        opt.step(closure)
        if step in checkpoints:
            with torch.no_grad():
                raw = pixels.detach()
                saved[step] = float(loss(quantize(raw), content_targets=targets).total.sum())
                unclamped[step] = float(loss(raw, content_targets=targets).total.sum())
                out_of_range[step] = float(((raw < 0) | (raw > 1)).float().mean())
    return {"saved_loss": saved, "unclamped_loss": unclamped, "out_of_range": out_of_range,
            "evaluations": evaluations}


def fast_style_method(content: torch.Tensor, loss: PerceptualLoss, targets: dict[str, torch.Tensor],
                      optimizer: str, checkpoints: list[int]) -> dict[str, dict[int, float]]:
    """fast_style's own optimiser; its snapshots are already the quantised saved images."""
    calls = []
    hook = loss.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        result = optimize_image(content, loss, steps=max(checkpoints), optimizer=optimizer,
                                snapshots=tuple(checkpoints), show_progress=False)
    finally:
        hook.remove()
    with torch.no_grad():
        saved = {step: float(loss(image, content_targets=targets).total.sum())
                 for step, image in result.snapshots.items()}
    totals = [entry["loss"] for entry in result.history]
    return {"saved_loss": saved, "evaluations": len(calls) - 1,  # less the final scoring of the result
            "all_finite": all(math.isfinite(value) for value in totals),
            "worst_rise": max((later / earlier - 1 for earlier, later in zip(totals, totals[1:])), default=0.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="longer side of photo and painting (default 512)")
    parser.add_argument("--photos", type=int, default=3, help=f"how many of {', '.join(PHOTOS)} (default 3)")
    parser.add_argument("--style", default=str(DATA / "styles" / "starry_night.jpg"), help="the painting")
    parser.add_argument("--kodak", default=str(DATA / "eval" / "kodak24"), help="folder of the Kodak photos")
    parser.add_argument("--checkpoints", default="50,100,300", help="iterations to report (default 50,100,300)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    checkpoints = sorted(int(part) for part in args.checkpoints.split(","))
    if not 1 <= args.photos <= len(PHOTOS):
        parser.error(f"--photos must be between 1 and {len(PHOTOS)}")

    device = resolve_device(args.device)
    with contextlib.redirect_stdout(sys.stderr):  # torch.hub announces download attempts on stdout
        loss = PerceptualLoss.from_config(LossConfig()).to(device)
    loss.set_style(load_image(args.style, size=args.size).unsqueeze(0).to(device))
    report: dict = {"size": args.size, "style": Path(args.style).name, "device": str(device),
                    "loss_network": loss.network.source, "checkpoints": checkpoints, "photos": {}}
    for name in PHOTOS[:args.photos]:
        content = load_image(Path(args.kodak) / name, size=args.size).unsqueeze(0).to(device)
        targets = loss.content_features(content)
        entry = {}
        for method in ("lbfgs", "adam", "unbounded_lbfgs"):
            seed_everything(0)
            started = time.perf_counter()
            if method == "unbounded_lbfgs":
                entry[method] = unbounded_lbfgs(content, loss, targets, checkpoints)
            else:
                entry[method] = fast_style_method(content, loss, targets, method, checkpoints)
            entry[method]["seconds"] = round(time.perf_counter() - started, 1)
            print(f"{name} {method}: {entry[method]['saved_loss']}", file=sys.stderr, flush=True)
        report["photos"][name] = entry

    def falls(method: str) -> bool:
        """Whether the saved loss drops from each checkpoint to the next, on every photo."""
        for entry in report["photos"].values():
            losses = [entry[method]["saved_loss"][step] for step in checkpoints]
            if not all(earlier > later for earlier, later in zip(losses, losses[1:])):
                return False
        return True

    report["falls"] = {method: falls(method) for method in ("lbfgs", "adam", "unbounded_lbfgs")}
    print(json.dumps(report, indent=2))
    return 0 if report["falls"]["lbfgs"] and report["falls"]["adam"] else 1


if __name__ == "__main__":
    sys.exit(main())
