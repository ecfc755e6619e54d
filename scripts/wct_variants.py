"""Model files that reuse a trained wct model's decoders: fewer levels, or AdaIN on its relu4_1 decoder.

Which levels to run is a choice made after training (each level's decoder is trained on its own), and
AdaIN on the same relu4_1 decoder puts the two transforms side by side; both are measured with
``fast-style compare`` like any model. The encoder, loss and painting size are the wct model's.

    python3 scripts/wct_variants.py runs/wct4/model.safetensors runs/variants --levels 4-1 3-1 4-2 --adain
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_style.checkpoint import read_model, save_model  # noqa: E402  (after the path is set)
from fast_style.networks.adain import AdaINConfig, AdaINNet, build_encoder  # noqa: E402
from fast_style.networks.wct import WctConfig, WctNet, layer, rescaled_first_conv  # noqa: E402

FILE_KEYS = ("format", "format_version", "model")  # the file's own record; the rest of model.json is kept


def write(network, metadata: dict, folder: Path, note: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kept = {key: value for key, value in metadata.items() if key not in FILE_KEYS}  # training record, loss, painting
    path = save_model(network, folder / "model.safetensors", {**kept, "variant_of": note})
    print(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained wct model")
    parser.add_argument("output", type=Path, help="folder for the variants (one subfolder each)")
    parser.add_argument("--levels", nargs="*", default=[], help="DEEPEST-SHALLOWEST ranges, e.g. 4-1 3-1")
    parser.add_argument("--adain", action="store_true", help="also AdaIN on the relu4_1 decoder")
    args = parser.parse_args()
    source, metadata = read_model(args.model)
    if not isinstance(source, WctNet):
        raise SystemExit(f"{args.model}: not a wct model")
    encoder = source.config.encoder
    for levels in args.levels:
        deepest, shallowest = (int(part) for part in levels.split("-"))
        config = WctConfig(width=source.config.width, deepest=deepest, shallowest=shallowest,
                           encoder={**encoder, "layer": layer(deepest)})
        network = WctNet(build_encoder(config.encoder, [layer(level) for level in config.levels]), config)
        for level in config.levels:
            network.decoder(level).load_state_dict(source.decoder(level).state_dict())
        write(network, metadata, args.output / f"wct{deepest}{shallowest}", f"{args.model} levels {levels}")
    if args.adain:
        config = AdaINConfig(width=source.config.width, encoder={**encoder, "layer": "relu4_1"})
        network = AdaINNet(build_encoder(config.encoder), config)
        network.decoder.load_state_dict(rescaled_first_conv(source.decoder(4).state_dict(), source.input_scale))
        write(network, metadata, args.output / "adain_on_wct4", f"{args.model} relu4_1 decoder with AdaIN")


if __name__ == "__main__":
    main()
