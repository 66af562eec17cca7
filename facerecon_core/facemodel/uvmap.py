"""UV position maps: the image space of the Attribute Spatial Maps (ASMs).

Convention (OpenGL / Blender): u runs left to right, v bottom to top, so texel row ``i`` of an
H×W map has its centre at v = 1 − (i + 0.5)/H and column ``j`` at u = (j + 0.5)/W. A map stores
any per-vertex attribute (x/y/z positions in R/G/B for an ASM) interpolated linearly inside each
UV triangle; texels no triangle covers are filled from the nearest covered texel so bilinear
sampling near the face border stays exact. Where UV triangles are smaller than texels, bilinear
sampling of that map is not exact at the vertices, so ``to_map`` then corrects the texels a few
Landweber steps toward values whose bilinear samples at the vertex UVs reproduce the attribute.
Everything here is numpy (+ numba kernels): it runs at inference without torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DEFAULT_UV_SIZE = 256

# 68-point landmark groups (iBUG scheme) that make up the high-weight regions of the facial mask.
LANDMARK_REGIONS = {
    "right_eye": np.arange(36, 42),
    "left_eye": np.arange(42, 48),
    "nose": np.arange(27, 36),
    "mouth": np.arange(48, 60),
}


def uv_to_pixel(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Continuous texel coordinates (x, y) of UVs, texel centres at integers, row 0 at v = 1."""
    h, w = size
    uv = np.asarray(uv, np.float64)
    return np.stack([uv[..., 0] * w - 0.5, (1.0 - uv[..., 1]) * h - 0.5], axis=-1)


@dataclass(frozen=True)
class UVRaster:
    """Which triangle covers each texel of an H×W UV image, with barycentric weights."""

    corners: np.ndarray  # (H, W, 3) int32 vertex ids of the covering triangle (0 where uncovered)
    weights: np.ndarray  # (H, W, 3) float32 barycentric weights of those vertices (0 where uncovered)
    coverage: np.ndarray  # (H, W) bool
    fill_index: np.ndarray  # (H*W,) int64 flat index of the nearest covered texel (itself if covered)
    taps: BilinearTaps  # how each vertex samples the map

    @property
    def size(self) -> tuple[int, int]:
        return self.coverage.shape

    @classmethod
    def build(cls, uv: np.ndarray, triangles: np.ndarray, size: tuple[int, int] = (DEFAULT_UV_SIZE,) * 2):
        """Rasterize the mesh's UV layout (with our CPU rasterizer) at ``size`` = (H, W)."""
        from scipy import ndimage

        from facerecon_core.render.kernels import rasterize_numpy

        uv = np.asarray(uv, np.float64)
        pos = np.zeros((1, len(uv), 4))
        pos[0, :, :2] = 2.0 * uv - 1.0
        pos[0, :, 3] = 1.0
        # The rasterizer's row 0 is v = 0 (bottom); UV images put v = 1 in row 0.
        rast = rasterize_numpy(pos, np.ascontiguousarray(triangles, np.int32), tuple(size))[0, ::-1]
        tri_id = rast[..., 3].astype(np.int64) - 1
        coverage = tri_id >= 0
        if not coverage.any():
            raise ValueError("no triangle covers any texel: UVs must lie in [0, 1]")
        corners = np.where(coverage[..., None], triangles[np.maximum(tri_id, 0)], 0).astype(np.int32)
        u, v = rast[..., 0], rast[..., 1]
        weights = np.where(coverage[..., None], np.stack([u, v, 1.0 - u - v], -1), 0.0).astype(np.float32)
        _, (iy, ix) = ndimage.distance_transform_edt(~coverage, return_indices=True)
        fill_index = (iy * size[1] + ix).reshape(-1).astype(np.int64)
        return cls(np.ascontiguousarray(corners), np.ascontiguousarray(weights), coverage, fill_index,
                   BilinearTaps.of(uv, tuple(size)))

    def to_map(self, attr: np.ndarray, refine_steps: int = 5) -> np.ndarray:
        """Per-vertex ``attr`` (V, C) or (B, V, C) → UV map (H, W, C) or (B, H, W, C), float32.

        ``refine_steps`` Landweber steps (step 0.5) make bilinear samples at the vertices match
        ``attr``: at 256² the mean round-trip error of a face drops from ~0.03 to ~0.01 mm.
        """
        attr = np.asarray(attr, np.float32)
        gathered = attr[..., self.corners, :]  # (..., H, W, 3, C)
        out = np.einsum("hwk,...hwkc->...hwc", self.weights, gathered)
        flat = np.ascontiguousarray(out.reshape(*out.shape[:-3], -1, out.shape[-1])[..., self.fill_index, :])
        if refine_steps:
            maps, values = flat.reshape(-1, *flat.shape[-2:]), attr.reshape(-1, *attr.shape[-2:])
            for m, v in zip(maps, np.broadcast_to(values, (len(maps), *values.shape[-2:]))):
                _landweber_kernel()(m, np.ascontiguousarray(v), self.taps.index, self.taps.weight,
                                    self.taps.inv_norm, refine_steps, 0.5)
        return flat.reshape(out.shape)


