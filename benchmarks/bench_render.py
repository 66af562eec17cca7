"""Benchmark the CPU rasterizer: batch 8 at 224x224 with the BFM no-neck face mesh.

Times (median ms per batch, after a numba warm-up) of (a) rasterize + interpolate of
3-channel vertex attributes and (b) a full ``render_mesh`` with a UV texture and SH
lighting, each forward only and forward + backward. Prints a Markdown table and, as
the last line, the numbers as JSON. Uses the face model asset when it is built and a
synthetic face-sized mesh otherwise (``--synthetic`` forces it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

from facerecon_core.render import PerspectiveCamera, euler_to_matrix, interpolate, rasterize, render_mesh

BATCH, SIZE, FOCAL = 8, 224, 1015.0


def synthetic_face(n: int = 196) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face-sized (mm) ellipsoid cap on an n x n grid: ~2 (n - 1)^2 triangles, CCW from the front."""
    s, t = np.meshgrid(np.linspace(-1.0, 1.0, n), np.linspace(-1.0, 1.0, n))
    x, y = 75.0 * s, 100.0 * t
    z = 60.0 * np.sqrt(np.clip(1.0 - 0.5 * (s**2 + t**2), 0.0, None))
    verts = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    uv = np.stack([(s + 1) / 2, (t + 1) / 2], -1).reshape(-1, 2).astype(np.float32)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return verts, tri.astype(np.int32), uv


def load_mesh(synthetic: bool) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(name, vertices mm [V, 3], triangles [F, 3], uv [V, 2]) of the benchmark mesh."""
    if not synthetic:
        from facerecon_core.facemodel import FaceModel, FaceModelError

        try:
            fm = FaceModel.load()
            return "BFM no-neck", fm.mean_shape, fm.triangles, fm.uv
        except FaceModelError as exc:
            print(f"face model not available ({exc}); run `facerecon assets build` to benchmark the real "
                  "mesh. Using a synthetic mesh of the same size.", file=sys.stderr)
    return "synthetic", *synthetic_face()


def scene(verts: np.ndarray) -> tuple[torch.Tensor, PerspectiveCamera]:
    """Batch of slightly rotated faces filling most of a 224x224 image."""
    v = torch.from_numpy(verts - verts.mean(0))
    extent = float((v.max(0).values - v.min(0).values)[:2].max())
    distance = FOCAL * extent / (0.9 * SIZE) + float(v[:, 2].max())
    gen = torch.Generator().manual_seed(0)
    angles = (torch.rand(BATCH, 3, generator=gen) - 0.5) * torch.tensor([0.3, 0.6, 0.2])
    rotated = v @ euler_to_matrix(angles).transpose(1, 2)
    cam = PerspectiveCamera(focal=FOCAL, width=SIZE, height=SIZE, near=10.0, far=1e4)
    return rotated - torch.tensor([0.0, 0.0, distance]), cam


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    fn()  # warm-up: numba compilation and allocator
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic mesh even if the asset exists")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with the smallest sizes (tests/test_benchmarks.py)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)

    name, verts_np, tri_np, uv_np = load_mesh(args.synthetic)
    verts_cam, cam = scene(verts_np)
    tri, uv = torch.from_numpy(tri_np), torch.from_numpy(uv_np)
    pos = cam.to_clip(verts_cam)
    gen = torch.Generator().manual_seed(1)
    colors = torch.rand(BATCH, len(verts_np), 3, generator=gen)
    texture = torch.rand(BATCH, 3, 256, 256, generator=gen)
    sh = torch.zeros(BATCH, 3, 9)
    sh[:, :, 0], sh[:, :, 3] = 0.8, 0.2

    def raster(grad: bool) -> None:
        p, a = pos.detach().requires_grad_(grad), colors.detach().requires_grad_(grad)
        out = interpolate(a, rasterize(p, tri, cam.resolution), tri)
        if grad:
            out.sum().backward()

    def shaded(grad: bool) -> None:
        v = verts_cam.detach().requires_grad_(grad)
        t, s = texture.detach().requires_grad_(grad), sh.detach().requires_grad_(grad)
        out = render_mesh(v, tri, cam, uv=uv, texture=t, sh=s)
        if grad:
            out.image.sum().backward()

    results = {}
    for label, fn in [("rasterize+interpolate", raster), ("render_mesh (UV texture + SH)", shaded)]:
        with torch.no_grad():
            fwd = median_ms(lambda: fn(False), args.runs)
        fwd_bwd = median_ms(lambda: fn(True), args.runs)
        results[label] = {"forward_ms": round(fwd, 2), "forward_backward_ms": round(fwd_bwd, 2)}

    with torch.no_grad():
        coverage = float((rasterize(pos, tri, cam.resolution)[..., 3] > 0).float().mean())
    print(f"mesh: {name} ({len(verts_np)} vertices, {len(tri_np)} triangles), batch {BATCH} at {SIZE}x{SIZE}, "
          f"coverage {coverage:.0%}, threads torch {torch.get_num_threads()} numba {numba.get_num_threads()}\n")
    print("| case | forward (ms) | forward+backward (ms) |")
    print("| --- | ---: | ---: |")
    for label, r in results.items():
        print(f"| {label} | {r['forward_ms']:.1f} | {r['forward_backward_ms']:.1f} |")
    print(json.dumps({"mesh": name, "batch": BATCH, "size": SIZE, "threads": numba.get_num_threads(),
                      "coverage": round(coverage, 3), **results}))


if __name__ == "__main__":
    main()
