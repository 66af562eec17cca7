"""Shift averaging: the geometry stream's prediction for a crop and for four copies shifted diagonally by
±d pixels, each shift undone on the pose and the five averaged (test-time shift augmentation).

Shifting a crop's content by (dx, dy) pixels (right, down; the edge pixels fill the gap) moves the image of
every point by (dx, dy): the same face, rotation and depth, with the head's projected origin, which p_h[3:5]
encode (``t_scale`` · offset from the principal point / crop size, y up), moved by (dx, −dy) / size. So the
shift is undone on p_h exactly for the origin and, the camera being a perspective one, for the other points
to within their depth's ratio to the origin's (a few per cent of the shift on a face). That puts the five
predictions in the crop's camera, where they are averaged (shapes and light as they are, rotations as
matrices projected back onto SO(3), the projected origin and the log-depth as numbers). The offsets are
symmetric under a left-right mirror, so combined with :mod:`.mirror` the average stays exactly mirror
symmetric. d is :data:`SHIFT_FRACTION` of the crop (2 pixels at 128²), chosen on held-out data
(MODEL_CARD.md, "Inference: mirror and shift averaging").

numpy only (inference runs without torch).
"""

from __future__ import annotations

import numpy as np

from facerecon_core.inference.mirror import average_rotations

SHIFT_FRACTION = 1.0 / 64.0


def shift_offsets(size: int) -> list[tuple[int, int]]:
    """(dx, dy) pixel offsets for a crop of ``size`` pixels: none, then the four diagonal shifts by ±d."""
    d = max(1, round(SHIFT_FRACTION * size))
    return [(0, 0), (d, d), (-d, -d), (-d, d), (d, -d)]


def shift_images(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Crops (B, S, S, C) with their content moved ``dx`` pixels right and ``dy`` down, the edge pixels
    repeated into the gap: ``out[:, y, x] = images[:, clip(y − dy), clip(x − dx)]``."""
    images = np.asarray(images)
    if dx == 0 and dy == 0:
        return images
    s = images.shape[1]
    pad = max(abs(dx), abs(dy))
    if pad >= s:
        raise ValueError(f"shift ({dx}, {dy}) does not fit a {s}-pixel crop")
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[:, pad - dy:pad - dy + s, pad - dx:pad - dx + s])


def unshift_pose(p_h: np.ndarray, dx: int, dy: int, size: int, t_scale: float) -> np.ndarray:
    """The raw pose vector (..., 6) predicted on a crop shifted by (dx, dy), moved back to the unshifted crop."""
    out = np.array(p_h, copy=True)
    out[..., 3] -= t_scale * dx / size
    out[..., 4] += t_scale * dy / size
    return out


def average_shifted(offsets: list[tuple[int, int]], size: int, t_scale: float, a_id: np.ndarray, a_exp: np.ndarray,
                    sh: np.ndarray, p_h: np.ndarray) -> tuple[np.ndarray, ...]:
    """Average the predictions for B crops shifted by each of ``offsets``: each argument holds
    ``len(offsets)`` · B rows, offset k's in rows [k·B, (k+1)·B) (ASMs (·, G, G, 3), SH (·, 3, 9), p_h (·, 6)).
    Each p_h is unshifted first; rotations average as matrices. Returns (A_id, A_exp, SH, p_h), B rows, float32."""
    n = len(offsets)
    b = len(p_h) // n
    poses = np.stack([unshift_pose(p_h[k * b:(k + 1) * b], dx, dy, size, t_scale)
                      for k, (dx, dy) in enumerate(offsets)])
    mean = poses.mean(axis=0)
    mean[:, :3] = average_rotations(*poses[:, :, :3])
    maps = (x.reshape(n, b, *x.shape[1:]).mean(axis=0) for x in (a_id, a_exp, sh))
    return tuple(np.asarray(x, np.float32) for x in (*maps, mean))