@dataclass(frozen=True)
class BilinearTaps:
    """The four texels (flat indices) and bilinear weights with which each UV point samples a map."""

    index: np.ndarray  # (V, 4) int64
    weight: np.ndarray  # (V, 4) float32
    inv_norm: np.ndarray  # (H*W,) float32: 1 / max(Σ weight² of the taps on each texel, ¼) (0 if none)

    @classmethod
    def of(cls, uv: np.ndarray, size: tuple[int, int]) -> BilinearTaps:
        """Taps of UVs (V, 2) on an H×W map; positions clamp to the border texel centres."""
        return cls.at_pixels(uv_to_pixel(uv, size), size)

    @classmethod
    def at_pixels(cls, xy: np.ndarray, size: tuple[int, int]) -> BilinearTaps:
        """Taps of pixel positions (N, 2) (x, y; pixel centres on integers) on an H×W image, clamped likewise."""
        h, w = size
        x, y = np.clip(xy[:, 0], 0, w - 1), np.clip(xy[:, 1], 0, h - 1)
        x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
        y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
        fx, fy = x - x0, y - y0
        index = np.stack([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1], axis=1)
        weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
        norm = np.bincount(index.ravel(), (weight**2).ravel(), minlength=h * w)
        # a texel only grazed by a tap (tiny Σw²) would take huge corrections: floor the norm
        inv_norm = np.where(norm > 1e-8, 1.0 / np.maximum(norm, 0.25), 0.0)
        return cls(index, weight.astype(np.float32), inv_norm.astype(np.float32))

    def sample(self, flat_map: np.ndarray) -> np.ndarray:
        """Flat map (..., H*W, C) → values at the UV points (..., V, C)."""
        return np.einsum("vk,...vkc->...vc", self.weight, flat_map[..., self.index, :])



