"""CPU cost of universal style transfer (wct) as JSON: the transform per level, and stylizing end to end.

Per level at each ``--size``: the photo's covariance (one (C,N) product), its float64
eigendecomposition, folding whitening and colouring into one (C,C) matrix and applying it to the
pixels, against the encoder and decoder passes around it. Then stylizing one ``--size``-pixel photo
with each ``--model`` (a wct model with a painting, or a single-painting model) in the same process,
alternating, median of ``--rounds``.

    python3 scripts/bench_wct.py --wct runs/wct4/model.safetensors --style ../shared/data/styles/udnie.jpg \\
        --compare-with starry_night --sizes 512 1024
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

from fast_style.memory import keep_freed_memory  # noqa: E402
from fast_style.networks.wct import centred, covariance, layer, symmetric_power  # noqa: E402
from fast_style.precision import cpu_info  # noqa: E402
from fast_style.stylize import load_stylizer  # noqa: E402


def median_seconds(run, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def transform_costs(stylizer, size: int, rounds: int) -> dict:
    """Milliseconds per level for a ``size`` x ``size`` photo: encoder, covariance, eigh, apply, decoder."""
    network = stylizer.model
    photo = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(stylizer.precision.dtype)
    costs = {}
    with torch.inference_mode():
        for level in network.config.levels:
            features = network.encode(photo, level)
            pixels, _ = centred(features)
            cov = covariance(pixels)
            colour = getattr(network, f"style_colour_{level}").double()
            mean = getattr(network, f"style_mean_{level}")
            whiten = symmetric_power(cov, -0.5)
            transformed = network.transfer(features, level)
            costs[layer(level)] = {
                "channels": features.shape[1], "positions": features.shape[-2] * features.shape[-1],
                "encoder_ms": 1e3 * median_seconds(lambda: network.encode(photo, level), rounds),
                "covariance_ms": 1e3 * median_seconds(lambda: covariance(centred(features)[0]), rounds),
                "eigh_float64_ms": 1e3 * median_seconds(lambda: symmetric_power(cov, -0.5), rounds),
                "apply_ms": 1e3 * median_seconds(
                    lambda: (colour @ whiten).float() @ pixels + mean, rounds),
                "wct_total_ms": 1e3 * median_seconds(lambda: network.transfer(features, level), rounds),
                "decoder_ms": 1e3 * median_seconds(lambda: network.decode(transformed, level), rounds),
            }
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wct", required=True, help="a wct model (path or bundled name)")
    parser.add_argument("--style", required=True, help="the painting")
    parser.add_argument("--compare-with", default="starry_night", help="a single-painting model to time beside it")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    wct = load_stylizer(args.wct, device="cpu", precision=args.precision)
    start = time.perf_counter()
    wct.set_style(args.style)
    style_seconds = time.perf_counter() - start
    other = load_stylizer(args.compare_with, device="cpu", precision=args.precision)
    result = {"cpu": cpu_info().as_dict(),
              "precision": wct.precision.name, "levels": [layer(level) for level in wct.model.config.levels],
              "painting_statistics_s": style_seconds, "sizes": {}}
    for size in args.sizes:
        photo = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
        wct.stylize_tensor(photo), other.stylize_tensor(photo)  # warm-up
        times = {"wct": [], args.compare_with: []}
        for _ in range(args.rounds):  # alternating, so both see the same machine load
            for name, stylizer in (("wct", wct), (args.compare_with, other)):
                start = time.perf_counter()
                stylizer.stylize_tensor(photo)
                times[name].append(time.perf_counter() - start)
        seconds = {name: statistics.median(values) for name, values in times.items()}
        result["sizes"][size] = {"stylize_s": seconds, "wct_over_single_painting": seconds["wct"] / seconds[args.compare_with],
                                 "per_level": transform_costs(wct, size, args.rounds)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
