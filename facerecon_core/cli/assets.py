"""``facerecon assets build|info|preview``: the face-model asset."""

from __future__ import annotations

import argparse
from pathlib import Path

from facerecon_core import paths


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
    build.set_defaults(run=_build)

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
