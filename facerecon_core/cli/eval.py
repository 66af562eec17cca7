"""``facerecon eval``: evaluate a model bundle against its peers (synthetic geometry, landmarks,
texture, speed) and write a report folder (report.md, results.json, per_vertex.npz, plots)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon_core import paths


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a model bundle and its peers; write a report",
                            description=__doc__)
    parser.add_argument("--suite", action="append", default=None,
                        choices=["synthetic", "landmarks", "photometric", "expressions", "identity", "head", "video",
                                 "speed", "all"],
                        help="suite to run (repeatable; default: all)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model bundle folder (from `facerecon export`; default: the bundled model, "
                             f"${paths.MODEL_ENV} or facerecon_core/data/model/)")
    parser.add_argument("--no-model", action="store_true",
                        help="evaluate the peers alone (no bundle of ours; not with --suite photometric)")
    parser.add_argument("--ablation", type=Path, nargs="+", default=None, metavar="MODEL_DIR",
                        help="several bundles evaluated side by side (named by folder); replaces --model")
    parser.add_argument("--peer", action="append", default=None, choices=["3ddfa_v2", "mean-face", "fit", "fit-arkit"],
                        help="peer to compare with (repeatable; default: 3ddfa_v2, mean-face and fit; see "
                             "--no-peers); fit-arkit: the landmark fit with the ARKit keys, as the training "
                             "photos are fitted with `data synth --fit-arkit` (the expressions and identity suites "
                             "take it)")
    parser.add_argument("--no-peers", action="store_true", help="evaluate the bundle(s) only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out synthetic faces (default 0)")
    parser.add_argument("--count", type=int, default=500, help="number of synthetic faces (default 500)")
    parser.add_argument("--crop-jitter", type=float, nargs=2, metavar=("SCALE", "SHIFT"), default=None,
                        help="synthetic suite: the faces' crop side × uniform(1 ± SCALE), its centre moved by σ = "
                             "SHIFT × side (default 0.08 0.03, a good detector's; e.g. 0.3 0.08 for a detector's "
                             "misses)")
    parser.add_argument("--arkit", type=float, default=0.0, metavar="SHARE",
                        help="synthetic suite: that share of the faces adds ARKit expressions (as `data synth "
                             "--arkit` draws them: emotions to their extremes, wide eyes, furrowed brows, snarls; "
                             "default 0: the 10 components' expressions alone)")
    parser.add_argument("--head", action="store_true",
                        help="synthetic suite: render the whole BFM head (forehead, ears, neck) around each face, "
                             "as photos show it (default: the face alone on its background)")
    parser.add_argument("--photos", type=int, default=None, help="use only the first N annotated photos")
    parser.add_argument("--every", type=int, default=3, metavar="N",
                        help="expressions and identity suites: every N-th labelled photo of each set (default 3; "
                             "1: all of them, about three times as long)")
    parser.add_argument("--facemodel", type=Path, default=None,
                        help=f"face-model asset (default: ${paths.FACEMODEL_ENV}, else "
                             "facerecon_core/data/facemodel.npz)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="run our network on the crop only (default: averaged with the mirrored crop, as "
                             "`facerecon reconstruct` does)")
    parser.add_argument("--no-shifts", action="store_true",
                        help="no averaging over shifted crops (default: the crop and four copies shifted by "
                             "1/64 of its size, as `facerecon reconstruct` does)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--out", type=Path, required=True, help="report folder (REPORT_DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=_eval)


def _eval(args: argparse.Namespace) -> int:
    from facerecon_core.datasets.scene import CropJitter
    from facerecon_core.eval.peers import DEFAULT_PEERS, OursPeer, make_peers
    from facerecon_core.eval.suites import run_eval
    from facerecon_core.facemodel import FaceModel
    from facerecon_core.inference import BundleError

    jitter = CropJitter(*args.crop_jitter) if args.crop_jitter else None
    if jitter is not None:
        try:
            jitter.check()
        except ValueError as exc:
            print(f"facerecon eval: error: --crop-jitter: {exc}", file=sys.stderr)
            return 2
    if args.every < 1:
        print(f"facerecon eval: error: --every must be 1 or more (got {args.every})", file=sys.stderr)
        return 2
    model = FaceModel.load(args.facemodel)
    suites = args.suite or ["all"]
    if args.no_model and (args.model or args.ablation):
        print("facerecon eval: error: --no-model excludes --model and --ablation", file=sys.stderr)
        return 2
    bundles = [] if args.no_model else list(args.ablation or [args.model or paths.default_model_dir()])
    try:
        ours = [OursPeer.load(d, model, name=(d.name if args.ablation else "ours"), threads=args.threads,
                              mirror=not args.no_mirror, shifts=not args.no_shifts)
                for d in bundles]
    except BundleError as exc:
        print(f"facerecon eval: error: {exc}", file=sys.stderr)
        return 2
    if not ours and ("photometric" in suites or "all" in suites) and args.suite:
        print("facerecon eval: error: --suite photometric evaluates our model: leave out --no-model", file=sys.stderr)
        return 2
    names = [] if args.no_peers else (args.peer or list(DEFAULT_PEERS))
    methods = ours + make_peers(names, model, threads=args.threads)
    if not methods:
        print("facerecon eval: error: nothing to evaluate (--no-model with --no-peers)", file=sys.stderr)
        return 2
    meta = {"model": ", ".join(str(b) for b in bundles)}
    run_eval(methods, model, suites, args.out, seed=args.seed, count=args.count, verbose=not args.quiet,
             photo_limit=args.photos, meta=meta, crop_jitter=jitter, head=args.head, arkit=args.arkit,
             every=args.every)
    print(f"wrote {args.out / 'report.md'}")
    return 0
