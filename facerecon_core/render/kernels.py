"""Numba kernels of the CPU rasterizer (numpy only: this module never imports torch).

Buffer semantics follow nvdiffrast: ``rast[b, y, x] = (u, v, z/w, triangle_id + 1)``
with zeros on the background, ``u`` and ``v`` the perspective-correct barycentric
weights of the triangle's vertices 0 and 1, and pixel ``(x, y)`` centred at NDC
``((x + 0.5) / W * 2 - 1, (y + 0.5) / H * 2 - 1)`` (row 0 is NDC y = -1, the bottom).

For clip-space vertices ``(x_i, y_i, z_i, w_i)`` and a pixel centre ``p`` put
``a_i = x_i - p_x w_i`` and ``b_i = y_i - p_y w_i``; then ``c = a x b`` gives the
barycentrics ``c / sum(c)``. The pixel is covered when every ``c_i`` has the sign of
``sum(c)`` (zero counts as inside) and ``-1 <= z/w <= 1`` with
``z/w = sum(c_i z_i) / sum(c_i w_i)``; the smallest ``z/w`` wins, the lower
triangle id on ties. There is no back-face culling.

Differences from nvdiffrast: triangles with any vertex at ``w <= 0`` are dropped
instead of clipped (the near/far planes are honoured per pixel by the depth range
test), and coverage is computed in float64 rather than fixed point.

All arithmetic is float64; outputs take the dtype of the inputs (float32 or float64).
Images of a batch (and horizontal bands of an image when the batch is smaller than
the thread count) are rasterized in parallel with ``numba.prange``; the backward
kernels accumulate per image sequentially, so they are free of races.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "rasterize_numpy",
    "interpolate_numpy",
    "rasterize_backward_numpy",
    "interpolate_backward_numpy",
    "vertex_normals_numpy",
    "vertex_normals_backward_numpy",
]


@numba.njit(cache=True, inline="always")
def _vertex(pos, b, i):
    """Clip-space vertex ``i`` of image ``b`` as four float64 values."""
    return (
        np.float64(pos[b, i, 0]),
        np.float64(pos[b, i, 1]),
        np.float64(pos[b, i, 2]),
        np.float64(pos[b, i, 3]),
    )


@numba.njit(cache=True, inline="always")
def _edge_coeffs(x0, y0, w0, x1, y1, w1):
    """Coefficients (A, B, C) of ``c = A + B p_x + C p_y`` for the edge (v0, v1)."""
    return x0 * y1 - x1 * y0, w1 * y0 - w0 * y1, x1 * w0 - x0 * w1


@numba.njit(cache=True)
def _rasterize_band(pos, screen, tri, b, y_start, y_stop, out):
    """Rasterize all triangles of image ``b`` into rows ``[y_start, y_stop)`` of ``out``."""
    height, width = out.shape[1], out.shape[2]
    sx, sy = 2.0 / width, 2.0 / height
    zbuf = np.full((y_stop - y_start, width), np.inf)
    img = out[b]
    for t in range(tri.shape[0]):
        i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
        ya = min(screen[b, i0, 1], screen[b, i1, 1], screen[b, i2, 1])
        yb = max(screen[b, i0, 1], screen[b, i1, 1], screen[b, i2, 1])
        if not (yb >= y_start - 1e-6 and ya <= y_stop - 1 + 1e-6):
            continue  # also rejects NaN, i.e. a vertex with w <= 0
        xa = min(screen[b, i0, 0], screen[b, i1, 0], screen[b, i2, 0])
        xb = max(screen[b, i0, 0], screen[b, i1, 0], screen[b, i2, 0])
        if not (xb >= -1e-6 and xa <= width - 1 + 1e-6):
            continue
        x_lo = max(int(np.ceil(xa - 1e-6)), 0)
        x_hi = min(int(np.floor(xb + 1e-6)), width - 1)
        y_lo = max(int(np.ceil(ya - 1e-6)), y_start)
        y_hi = min(int(np.floor(yb + 1e-6)), y_stop - 1)
        if x_lo > x_hi or y_lo > y_hi:
            continue
        x0, y0, z0, w0 = _vertex(pos, b, i0)
        x1, y1, z1, w1 = _vertex(pos, b, i1)
        x2, y2, z2, w2 = _vertex(pos, b, i2)
        a0, b0, c0 = _edge_coeffs(x1, y1, w1, x2, y2, w2)
        a1, b1, c1 = _edge_coeffs(x2, y2, w2, x0, y0, w0)
        a2, b2, c2 = _edge_coeffs(x0, y0, w0, x1, y1, w1)
        for y in range(y_lo, y_hi + 1):
            ndc_y = (y + 0.5) * sy - 1.0
            r0 = a0 + c0 * ndc_y
            r1 = a1 + c1 * ndc_y
            r2 = a2 + c2 * ndc_y
            for x in range(x_lo, x_hi + 1):
                ndc_x = (x + 0.5) * sx - 1.0
                e0 = r0 + b0 * ndc_x
                e1 = r1 + b1 * ndc_x
                e2 = r2 + b2 * ndc_x
                s = e0 + e1 + e2
                if s > 0.0:
                    if e0 < 0.0 or e1 < 0.0 or e2 < 0.0:
                        continue
                elif s < 0.0:
                    if e0 > 0.0 or e1 > 0.0 or e2 > 0.0:
                        continue
                else:
                    continue
                zw = (e0 * z0 + e1 * z1 + e2 * z2) / (e0 * w0 + e1 * w1 + e2 * w2)
                if zw < -1.0 or zw > 1.0 or zw >= zbuf[y - y_start, x]:
                    continue
                zbuf[y - y_start, x] = zw
                img[y, x, 0] = e0 / s
                img[y, x, 1] = e1 / s
                img[y, x, 2] = zw
                img[y, x, 3] = t + 1


@numba.njit(cache=True, parallel=True)
def _rasterize_kernel(pos, tri, out, n_bands):
    """Rasterize every image in ``n_bands`` horizontal bands, all (image, band) pairs in parallel."""
    n_batch, height, width = out.shape[0], out.shape[1], out.shape[2]
    # Project every vertex once per image to pixel space (NaN when w <= 0).
    screen = np.empty((n_batch, pos.shape[1], 2))
    for b in numba.prange(n_batch):
        for i in range(pos.shape[1]):
            w = np.float64(pos[b, i, 3])
            screen[b, i, 0] = (pos[b, i, 0] / w + 1.0) * 0.5 * width - 0.5 if w > 0.0 else np.nan
            screen[b, i, 1] = (pos[b, i, 1] / w + 1.0) * 0.5 * height - 0.5 if w > 0.0 else np.nan
    for job in numba.prange(n_batch * n_bands):
        b, band = job // n_bands, job % n_bands
        _rasterize_band(pos, screen, tri, b, band * height // n_bands, (band + 1) * height // n_bands, out)


@numba.njit(cache=True)
def _rasterize_backward_band(pos, tri, rast, grad_rast, b, y_start, y_stop, grad_pos):
    """Accumulate into ``grad_pos`` [V, 4] the gradient of rows ``[y_start, y_stop)`` of image ``b``."""
    height, width = rast.shape[1], rast.shape[2]
    n_tri = tri.shape[0]
    sx, sy = 2.0 / width, 2.0 / height
    for y in range(y_start, y_stop):
        ndc_y = (y + 0.5) * sy - 1.0
        for x in range(width):
            t = int(rast[b, y, x, 3]) - 1
            gu = np.float64(grad_rast[b, y, x, 0])
            gv = np.float64(grad_rast[b, y, x, 1])
            if t < 0 or t >= n_tri or (gu == 0.0 and gv == 0.0):
                continue
            ndc_x = (x + 0.5) * sx - 1.0
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            x0, y0, _, w0 = _vertex(pos, b, i0)
            x1, y1, _, w1 = _vertex(pos, b, i1)
            x2, y2, _, w2 = _vertex(pos, b, i2)
            a0 = x0 - ndc_x * w0
            a1 = x1 - ndc_x * w1
            a2 = x2 - ndc_x * w2
            b0 = y0 - ndc_y * w0
            b1 = y1 - ndc_y * w1
            b2 = y2 - ndc_y * w2
            c0 = a1 * b2 - a2 * b1
            c1 = a2 * b0 - a0 * b2
            c2 = a0 * b1 - a1 * b0
            s = c0 + c1 + c2
            if s == 0.0:
                continue
            # d(c_j / s)/dc_k = (delta_jk - lambda_j) / s, with g = (gu, gv, 0).
            gl = (gu * c0 + gv * c1) / s
            g0 = (gu - gl) / s
            g1 = (gv - gl) / s
            g2 = -gl / s
            # c = a x b  =>  dL/da = b x g,  dL/db = g x a.
            da0 = b1 * g2 - b2 * g1
            da1 = b2 * g0 - b0 * g2
            da2 = b0 * g1 - b1 * g0
            db0 = g1 * a2 - g2 * a1
            db1 = g2 * a0 - g0 * a2
            db2 = g0 * a1 - g1 * a0
            grad_pos[i0, 0] += da0
            grad_pos[i1, 0] += da1
            grad_pos[i2, 0] += da2
            grad_pos[i0, 1] += db0
            grad_pos[i1, 1] += db1
            grad_pos[i2, 1] += db2
            grad_pos[i0, 3] -= ndc_x * da0 + ndc_y * db0
            grad_pos[i1, 3] -= ndc_x * da1 + ndc_y * db1
            grad_pos[i2, 3] -= ndc_x * da2 + ndc_y * db2


@numba.njit(cache=True, parallel=True)
def _rasterize_backward_kernel(pos, tri, rast, grad_rast, grad_pos):
    """``grad_pos`` [B, n_bands, V, 4]: one private accumulator per (image, band) job."""
    n_batch, n_bands, height = rast.shape[0], grad_pos.shape[1], rast.shape[1]
    for job in numba.prange(n_batch * n_bands):
        b, band = job // n_bands, job % n_bands
        y_start, y_stop = band * height // n_bands, (band + 1) * height // n_bands
        _rasterize_backward_band(pos, tri, rast, grad_rast, b, y_start, y_stop, grad_pos[b, band])


@numba.njit(cache=True, parallel=True)
def _interpolate_kernel(attr, rast, tri, out):
    n_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    n_tri, n_chan = tri.shape[0], attr.shape[2]
    for row in numba.prange(n_batch * height):
        b, y = row // height, row % height
        ab = min(np.int64(b), attr.shape[0] - 1)  # attr of batch 1 broadcasts
        for x in range(width):
            t = int(rast[b, y, x, 3]) - 1
            if t < 0 or t >= n_tri:
                for k in range(n_chan):
                    out[b, y, x, k] = 0.0
                continue
            u = np.float64(rast[b, y, x, 0])
            v = np.float64(rast[b, y, x, 1])
            w = 1.0 - u - v
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            for k in range(n_chan):
                out[b, y, x, k] = u * attr[ab, i0, k] + v * attr[ab, i1, k] + w * attr[ab, i2, k]


@numba.njit(cache=True)
def _interpolate_backward_band(attr, rast, tri, grad_out, grad_attr, grad_rast, want_attr, want_rast, y_start, y_stop):
    """Backward of rows ``[y_start, y_stop)`` of one image (``attr`` [V, C], ``rast`` [H, W, 4])."""
    width = rast.shape[1]
    n_tri, n_chan = tri.shape[0], attr.shape[1]
    for y in range(y_start, y_stop):
        for x in range(width):
            if want_rast:
                for k in range(4):
                    grad_rast[y, x, k] = 0.0
            t = int(rast[y, x, 3]) - 1
            if t < 0 or t >= n_tri:
                continue
            u = np.float64(rast[y, x, 0])
            v = np.float64(rast[y, x, 1])
            w = 1.0 - u - v
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            gu = 0.0
            gv = 0.0
            for k in range(n_chan):
                g = np.float64(grad_out[y, x, k])
                if want_attr:
                    grad_attr[i0, k] += u * g
                    grad_attr[i1, k] += v * g
                    grad_attr[i2, k] += w * g
                if want_rast:
                    a2 = np.float64(attr[i2, k])
                    gu += g * (attr[i0, k] - a2)
                    gv += g * (attr[i1, k] - a2)
            if want_rast:
                grad_rast[y, x, 0] = gu
                grad_rast[y, x, 1] = gv


@numba.njit(cache=True, parallel=True)
def _interpolate_backward_kernel(attr, rast, tri, grad_out, grad_attr, grad_rast, want_attr, want_rast):
    """``grad_attr`` [B, n_bands, V, C]: one private accumulator per (image, band) job."""
    n_attr, n_bands, height = attr.shape[0], grad_attr.shape[1], rast.shape[1]
    for job in numba.prange(rast.shape[0] * n_bands):
        b, band = job // n_bands, job % n_bands
        _interpolate_backward_band(
            attr[min(np.int64(b), n_attr - 1)],  # attr of batch 1 broadcasts
            rast[b],
            tri,
            grad_out[b],
            grad_attr[b, band] if want_attr else grad_attr[0, 0],
            grad_rast[b] if want_rast else grad_rast[0],
            want_attr,
            want_rast,
            band * height // n_bands,
            (band + 1) * height // n_bands,
        )


def _bands(n_batch: int, height: int) -> int:
    """Horizontal bands per image: enough (image, band) jobs to keep every thread busy."""
    return max(1, min(-(-numba.get_num_threads() // n_batch), height))


def _sum_bands(acc: np.ndarray) -> np.ndarray:
    """Sum per-band accumulators [B, n_bands, ...] to [B, ...]."""
    return acc[:, 0] if acc.shape[1] == 1 else acc.sum(axis=1)


def _check_float(name: str, arr: np.ndarray) -> None:
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {arr.dtype}")


def _check_tri(tri: np.ndarray, n_vert: int) -> None:
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.dtype != np.int32:
        raise ValueError(f"tri must be an int32 array of shape [F, 3], got {tri.dtype} {tri.shape}")
    if tri.size and (tri.min() < 0 or tri.max() >= n_vert):
        raise ValueError(f"tri indexes vertices outside [0, {n_vert})")


def _check_rast(rast: np.ndarray) -> None:
    if rast.ndim != 4 or rast.shape[3] != 4:
        raise ValueError(f"rast must have shape [B, H, W, 4], got {rast.shape}")
    _check_float("rast", rast)


def _as_batched_attr(attr: np.ndarray, n_batch: int) -> np.ndarray:
    if attr.ndim == 2:
        attr = attr[None]
    if attr.ndim != 3 or attr.shape[0] not in (1, n_batch):
        raise ValueError(f"attr must have shape [V, C], [1, V, C] or [{n_batch}, V, C], got {attr.shape}")
    _check_float("attr", attr)
    return np.ascontiguousarray(attr)


def rasterize_numpy(pos_clip: np.ndarray, tri: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """Rasterize clip-space vertices ``pos_clip`` [B, V, 4] into ``rast`` [B, H, W, 4].

    ``resolution`` is ``(H, W)``; the output dtype is that of ``pos_clip``.
    """
    if pos_clip.ndim != 3 or pos_clip.shape[2] != 4:
        raise ValueError(f"pos_clip must have shape [B, V, 4], got {pos_clip.shape}")
    _check_float("pos_clip", pos_clip)
    _check_tri(tri, pos_clip.shape[1])
    height, width = (int(r) for r in resolution)
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution must be two positive ints (H, W), got {resolution}")
    out = np.zeros((pos_clip.shape[0], height, width, 4), pos_clip.dtype)
    _rasterize_kernel(np.ascontiguousarray(pos_clip), np.ascontiguousarray(tri), out, _bands(len(out), height))
    return out


def rasterize_backward_numpy(
    pos_clip: np.ndarray, tri: np.ndarray, rast: np.ndarray, grad_rast: np.ndarray
) -> np.ndarray:
    """Gradient w.r.t. ``pos_clip`` given ``grad_rast``; only channels u, v carry gradient."""
    n_batch, n_vert = pos_clip.shape[:2]
    grad = np.zeros((n_batch, _bands(n_batch, rast.shape[1]), n_vert, 4), np.float64)
    _rasterize_backward_kernel(np.ascontiguousarray(pos_clip), tri, rast, np.ascontiguousarray(grad_rast), grad)
    return _sum_bands(grad).astype(pos_clip.dtype, copy=False)


def interpolate_numpy(attr: np.ndarray, rast: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Interpolate vertex attributes ``attr`` ([V, C], [1, V, C] or [B, V, C]) over ``rast``.

    Returns [B, H, W, C] in the dtype of ``attr``; zero on the background.
    """
    _check_rast(rast)
    attr = _as_batched_attr(attr, rast.shape[0])
    _check_tri(tri, attr.shape[1])
    out = np.empty(rast.shape[:3] + (attr.shape[2],), attr.dtype)
    _interpolate_kernel(attr, np.ascontiguousarray(rast), np.ascontiguousarray(tri), out)
    return out


