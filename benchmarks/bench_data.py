"""Dataset generation speed: samples per second for each kind on this machine.

Generates a small dataset of each kind into a temporary folder (``asm`` with 1 and with 2 worker
processes; ``profiled`` and ``texture`` from a handful of photos whose fits are made first and not
timed). Prints a Markdown table and, as the last line, JSON. Target: asm ≥ 10 samples/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from facerecon_core import paths
from facerecon_core.datasets.synth import SynthRequest, synth, usable_fits
from facerecon_core.facemodel import FaceModel
from facerecon_core.io.photo import find_photos

PHOTOS = ["prnet_aflw2000/image00050.jpg", "prnet_aflw2000/image00081.jpg",
          "taiwan_expr_faces/0101a02.jpg", "taiwan_expr_faces/0111b01.jpg"]


def timed(request: SynthRequest, workers: int) -> float:
    start = time.perf_counter()
    synth(request, workers=workers, progress=False)
    return request.count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=128, help="samples per kind (default 128)")
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with the smallest sizes (tests/test_benchmarks.py)")
    args = parser.parse_args()
    if args.quick:
        args.count, args.res = 8, 64
    model = FaceModel.load()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        photos.mkdir()
        for rel in PHOTOS:
            (photos / rel.replace("/", "__")).symlink_to(paths.shared_dir() / "faces" / rel)
        base = dict(count=args.count, seed=0, res=args.res, photos=photos, fits=tmp / "fits")
        start = time.perf_counter()
        usable_fits(SynthRequest("profiled", out=tmp / "unused", **base), model, find_photos(photos), progress=False)
        fit_seconds = (time.perf_counter() - start) / len(PHOTOS)
        for kind, workers in (("asm", 1), ("asm", 2), ("profiled", 2), ("texture", 2)):
            request = SynthRequest(kind, out=tmp / f"{kind}-{workers}", **{**base, "photos": None if kind == "asm" else photos})
            results[f"{kind} ({workers} worker{'s' if workers > 1 else ''})"] = round(timed(request, workers), 2)
    print(f"{args.count} samples per kind at {args.res}²; photo fits (not timed below): {fit_seconds:.1f} s per photo\n")
    print("| kind | samples/s |\n| --- | ---: |")
    for label, rate in results.items():
        print(f"| {label} | {rate:.1f} |")
    print(json.dumps({"res": args.res, "count": args.count, "fit_seconds_per_photo": round(fit_seconds, 2),
                      "samples_per_second": results}))


if __name__ == "__main__":
    main()
