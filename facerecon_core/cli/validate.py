"""``facerecon validate``: compare checkpoints by a stage's losses on the same held-out samples."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from facerecon_core.train.stages import STAGES

    p = sub.add_parser("validate", help="a stage's held-out losses for checkpoints, on the same samples")
    p.add_argument("--stage", choices=STAGES, required=True, help="whose validation losses")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="checkpoints (facerecon train) or bundle folders (facerecon export)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders, each reported apart")
    p.add_argument("--every", type=_at_least_one, default=20,
                   help="every n-th sample of each folder is used, as a run's held-out split (default 20)")
    p.add_argument("--below", type=int, default=None, help="only held-out samples with an index below this")
    p.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    p.set_defaults(run=_validate)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _validate(args: argparse.Namespace) -> int:
    from facerecon_core.train.validate import validate

    rows = validate(args.checkpoint, args.data, args.stage, every=args.every, below=args.below,
                    facemodel=args.facemodel)
    names = list(rows[0].losses)
    print("| checkpoint | data | samples | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in rows:
        print(f"| {r.checkpoint} | {r.dataset} | {r.samples} | " + " | ".join(f"{r.losses[n]:.4g}" for n in names)
              + " |")
    return 0
