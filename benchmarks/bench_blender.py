"""Blender add-on speed: the operator's time split into inference and scene import.

Runs ``facerecon.reconstruct_from_photo`` (synchronous, as in ``blender -b``) in this Python with the
``bpy`` module and the add-on from the checkout, on real photos. The first run also loads the model
(reported apart); then each run is split into inference (the pipeline, in the worker in the UI) and
scene import (the mesh, UVs, packed texture, material, shape keys, camera: what the UI thread does).
Without ``--model`` the bundled default model is used. Prints a Markdown table
and, as the last line, JSON. Target: import ≤ 1 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ["3ddfa/samples__test1.jpg", "3ddfa/samples__emma_input.jpg", "3ddfa/c++__test2.jpg"]


def load_addon():
    spec = importlib.util.spec_from_file_location("facerecon_addon", REPO / "blender_addon" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "blender_addon")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["facerecon_addon"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--texture-size", default="1024", choices=["256", "512", "1024", "2048"])
    parser.add_argument("--repeats", type=int, default=2, help="runs per photo after the first (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with the smallest sizes (tests/test_benchmarks.py)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    from facerecon_core import paths

    model = args.model or paths.default_model_dir()
    if not (model / "manifest.json").is_file():
        sys.exit(f"no model bundle at {model}")
    os.environ["FACERECON_MODEL"] = str(model)
    import bpy

    addon = load_addon()
    addon.register()
    ops = sys.modules["facerecon_addon.ui.operators"]
    photos = [paths.shared_dir() / "faces" / p for p in PHOTOS[:1 if args.quick else None]]
    rows, first_load = [], None
    for photo in photos:
        for _ in range(1 + args.repeats):
            bpy.ops.wm.read_homefile(use_empty=True)
            t0 = time.perf_counter()
            ret = bpy.ops.facerecon.reconstruct_from_photo(filepath=str(photo), texture_size=args.texture_size,
                                                           add_camera=True, shape_keys=True)
            total = time.perf_counter() - t0
            assert ret == {"FINISHED"}, ret
            t = dict(ops.LAST_TIMINGS)
            if first_load is None:
                first_load = t.get("load", 0.0)
                continue
            rows.append({"photo": photo.name, "inference_s": t["inference"], "import_s": t["import"], "total_s": total})
    addon.unregister()
    print(f"model load (first run): {first_load:.2f} s; texture {args.texture_size} px; camera and shape keys on\n")
    print("| photo | runs | inference s (median) | scene import s (median) | operator total s |")
    print("|---|---|---|---|---|")
    for photo in dict.fromkeys(r["photo"] for r in rows):
        mine = [r for r in rows if r["photo"] == photo]
        print(f"| {photo} | {len(mine)} | {statistics.median(r['inference_s'] for r in mine):.2f} | "
              f"{statistics.median(r['import_s'] for r in mine):.3f} | "
              f"{statistics.median(r['total_s'] for r in mine):.2f} |")
    summary = {
        "bench": "blender", "texture_size": int(args.texture_size), "load_s": round(first_load, 3),
        "inference_s_median": round(statistics.median(r["inference_s"] for r in rows), 3),
        "import_s_median": round(statistics.median(r["import_s"] for r in rows), 3),
        "import_s_max": round(max(r["import_s"] for r in rows), 3),
        "import_target_s": 1.0,
    }
    summary["import_ok"] = summary["import_s_max"] <= 1.0
    print()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
