"""``facerecon average``: checkpoints or bundles of one network → the checkpoint of their weighted mean."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("average", help="average the weights of checkpoints or bundles of one network",
                       description="Write OUT, a checkpoint whose every weight is the weighted mean of the inputs' "
                                   "(fine-tuned from one start with BatchNorm frozen; see facerecon_core/train/"
                                   "average.py); `facerecon export` makes it a bundle. Written atomically.")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="two or more checkpoints (facerecon train) or bundle folders (facerecon export)")
    p.add_argument("--weights", type=float, nargs="+", default=None,
                   help="one weight per input, normalised to sum to 1 (default: equal)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    p.set_defaults(run=_average)


def _average(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel import FaceModel, FaceModelError
    from facerecon_core.train.average import average_checkpoints
    from facerecon_core.train.checkpoint import CheckpointError, save_checkpoint

    if args.out.exists() and not args.overwrite:
        print(f"facerecon average: error: {args.out} exists (use --overwrite)", file=sys.stderr)
        return 2
    try:
        state, report = average_checkpoints(args.checkpoint, args.weights, FaceModel.load(args.facemodel))
    except (CheckpointError, FaceModelError) as exc:
        print(f"facerecon average: error: {exc}", file=sys.stderr)
        return 2
    save_checkpoint(args.out, state)
    print(f"wrote {args.out}: {report.summary()}")
    return 0