def interpolate_backward_numpy(
    attr: np.ndarray,
    rast: np.ndarray,
    tri: np.ndarray,
    grad_out: np.ndarray,
    want_attr: bool = True,
    want_rast: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients ``(grad_attr, grad_rast)`` of :func:`interpolate_numpy`.

    ``grad_attr`` has the shape of ``attr`` (summed over the batch when broadcast);
    ``grad_rast`` is nonzero in channels u and v only. Either is None when not wanted.
    """
    batched = _as_batched_attr(attr, rast.shape[0])
    n_batch = rast.shape[0]
    n_bands = _bands(n_batch, rast.shape[1])
    grad_attr = np.zeros((n_batch, n_bands) + batched.shape[1:] if want_attr else (1, 1, 1, 1), attr.dtype)
    grad_rast = np.empty(rast.shape if want_rast else (1, 1, 1, 4), rast.dtype)
    _interpolate_backward_kernel(
        batched, rast, tri, np.ascontiguousarray(grad_out), grad_attr, grad_rast, want_attr, want_rast
    )
    ga = None
    if want_attr:
        ga = _sum_bands(grad_attr)
        if batched.shape[0] == 1:
            ga = ga.sum(axis=0)  # attr was broadcast over the batch
        ga = ga.reshape(attr.shape)
    return ga, (grad_rast if want_rast else None)


# ------------------------------------------------------------------------------ vertex normals
@numba.njit(cache=True)
def _accumulate_normals(verts, tri, acc):
    """``acc`` [V, 3] += the (2 x area)-weighted face normals of ``verts`` [V, 3] at their corners."""
    for t in range(tri.shape[0]):
        i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
        ax = np.float64(verts[i1, 0]) - verts[i0, 0]
        ay = np.float64(verts[i1, 1]) - verts[i0, 1]
        az = np.float64(verts[i1, 2]) - verts[i0, 2]
        bx = np.float64(verts[i2, 0]) - verts[i0, 0]
        by = np.float64(verts[i2, 1]) - verts[i0, 1]
        bz = np.float64(verts[i2, 2]) - verts[i0, 2]
        cx = ay * bz - az * by
        cy = az * bx - ax * bz
        cz = ax * by - ay * bx
        for i in (i0, i1, i2):
            acc[i, 0] += cx
            acc[i, 1] += cy
            acc[i, 2] += cz


@numba.njit(cache=True, parallel=True)
def _vertex_normals_kernel(verts, tri, eps, out):
    n_batch, n_vert = verts.shape[0], verts.shape[1]
    for b in numba.prange(n_batch):
        acc = np.zeros((n_vert, 3))
        _accumulate_normals(verts[b], tri, acc)
        for i in range(n_vert):
            norm = max(np.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2), eps)
            for k in range(3):
                out[b, i, k] = acc[i, k] / norm


@numba.njit(cache=True, parallel=True)
def _vertex_normals_backward_kernel(verts, tri, grad_out, eps, grad_verts):
    n_batch, n_vert = verts.shape[0], verts.shape[1]
    for b in numba.prange(n_batch):
        acc = np.zeros((n_vert, 3))
        _accumulate_normals(verts[b], tri, acc)
        # Through the normalisation n = N / max(|N|, eps): gN = (g - n (n.g)) / |N| above eps.
        g_acc = np.empty((n_vert, 3))
        for i in range(n_vert):
            gx, gy, gz = np.float64(grad_out[b, i, 0]), np.float64(grad_out[b, i, 1]), np.float64(grad_out[b, i, 2])
            length = np.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2)
            if length > eps:
                nx, ny, nz = acc[i, 0] / length, acc[i, 1] / length, acc[i, 2] / length
                dot = nx * gx + ny * gy + nz * gz
                g_acc[i, 0] = (gx - nx * dot) / length
                g_acc[i, 1] = (gy - ny * dot) / length
                g_acc[i, 2] = (gz - nz * dot) / length
            else:
                g_acc[i, 0], g_acc[i, 1], g_acc[i, 2] = gx / eps, gy / eps, gz / eps
        v = verts[b]
        gv = grad_verts[b]
        for t in range(tri.shape[0]):
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            # c = a x b with a = v1 - v0, b = v2 - v0; dL/da = b x g, dL/db = g x a.
            g0 = g_acc[i0, 0] + g_acc[i1, 0] + g_acc[i2, 0]
            g1 = g_acc[i0, 1] + g_acc[i1, 1] + g_acc[i2, 1]
            g2 = g_acc[i0, 2] + g_acc[i1, 2] + g_acc[i2, 2]
            ax = np.float64(v[i1, 0]) - v[i0, 0]
            ay = np.float64(v[i1, 1]) - v[i0, 1]
            az = np.float64(v[i1, 2]) - v[i0, 2]
            bx = np.float64(v[i2, 0]) - v[i0, 0]
            by = np.float64(v[i2, 1]) - v[i0, 1]
            bz = np.float64(v[i2, 2]) - v[i0, 2]
            dax = by * g2 - bz * g1
            day = bz * g0 - bx * g2
            daz = bx * g1 - by * g0
            dbx = g1 * az - g2 * ay
            dby = g2 * ax - g0 * az
            dbz = g0 * ay - g1 * ax
            gv[i1, 0] += dax
            gv[i1, 1] += day
            gv[i1, 2] += daz
            gv[i2, 0] += dbx
            gv[i2, 1] += dby
            gv[i2, 2] += dbz
            gv[i0, 0] -= dax + dbx
            gv[i0, 1] -= day + dby
            gv[i0, 2] -= daz + dbz


def _as_batched_verts(verts: np.ndarray) -> np.ndarray:
    if verts.ndim != 3 or verts.shape[2] != 3:
        raise ValueError(f"verts must have shape [B, V, 3], got {verts.shape}")
    _check_float("verts", verts)
    return np.ascontiguousarray(verts)


def vertex_normals_numpy(verts: np.ndarray, tri: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Area-weighted unit vertex normals [B, V, 3] of ``verts`` [B, V, 3] (``tri`` CCW from outside).

    Accumulates in float64, returns the dtype of ``verts``; vertices of no (or only degenerate)
    triangles get zero normals, like ``F.normalize(..., eps=eps)``.
    """
    verts = _as_batched_verts(verts)
    _check_tri(tri, verts.shape[1])
    out = np.empty_like(verts)
    _vertex_normals_kernel(verts, np.ascontiguousarray(tri), float(eps), out)
    return out


def vertex_normals_backward_numpy(
    verts: np.ndarray, tri: np.ndarray, grad_out: np.ndarray, eps: float = 1e-12
) -> np.ndarray:
    """Gradient w.r.t. ``verts`` [B, V, 3] of :func:`vertex_normals_numpy` given ``grad_out``."""
    verts = _as_batched_verts(verts)
    grad = np.zeros(verts.shape, np.float64)
    _vertex_normals_backward_kernel(verts, np.ascontiguousarray(tri), np.ascontiguousarray(grad_out), float(eps), grad)
    return grad.astype(verts.dtype, copy=False)