def rasterize_uv(uv: np.ndarray, triangles: np.ndarray, size: tuple[int, int],
                 priority: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The UV layout rasterized in plain numpy (no numba, for the add-on): ``(triangle (H, W) int64, −1 where no
    triangle covers the texel centre; barycentric weights (H, W, 3) float32 of its corners)``. ``priority``
    (F,): which triangle takes a texel that several cover (the highest)."""
    h, w = size
    uv = np.asarray(uv, np.float64)
    tri = np.asarray(triangles, np.int64)
    corner = uv_to_pixel(uv, (h, w))[tri]  # (F, 3, 2)
    lo = np.clip(np.ceil(corner.min(1) - 1e-9), 0, [w - 1, h - 1]).astype(np.int64)
    hi = np.clip(np.floor(corner.max(1) + 1e-9), -1, [w - 1, h - 1]).astype(np.int64)
    span = np.maximum(hi - lo + 1, 0)
    counts = span[:, 0] * span[:, 1]
    face = np.repeat(np.arange(len(tri)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    x = lo[face, 0] + local % span[face, 0]
    y = lo[face, 1] + local // span[face, 0]
    a, b, c = corner[face, 0], corner[face, 1], corner[face, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = np.abs(area) > 1e-12
    area = np.where(ok, area, 1.0)

    def edge(p, q):  # signed area of (p, q, texel centre) / the triangle's
        return ((q[:, 0] - p[:, 0]) * (y - p[:, 1]) - (q[:, 1] - p[:, 1]) * (x - p[:, 0])) / area

    bary = np.stack([edge(b, c), edge(c, a), edge(a, b)], axis=1)
    inside = ok & (bary >= -1e-7).all(1)
    if priority is not None:  # where UV triangles overlap, the one of highest priority is written last and wins
        order = np.argsort(priority[face], kind="stable")
        face, x, y, bary, inside = face[order], x[order], y[order], bary[order], inside[order]
    triangle = np.full((h, w), -1, np.int64)
    weights = np.zeros((h, w, 3), np.float32)
    triangle[y[inside], x[inside]] = face[inside]
    weights[y[inside], x[inside]] = bary[inside]
    return triangle, weights


def fill_polygon(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the texel centres inside the closed polygon ``points`` (N, 2) (x, y texel coordinates)."""
    h, w = size
    points = np.asarray(points, np.float64)
    mask = np.zeros((h, w), bool)
    x0, y0 = np.clip(np.floor(points.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(points.max(0)).astype(int), 0, [w - 1, h - 1])
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float64)
    mask[y0:y1 + 1, x0:x1 + 1] = inside_polygon(np.stack([xs, ys], -1), points)
    return mask


def inside_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(...) bool: which points ``xy`` (..., 2) lie inside the closed ``polygon`` (N, 2) (even-odd rule)."""
    x, y = xy[..., 0], xy[..., 1]
    inside = np.zeros(x.shape, bool)
    polygon = np.asarray(polygon, np.float64)
    for (px, py), (qx, qy) in zip(polygon, np.roll(polygon, -1, axis=0)):
        if py == qy:
            continue
        crosses = (py > y) != (qy > y)
        inside ^= crosses & (x < px + (y - py) * (qx - px) / (qy - py))
    return inside


def sample_vertices(uv_map: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinearly sample a UV map (H, W, C) or (B, H, W, C) at per-vertex UVs (V, 2) → (…, V, C).

    Sample positions are clamped to the texel centres of the border (edge replication).
    """
    uv_map = np.asarray(uv_map)
    h, w = uv_map.shape[-3:-1]
    flat = uv_map.reshape(*uv_map.shape[:-3], h * w, uv_map.shape[-1])
    return BilinearTaps.of(uv, (h, w)).sample(flat)


def face_region_mask(raster: UVRaster) -> np.ndarray:
    """The texels the face mesh covers in UV (bool H×W), small pin-holes closed."""
    from scipy import ndimage

    return ndimage.binary_fill_holes(raster.coverage)


def facial_weight_mask(
    uv: np.ndarray,
    landmark_indices: np.ndarray,
    face_mask: np.ndarray,
    feature_weight: float = 4.0,
    face_weight: float = 3.0,
    margin: float = 0.025,
) -> np.ndarray:
    """PRNet-style facial weight mask W (float32 H×W) for the ASM loss.

    Eyes, nose and mouth (convex hulls of their landmarks in UV, grown by ``margin`` in UV units)
    get ``feature_weight``, the rest of the face region ``face_weight``, outside the face 0; the
    defaults keep PRNet's 4 : 3 : 0 ratio.
    """
    import cv2

    h, w = face_mask.shape
    features = np.zeros((h, w), np.uint8)
    lm_px = uv_to_pixel(np.asarray(uv)[landmark_indices], (h, w))
    for ids in LANDMARK_REGIONS.values():
        hull = cv2.convexHull(np.round(lm_px[ids]).astype(np.int32))
        cv2.fillConvexPoly(features, hull, 1)
    radius = max(1, int(round(margin * max(h, w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    features = cv2.dilate(features, kernel).astype(bool)
    mask = np.where(face_mask, face_weight, 0.0)
    mask[features & face_mask] = feature_weight
    return mask.astype(np.float32)


@functools.cache
def _landweber_kernel():
    """The compiled refinement kernel; numba is imported only when a map is made (not to sample one)."""
    import numba

    return numba.njit(cache=True)(_landweber)


def _landweber(flat, attr, index, weight, inv_norm, steps, step):
    """In place: ``steps`` times, move the texels (N, C) toward values whose bilinear samples at the
    points reproduce ``attr`` (V, C): m += step · D⁻¹ Sᵀ (attr − S m), D = max(Σ w², ¼) per texel."""
    n_points, n_channels = attr.shape
    update = np.zeros_like(flat)
    for _ in range(steps):
        update[:] = 0.0
        for i in range(n_points):
            for c in range(n_channels):
                sampled = 0.0
                for k in range(4):
                    sampled += weight[i, k] * flat[index[i, k], c]
                residual = attr[i, c] - sampled
                for k in range(4):
                    update[index[i, k], c] += weight[i, k] * residual
        for t in range(flat.shape[0]):
            for c in range(n_channels):
                flat[t, c] += step * inv_norm[t] * update[t, c]
