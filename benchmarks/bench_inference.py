"""Benchmark photo → 3D face inference: ms per stage for one face, throughput over a folder, peak memory.

Stages (median over ``--repeat`` runs of one photo after a warm-up): detect (dlib HOG + 68 landmarks),
crop (both 3DDFA_V2 crops), network (both passes), decode (UV maps → meshes), texture (the default photo
mode at ``--texture-size``; also alone per mode at 1024² and 2048²), write (OBJ +
GLB + PLY + NPZ + overlay), and end to end (load → write). Throughput: every photo of ``--photos``
(first ``--count``), reconstructed and written one after the other. Each runtime (onnxruntime,
torch) runs in its own subprocess, so its peak memory (``ru_maxrss``) is its own; the Python-heap
peak (``tracemalloc``, numpy included, onnxruntime's arena not) is measured in a separate pass so it
does not slow the timings. Targets: ≤ 300 ms per face end to end without refinement, peak ≤ 1.5 GB; the
photo-detail texture stage ≤ 150 ms at 1024², ≤ 400 ms at 2048².

``--model`` defaults to the shipped bundle (``facerecon_core/data/model/``, ONNX only); the torch runtime
needs a bundle exported with its weights (``--runtimes onnx,torch --model DIR``). Prints a Markdown
table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from facerecon_core import paths

TARGET_MS, TARGET_PEAK_MB = 300.0, 1536.0
TEXTURE_SIZES = (1024, 2048)
TEXTURE_TARGET_MS = {"photo 1024": 150.0, "photo 2048": 400.0}  # the texture stage alone, photo mode
STAGES = ("detect", "crop", "network", "decode", "texture", "write")
FORMATS = ("obj", "glb", "ply", "npz")


def worker(args: argparse.Namespace) -> dict:
    """Measure one runtime in this process (called in a subprocess by ``main``)."""
    from facerecon_core import export
    from facerecon_core.io.photo import find_photos
    from facerecon_core.pipeline import Reconstructor
    from facerecon_core.pipeline.detect import load_image

    photos = find_photos(args.photos)[: args.count]
    t0 = time.perf_counter()
    rec = Reconstructor(args.model, facemodel=args.facemodel, runtime=args.worker, device="cpu",
                        texture_size=args.texture_size)
    load_s = time.perf_counter() - t0
    outdir = Path(tempfile.mkdtemp(prefix="bench_inference_"))

    writers = {"obj": export.write_obj, "glb": export.write_glb, "ply": export.write_ply, "npz": export.write_npz}

    def one(photo: Path, name: str) -> dict[str, float]:
        start = time.perf_counter()
        image, source = load_image(photo)
        recs = rec.reconstruct(image, source=source)
        timings = dict(recs[0].timings)
        timings["reconstruct"] = (time.perf_counter() - start) * 1000.0
        t = time.perf_counter()
        for k, r in enumerate(recs):  # what write_all does, format by format
            base = outdir / f"{name}_{k}"
            for fmt, writer in writers.items():
                t_fmt = time.perf_counter()
                writer(r, base.with_suffix("." + fmt))
                timings[f"write_{fmt}"] = timings.get(f"write_{fmt}", 0.0) + (time.perf_counter() - t_fmt) * 1000
            t_fmt = time.perf_counter()
            export.write_overlay(r, image, base.with_name(base.name + "_overlay.png"))
            timings["write_overlay"] = timings.get("write_overlay", 0.0) + (time.perf_counter() - t_fmt) * 1000
        timings["write"] = (time.perf_counter() - t) * 1000.0
        timings["end_to_end"] = (time.perf_counter() - start) * 1000.0
        return timings

    one(photos[0], "warmup")  # numba kernels, onnxruntime / torch first-run allocations
    runs = [one(photos[0], "single") for _ in range(args.repeat)]
    keys = (*STAGES, "reconstruct", "end_to_end", *(f"write_{f}" for f in (*FORMATS, "overlay")))
    single = {k: statistics.median(r[k] for r in runs) for k in keys}

    start = time.perf_counter()
    done = 0
    for i, photo in enumerate(photos):
        try:
            one(photo, f"p{i}")
            done += 1
        except Exception as exc:  # a photo without a detectable face: counted, not fatal
            print(f"  skipped {photo.name}: {exc}", file=sys.stderr)
    folder_s = time.perf_counter() - start

    texture_ms = {}  # the texture stage alone, per mode and size (median over the repeats)
    for mode, size in ((m, s) for s in TEXTURE_SIZES for m in ("network", "photo")):
        rec.texture, rec.texture_size = mode, size
        rec.reconstruct(photos[0])
        texture_ms[f"{mode} {size}"] = round(statistics.median(
            rec.reconstruct(photos[0])[0].timings["texture"] for _ in range(args.repeat)), 1)
    rec.texture, rec.texture_size = "photo", args.texture_size

    tracemalloc.start()
    one(photos[0], "traced")
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    import shutil

    shutil.rmtree(outdir, ignore_errors=True)
    return {
        "runtime": args.worker, "providers": rec.bundle.providers, "load_s": round(load_s, 2),
        "single_ms": {k: round(v, 1) for k, v in single.items()},
        "texture_ms": texture_ms,
        "folder": {"photos": len(photos), "done": done, "seconds": round(folder_s, 2),
                   "photos_per_s": round(done / folder_s, 2) if folder_s else None,
                   "ms_per_photo": round(1000 * folder_s / max(done, 1), 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_python_heap_mb": round(heap_peak / 2**20, 1),
        "torch_imported": "torch" in sys.modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the shipped one)")
    parser.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    parser.add_argument("--photos", type=Path, default=paths.shared_dir() / "faces" / "prnet_aflw2000")
    parser.add_argument("--count", type=int, default=10, help="photos for the throughput run (default 10)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of one photo for the per-stage times")
    parser.add_argument("--texture-size", type=int, default=512)
    parser.add_argument("--runtimes", default="onnx", help="onnx,torch: torch needs a bundle with weights")
    parser.add_argument("--worker", choices=("onnx", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with the smallest sizes (tests/test_benchmarks.py)")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeat = 2, 1
    if args.worker:
        print(json.dumps(worker(args)))
        return

    model = args.model or paths.default_model_dir()
    facemodel = args.facemodel
    if not (model / "manifest.json").is_file():
        sys.exit(f"no model bundle at {model}")

    results = []
    for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
        cmd = [sys.executable, __file__, "--worker", runtime, "--model", str(model), "--photos", str(args.photos),
               "--count", str(args.count), "--repeat", str(args.repeat), "--texture-size", str(args.texture_size)]
        if facemodel:
            cmd += ["--facemodel", str(facemodel)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)})
        if out.returncode:
            sys.exit(f"{runtime} worker failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"## Inference ({model}; texture {args.texture_size}², CPU, {os.cpu_count()} cores)\n")
    print("ms per face (median of one photo); *reconstruct* = load → texture (no files), *end to end* = "
          "+ writing OBJ, GLB, PLY, NPZ and the overlay\n")
    print("| runtime | " + " | ".join(STAGES) + " | reconstruct | end to end | folder ms/photo | photos/s | "
          "peak RSS MB | py-heap MB | torch imported |")
    print("|---" * (len(STAGES) + 8) + "|")
    for r in results:
        s = r["single_ms"]
        print(f"| {r['runtime']} | " + " | ".join(f"{s[k]:.1f}" for k in STAGES)
              + f" | {s['reconstruct']:.1f} | {s['end_to_end']:.1f} | {r['folder']['ms_per_photo']:.1f} | "
              + f"{r['folder']['photos_per_s']} | {r['peak_rss_mb']:.0f} | {r['peak_python_heap_mb']:.0f} | "
              + f"{r['torch_imported']} |")
    print("\n| runtime | texture stage ms: " + " | ".join(results[0]["texture_ms"]) + " |")
    print("|---" * (len(results[0]["texture_ms"]) + 1) + "|")
    for r in results:
        print(f"| {r['runtime']} | " + " | ".join(f"{v:.0f}" for v in r["texture_ms"].values()) + " |")
    print("texture targets (photo mode): " + ", ".join(f"{k} ≤ {v:.0f} ms" for k, v in TEXTURE_TARGET_MS.items()))
    print("\nwrite, ms per format: " + ", ".join(
        f"{r['runtime']}: " + " ".join(f"{f} {r['single_ms']['write_' + f]:.0f}" for f in (*FORMATS, "overlay"))
        for r in results))
    print(f"\ntargets: ≤ {TARGET_MS:.0f} ms per face end to end, peak ≤ {TARGET_PEAK_MB:.0f} MB; "
          f"folder: {results[0]['folder']['done']} of {results[0]['folder']['photos']} photos of {args.photos}; "
          f"load average at the end {os.getloadavg()[0]:.1f} (other processes share the cores)")
    summary = {"model": str(model), "texture_size": args.texture_size, "results": results,
               "targets": {"end_to_end_ms": TARGET_MS, "peak_mb": TARGET_PEAK_MB},
               "load_average": round(os.getloadavg()[0], 2),
               "meets_targets": {r["runtime"]: {"reconstruct": r["single_ms"]["reconstruct"] <= TARGET_MS,
                                                "end_to_end": r["single_ms"]["end_to_end"] <= TARGET_MS,
                                                "peak": r["peak_rss_mb"] <= TARGET_PEAK_MB,
                                                **{f"texture {k}": r["texture_ms"][k] <= v
                                                   for k, v in TEXTURE_TARGET_MS.items()}} for r in results}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
