"""``facerecon demo``: reconstruct the public-domain astronaut photo that scikit-image ships."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PHOTO_NAME = "astronaut.png"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="reconstruct the astronaut photo of scikit-image (NASA, public domain)",
                            description="Write OUTDIR/astronaut.png (skimage.data.astronaut(), Eileen Collins, "
                                        "NASA, public domain) and reconstruct it with the bundled model into OBJ, "
                                        "GLB, NPZ and an overlay image.")
    parser.add_argument("-o", "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--texture-size", type=int, default=1024, help="albedo texture side (default 1024)")
    parser.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    from facerecon_core.cli import main
    from facerecon_core.io import save_image

    try:
        from skimage import data
    except ImportError:
        print("facerecon demo: error: the demo photo comes with scikit-image: pip install scikit-image",
              file=sys.stderr)
        return 2
    photo = save_image(args.out / PHOTO_NAME, data.astronaut())
    print(f"wrote {photo}")
    return main(["reconstruct", str(photo), "-o", str(args.out), "--texture-size", str(args.texture_size)])
