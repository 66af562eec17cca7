"""``facerecon calibrate``: a bundle's rest (its ARKit weights on neutral photos) into its manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon_core import paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="store a bundle's rest: its ARKit weights on photos of neutral faces",
                       description="Run MODEL_DIR over the neutral-labelled photos of --sets (the held-out people's "
                                   "sets never), and store the mean of its ARKit weights as the manifest's rest: "
                                   "the pipeline then reads expressions from there and gives the rest to the "
                                   "identity (facerecon_core/pipeline/rest.py). Only manifest.json changes, "
                                   "atomically.")
    p.add_argument("--model", type=Path, required=True, help="bundle folder (facerecon export)")
    p.add_argument("--sets", nargs="+", default=None,
                   help="photo sets under <shared>/faces with neutral labels (default: taiwan_expr_faces yalefaces)")
    p.add_argument("--shared", type=Path, default=None,
                   help=f"the shared data folder (default: ${paths.SHARED_ENV}, else ../shared)")
    p.add_argument("--limit", type=int, default=None, help="at most this many photos (a quick check)")
    p.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    p.set_defaults(run=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from facerecon_core.facemodel import FaceModel
    from facerecon_core.inference.bundle import BundleError
    from facerecon_core.datasets.people import TRAINING_NEUTRAL_SETS, neutral_photos
    from facerecon_core.pipeline.rest import calibrate_rest, write_rest

    if args.limit is not None and args.limit < 1:
        print("facerecon calibrate: error: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        sets = tuple(args.sets or TRAINING_NEUTRAL_SETS)
        photos = neutral_photos(args.shared or paths.shared_dir(), sets)[:args.limit]
        if not photos:
            raise ValueError(f"no neutral-labelled photos in {', '.join(sets)}")
        bar = tqdm(total=len(photos), desc="calibrate", unit="photo", disable=None)

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        calibration = calibrate_rest(args.model, photos, FaceModel.load(args.facemodel), sets, progress)
        bar.close()
        write_rest(args.model, calibration)
    except (BundleError, ValueError) as exc:
        print(f"facerecon calibrate: error: {exc}", file=sys.stderr)
        return 2
    for photo, reason in calibration.skipped:
        print(f"facerecon calibrate: skipped {photo}: {reason}", file=sys.stderr)
    top = sorted(calibration.weights.items(), key=lambda kv: -kv[1])[:5]
    print(f"wrote {args.model / 'manifest.json'}: rest of {calibration.photos} photos "
          f"(spread {calibration.spread:.3f}); largest: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    return 0
