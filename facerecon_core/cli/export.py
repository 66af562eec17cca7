"""``facerecon export``: a training checkpoint → an inference model bundle (ONNX + manifest + safetensors)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon_core import paths


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a training checkpoint to an inference model bundle",
                            description="Write MODEL_DIR with geometry.onnx, texture.onnx, weights.safetensors and "
                                        "manifest.json (atomically: a failure leaves nothing).")
    parser.add_argument("--checkpoint", type=Path, required=True, help="trainer checkpoint (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (MODEL_DIR)")
    parser.add_argument("--facemodel", type=Path, default=None,
                        help=f"face-model asset the network was trained with (default: ${paths.FACEMODEL_ENV}, "
                             "else facerecon_core/data/facemodel.npz)")
    parser.add_argument("--force", action="store_true",
                        help="export even if the checkpoint's face-model hash differs from --facemodel's")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (≥ 17, default 17)")
    parser.add_argument("--half", action="store_true",
                        help="store the graphs' weights as float16 (about half the size; float32 arithmetic)")
    parser.add_argument("--no-weights", dest="weights", action="store_false",
                        help="inference-only bundle: no weights.safetensors (--runtime torch cannot use it)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the onnxruntime-vs-torch check of the exported graphs")
    parser.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    from facerecon_core.inference.export import ExportError, export_bundle

    try:
        report = export_bundle(args.checkpoint, args.out, args.facemodel, force=args.force,
                               overwrite=args.overwrite, opset=args.opset, verify=args.verify,
                               half=args.half, weights=args.weights)
    except ExportError as exc:
        print(f"facerecon export: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
