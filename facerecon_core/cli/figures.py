"""``facerecon figures``: the README's pictures, made on this machine into ``docs/images/`` (not committed: they
show renders of the BFM-derived face model and research-only photos from ``../shared/faces``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from facerecon_core import paths

TEXTURE_MODE_PHOTOS = ("3ddfa/samples__emma_input.jpg", "photometric_ffhq/00001.png", "taiwan_expr_faces/0101a02.jpg",
                       "yalefaces/subject01.leftlight.gif", "prnet_aflw2000/image00251.jpg", "3ddfa/samples__test1.jpg")
"""Six photos of different people, poses, expressions and light (a greyscale one, a near-profile, an occluder)."""
HEAD_PHOTOS = ("3ddfa/samples__emma_input.jpg", "photometric_ffhq/00001.png", "taiwan_expr_faces/0101a02.jpg",
               "jaffe/KA.HA2.30.tiff", "taiwan_expr_faces/0111g04.jpg")
"""Heads of five people: neutral, smiling, laughing, surprised."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("figures", help="make the README's pictures into docs/images/", description=__doc__)
    parser.add_argument("--out", type=Path, default=paths.REPO_ROOT / "docs" / "images",
                        help="output folder (default: docs/images of the repository)")
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the bundled one)")
    parser.set_defaults(run=_figures)


def _figures(args: argparse.Namespace) -> int:
    from facerecon_core.eval.views import (arkit_keys_figure, head_figure, registration_figure, texture_modes_figure,
                                           video_figure)
    from facerecon_core.head.rig import HeadError
    from facerecon_core.facemodel import FaceModel, arkit

    model = FaceModel.load()
    photos = [paths.shared_dir() / "faces" / p for p in TEXTURE_MODE_PHOTOS]
    written = [texture_modes_figure(photos, args.out / "texture_modes.png", size=128, model=args.model)]
    try:
        written.append(head_figure([paths.shared_dir() / "faces" / p for p in HEAD_PHOTOS], args.out / "head.png",
                                   model=args.model))
        written.append(video_figure(paths.shared_dir() / "faces" / "videos" / "dafoe.mp4", args.out / "video.png",
                                    model=args.model))
    except HeadError as exc:
        print(f"no head.png, video.png: {exc}")
    if model.has_arkit:
        registration = arkit.register(model, arkit.load_ict(paths.shared_dir() / "ict_facekit"))
        written += [arkit_keys_figure(model, args.out / "arkit_keys.png"),
                    registration_figure(model, registration.distance_mm, args.out / "arkit_registration.png")]
    for path in written:
        print(f"wrote {path}")
    return 0
