"""``fast-style export``: a trained model as ONNX or TorchScript, for any image size."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Export a trained model to ONNX or TorchScript (dynamic batch, height and width)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="model.safetensors written by `fast-style train` (or its .json, or their folder)")
    parser.add_argument("--format", choices=["onnx", "torchscript"],
                        help="onnx (needs: pip install 'fast_style[onnx]') or torchscript; "
                             "default: from the --output suffix (.onnx / .pt), else onnx")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="where to write the exported model (default: MODEL.onnx or MODEL.pt here)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def main(args: argparse.Namespace) -> int:
    from fast_style.commands.common import model_name
    from fast_style.export import CHECK_SHAPES, check_output_format, export_model
    from fast_style.models import resolve_model_path
    from fast_style.safety import check_not_empty, check_output

    check_not_empty(args.output, "--output")
    output = args.output or f"{model_name(args.model)}{'.pt' if args.format == 'torchscript' else '.onnx'}"
    check_output_format(Path(output), args.format)
    weights = resolve_model_path(args.model)
    check_output(output, inputs=[args.model, weights, weights.with_suffix(".json")], overwrite=args.overwrite)
    difference = export_model(args.model, output, args.format, opset=args.opset)
    sizes = ", ".join(f"{w}x{h}" for _, _, h, w in CHECK_SHAPES)
    print(f"wrote {output}; matches PyTorch at {sizes} (max difference {difference:.1e}){inputs_note(weights)}")
    return 0


def inputs_note(weights: Path) -> str:
    """For a multi-style model, which style each column of the ``style_weights`` input stands for."""
    from fast_style.checkpoint import read_model

    network, _ = read_model(weights)
    styles = getattr(network, "styles", None)
    if not styles:
        return ""
    return (f"; inputs: image (B,3,H,W) in [0,1] and style_weights (B,{len(styles)}), a weight per style in "
            f"this order: {', '.join(styles)}")
