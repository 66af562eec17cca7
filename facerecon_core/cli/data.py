"""``facerecon data synth|preview``: training datasets."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from facerecon_core.datasets.synth import KINDS

    parser = sub.add_parser("data", help="generate and inspect training datasets")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    synth = actions.add_parser("synth", help="generate a sharded dataset (resumes an interrupted run)")
    synth.add_argument("--kind", choices=KINDS, required=True,
                       help="asm: random faces; profiled: new views of real photos; texture: FTD triplets")
    synth.add_argument("--count", type=int, required=True, help="number of samples")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives identical shards")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder")
    synth.add_argument("--res", type=int, default=256, help="crop and UV map size (default 256)")
    synth.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    synth.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    synth.add_argument("--photos", type=Path, nargs="+", default=(),
                       help="real photos, files or folders (or @LIST.txt, one per line): backgrounds (asm) or "
                            "the photos to profile (default ../shared/faces)")
    synth.add_argument("--fits", type=Path, default=None, help="photo-fit cache for profiled/texture (default data/fits)")
    synth.add_argument("--pose-range", type=float, nargs=3, metavar=("YAW", "PITCH", "ROLL"), default=None,
                       help="asm: uniform head-pose limits in degrees (±; default 75 30 20)")
    synth.add_argument("--crop-jitter", type=float, nargs=2, metavar=("SCALE", "SHIFT"), default=None,
                       help="asm, profiled: the crop's side × uniform(1 ± SCALE), its centre moved by σ = SHIFT × "
                            "side (default 0.1 0.04 for asm, 0.08 0.03 for profiled): off-centre crops, as a "
                            "detector gives on hard photos")
    synth.add_argument("--pitch-turn", type=float, metavar="DEG", default=0.0,
                       help="profiled: also tilt each view's head by a pitch uniform in ±DEG of the photo's "
                            "(at most 45; default 0: yaw turns only, as 300W-LP)")
    synth.add_argument("--yaw-range", type=float, metavar="DEG", default=0.0,
                       help="profiled: draw each view's yaw uniformly within ±DEG, whatever the photo's (at most "
                            "90; default 0: turns of 15° steps from the photo's, small turns more often, out to ±75)")
    synth.add_argument("--head", action="store_true",
                       help="asm: render the whole BFM head (forehead, ears, neck; from ../shared/bfm) around the "
                            "face, as photos show it (default: the face alone on its background)")
    synth.add_argument("--arkit", type=float, metavar="SHARE", default=0.0,
                       help="asm: the share of faces whose expression adds the face model's 51 ARKit keys (basic "
                            "emotions up to their extremes, wide eyes, furrowed brows, snarls; or a few random keys) "
                            "on top of half the 10 components' expression (default 0: the components alone)")
    synth.add_argument("--pairs", action="store_true",
                       help="profiled: each view also holds a view of another photo of the same person "
                            "(taiwan_expr_faces performers, jaffe and yalefaces subjects), for the geometry stage's "
                            "same-person term")
    synth.add_argument("--fit-arkit", action="store_true",
                       help="profiled, texture: the photo fits also fit the face model's ARKit weights (each in "
                            "[0, 1], sparse; cheekPuff held at 0), so the photos' strong expressions reach the labels "
                            "(fits cached apart)")
    synth.add_argument("--one-identity", action="store_true",
                       help="profiled, texture: the photos of one person (taiwan_expr_faces performers, jaffe and "
                            "yalefaces subjects) are fitted together with one identity, each with its own pose, "
                            "expression and light, so their labels share one neutral face; a photo labelled neutral "
                            "keeps its expression near zero, so that face is the person's rest face (fits cached "
                            "apart)")
    synth.add_argument("--label-rest", action="store_true",
                       help="profiled, texture, with --fit-arkit: the expression the photo fit gives calm faces (the "
                            "mean of the neutral-labelled photos of taiwan_expr_faces and yalefaces, each fitted "
                            "alone) moves from every photo's expression label into its identity, the fitted shape "
                            "unchanged; with --one-identity, the photos of a known person (datasets.people) keep "
                            "theirs")
    synth.set_defaults(run=_synth)

    preview = actions.add_parser("preview", help="draw samples with landmarks and ASM visualisations")
    preview.add_argument("dataset", type=Path, help="dataset folder")
    preview.add_argument("-o", "--out", type=Path, required=True, help="output image (.png)")
    preview.add_argument("--count", type=int, default=8, help="samples to draw (default 8)")
    preview.add_argument("--seed", type=int, default=0, help="which samples (default 0)")
    preview.set_defaults(run=_preview)


def _synth(args: argparse.Namespace) -> int:
    from facerecon_core.datasets.scene import CropJitter, PoseRange
    from facerecon_core.datasets.synth import SynthRequest, synth

    poses = PoseRange(*args.pose_range) if args.pose_range else None
    jitter = CropJitter(*args.crop_jitter) if args.crop_jitter else None
    request = SynthRequest(kind=args.kind, count=args.count, seed=args.seed, out=args.out, res=args.res,
                           facemodel=args.facemodel, photos=tuple(args.photos), fits=args.fits, poses=poses,
                           jitter=jitter, pitch_turn=args.pitch_turn, yaw_range=args.yaw_range, head=args.head,
                           arkit=args.arkit, pairs=args.pairs, fit_arkit=args.fit_arkit,
                           one_identity=args.one_identity, label_rest=args.label_rest)
    index = synth(request, workers=args.workers)
    done = sum(e["count"] for e in index["shards"])
    print(f"{args.out}: {done}/{args.count} {args.kind} samples in {len(index['shards'])} shards")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from facerecon_core.datasets.preview import preview_grid
    from facerecon_core.datasets.storage import ShardedDataset
    from facerecon_core.io import save_image

    grid = preview_grid(ShardedDataset(args.dataset), count=args.count, seed=args.seed)
    print(f"wrote {save_image(args.out, grid)}")
    return 0
