"""``facerecon assets build|head|info|preview``: the face-model asset and the head rig built from it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon_core import paths
from facerecon_core.head.rig import HEAD_FILE, default_head_path

# Photo fits for the albedo basis: enough photometric steps to settle the light, at a small size.
ALBEDO_FIT_STEPS = dict(landmark_steps=200, photometric_steps=40, render_size=96)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("assets", help="build and inspect the face-model asset")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="build the face-model .npz from the BFM source files")
    build.add_argument("--source", type=Path, default=None,
                       help=f"BFM folder (default: ${paths.SHARED_ENV}/bfm, else ../shared/bfm)")
    build.add_argument("--out", type=Path, default=None,
                       help=f"output .npz (default: ${paths.FACEMODEL_ENV}, else facerecon_core/data/facemodel.npz)")
    build.add_argument("--bfm2009", type=Path, default=None,
                       help="official BFM 2009 01_MorphableModel.mat: 199 shape and albedo components")
    build.add_argument("--expression", type=Path, default=None,
                       help="with --bfm2009: expression basis (.npy (159645, K) or .mat with w_exp)")
    build.add_argument("--param-stats", type=Path, default=None,
                       help="3DDFA parameter statistics (default: <source>/../peers/3ddfa_v2/...pkl)")
    build.add_argument("--uv-size", type=int, default=256, help="size of the stored UV masks (default 256)")
    build.add_argument("--head-out", type=Path, default=None,
                       help="the head rig (--mesh head) built after it (default: head.npz beside --out)")
    build.set_defaults(run=_build)

    head = actions.add_parser("head", help="build the head rig (--mesh head) from the ICT Face Model and the asset")
    head.add_argument("--model", type=Path, default=None, help="face-model asset (default: the built one)")
    head.add_argument("--ict", type=Path, default=None, help="ICT Face Model folder (default: ../shared/ict_facekit)")
    head.add_argument("--out", type=Path, default=None,
                      help="output .npz (default: $FACERECON_HEAD, else facerecon_core/data/head.npz)")
    head.set_defaults(run=_head)

    basis = actions.add_parser("albedo-basis", help="learn an albedo basis from real photos into the asset")
    basis.add_argument("--model", type=Path, default=None, help="asset .npz to update (default: the built one)")
    basis.add_argument("--out", type=Path, default=None, help="write the updated asset here (default: --model)")
    basis.add_argument("--photos", type=Path, nargs="+", default=None,
                       help="photos or folders (default: ../shared/faces)")
    basis.add_argument("--components", type=int, default=30, help="number of components kept (default 30)")
    basis.add_argument("--per-source", type=int, default=25, help="most photos per top-level folder (default 25)")
    basis.add_argument("--max-photos", type=int, default=300, help="most photos in all (default 300)")
    basis.add_argument("--uv-size", type=int, default=128, help="UV resolution of the PCA (default 128)")
    basis.add_argument("--cache", type=Path, default=Path("data/fits"), help="photo-fit cache (default data/fits)")
    basis.add_argument("--seed", type=int, default=0, help="which photos are chosen (default 0)")
    basis.set_defaults(run=_albedo_basis)

    info = actions.add_parser("info", help="print what a face-model asset holds")
    info.add_argument("--model", type=Path, default=None, help="asset .npz (default: the built one)")
    info.set_defaults(run=_info)

    preview = actions.add_parser("preview", help="render the mean face (shaded) to an image")
    preview.add_argument("--model", type=Path, default=None, help="asset .npz (default: the built one)")
    preview.add_argument("--out", type=Path, required=True, help="output image (.png or .jpg)")
    preview.add_argument("--size", type=int, default=512, help="image size in pixels (default 512)")
    preview.add_argument("--yaw", type=float, default=20.0, help="head yaw in degrees (default 20)")
    preview.set_defaults(run=_preview)


def _build(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel.build import build_facemodel

    source = args.source or paths.bfm_source_dir()
    report = build_facemodel(args.out or paths.default_facemodel_path(), source, bfm2009=args.bfm2009,
                             expression=args.expression, param_stats=args.param_stats, uv_size=args.uv_size)
    print(report.summary())
    head_out = args.head_out or (default_head_path() if args.out is None else report.path.with_name(HEAD_FILE))
    print(_head_summary(report.path, source.parent / "ict_facekit", head_out))
    return 0


def _head(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel.arkit import RigError

    try:
        print(_head_summary(args.model or paths.default_facemodel_path(),
                            args.ict or paths.shared_dir() / "ict_facekit", args.out or default_head_path(), True))
    except RigError as exc:
        print(f"facerecon assets head: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _head_summary(model: Path, ict: Path, out: Path, strict: bool = False) -> str:
    """Build the head rig of asset ``model`` into ``out``; a line saying what was built (or, unless ``strict``,
    why none was)."""
    import time

    from facerecon_core.facemodel import FaceModel
    from facerecon_core.facemodel.arkit import RigError
    from facerecon_core.head.register import build_head_rig, load_ict_head

    start = time.perf_counter()
    try:
        rig = build_head_rig(FaceModel.load(model), load_ict_head(ict))
    except RigError as exc:
        if strict:
            raise
        return f"no head rig (--mesh head): {exc}"
    rig.save(out)
    return (f"wrote {out}: the ICT head ({rig.n_vertices} vertices, {len(rig.poly_sizes)} polygons) around the face "
            f"model, face area {len(rig.face_vertices)} vertices ({time.perf_counter() - start:.1f} s)")


def _albedo_basis(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel import FaceModel
    from facerecon_core.fitting import FitConfig
    from facerecon_core.fitting.photos import fit_photos, fit_report
    from facerecon_core.io.photo import find_photos
    from facerecon_core.texture.albedo_basis import albedo_pca, photo_albedo_maps, select_photos

    model = FaceModel.load(args.model)
    roots = args.photos or [paths.shared_dir() / "faces"]
    photos = select_photos(find_photos(roots), args.per_source, args.max_photos, args.seed, roots[0])
    fits, failures = fit_photos(photos, model, FitConfig(**ALBEDO_FIT_STEPS), cache=args.cache)
    print(fit_report(fits, failures, args.cache / "report.tsv"))
    maps, skipped = photo_albedo_maps(fits, model, args.uv_size)
    basis = albedo_pca(maps, model, args.components)
    for reason in skipped:
        print(f"  left out {reason}")
    cumulative = basis.explained.cumsum()
    print(f"albedo basis from {basis.n_photos} of {len(photos)} photos: {len(basis.scale)} components explain "
          f"{cumulative[-1]:.1%} of the variance (first 5: {', '.join(f'{c:.1%}' for c in cumulative[:5])})")
    print(f"wrote {basis.apply_to(model).save(args.out or model.path)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel import FaceModel

    model = FaceModel.load(args.model)
    print(f"{model.path}\n  source: {model.source}\n  vertices: {model.n_vertices}, triangles: "
          f"{len(model.triangles)}\n  components: {model.n_id} identity, {model.n_exp} expression, "
          f"{model.n_albedo} albedo\n  UV masks: {model.uv_face_mask.shape[0]}²\n  sha256: {model.content_hash}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from facerecon_core.facemodel import FaceModel
    from facerecon_core.facemodel.preview import render_preview
    from facerecon_core.io import save_image

    image = render_preview(FaceModel.load(args.model), size=args.size, yaw_deg=args.yaw)
    print(f"wrote {save_image(args.out, image)}")
    return 0
