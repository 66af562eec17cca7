"""Whole-head speed (``--mesh head``): the time to build a head around a reconstructed face, split into its
stages, and the time to import it into a Blender scene (beside the face's), on real photos.

The head rig is the built one (``facerecon assets head``) when it matches the face-model asset, else it is
built here first (about 8 s, reported apart). Prints a Markdown table and, as the last line, JSON.
Target: build ≤ 300 ms per head on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ["3ddfa/samples__test1.jpg", "3ddfa/samples__emma_input.jpg", "photometric_ffhq/00001.png"]
TARGET_MS = 300.0


def load_rig(facemodel):
    from facerecon_core import paths
    from facerecon_core.head.register import build_head_rig, load_ict_head
    from facerecon_core.head.rig import HeadError, HeadRig
    from facerecon_core.pipeline.reconstructor import head_rig_for

    try:
        return head_rig_for(HeadRig.load(), facemodel), 0.0
    except HeadError:
        t0 = time.perf_counter()
        rig = build_head_rig(facemodel, load_ict_head(paths.shared_dir() / "ict_facekit"))
        return rig, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texture-size", type=int, default=512, help="the face texture's side (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per photo (default 3)")
    parser.add_argument("--quick", action="store_true", help="one photo, one build (tests/test_benchmarks.py)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from facerecon_core import paths
    from facerecon_core.head import shape, texture
    from facerecon_core.head.build import build_head
    from facerecon_core.pipeline import Reconstructor

    reconstructor = Reconstructor(texture_size=args.texture_size)
    rig, rig_s = load_rig(reconstructor.facemodel)
    try:
        import bpy

        from blender_addon.services import scene
    except ImportError:
        bpy = None
    photos = PHOTOS[:1] if args.quick else PHOTOS
    repeats = 1 if args.quick else args.repeats
    rows = []
    for name in photos:
        rec = reconstructor.reconstruct(str(paths.shared_dir() / "faces" / name))[0]
        build_head(rig, rec)  # the rig's caches (sparse operators, texel taps), once per process
        times = {"shape_ms": [], "skin_texture_ms": [], "total_ms": [], "face_import_s": [], "head_import_s": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            shape.head_vertices(rig, rec.identity_vertices)
            times["shape_ms"].append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            texture.skin_texture(rig, rec.albedo)
            times["skin_texture_ms"].append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            rec.head = build_head(rig, rec)
            times["total_ms"].append(1000 * (time.perf_counter() - t0))
            if bpy is not None:
                for key, head in (("face_import_s", None), ("head_import_s", rec.head)):
                    bpy.ops.wm.read_homefile(use_empty=True)
                    rec.head = head
                    t0 = time.perf_counter()
                    scene.build_face(rec, name=Path(name).stem)
                    times[key].append(time.perf_counter() - t0)
        rows.append({"photo": Path(name).name, **{k: statistics.median(v) if v else float("nan")
                                                  for k, v in times.items()}})
    print(f"head rig: {rig.n_vertices} vertices, {len(rig.poly_sizes)} polygons"
          + (f" (built here in {rig_s:.1f} s)" if rig_s else "") + f"; face texture {args.texture_size} px; "
          f"{repeats} timed build(s) per photo, medians\n")
    print("| photo | shape ms | skin texture ms | head build ms (all) | Blender import s: face / head |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['photo']} | {r['shape_ms']:.0f} | {r['skin_texture_ms']:.0f} | {r['total_ms']:.0f} | "
              f"{r['face_import_s']:.2f} / {r['head_import_s']:.2f} |")
    build = [r["total_ms"] for r in rows]
    summary = {"bench": "head", "texture_size": args.texture_size, "build_ms_median": round(statistics.median(build), 1),
               "build_ms_max": round(max(build), 1), "build_target_ms": TARGET_MS,
               "head_import_s_median": round(statistics.median(r["head_import_s"] for r in rows), 3)}
    summary["build_ok"] = summary["build_ms_max"] <= TARGET_MS
    print()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
