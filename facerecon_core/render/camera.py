"""Pinhole camera and Euler-angle rotations.

Camera space is OpenGL's: x right, y up, the camera at the origin looking down -z.
Image space has x right, y down, the origin at the top-left corner of the top-left
pixel and pixel centres at half-integers. A point projects to image coordinates
``(cx + f * x / -z, cy - f * y / -z)``. ``to_clip`` maps those image coordinates to
NDC by ``ndc_x = 2 * px / W - 1`` and ``ndc_y = 1 - 2 * py / H``, so the top image row
is NDC y = +1, i.e. the *last* row of the rasterizer's bottom-up buffer.

This module imports no torch: ``PerspectiveCamera.to_clip``/``to_pixels`` take numpy arrays or
torch tensors alike (and return the same kind), so the torch-free inference path shares the
camera with training. ``euler_to_matrix`` (torch) imports torch when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def _stack(parts: list[Any], like: Any) -> Any:
    """Stack on a new last axis with numpy or torch, whichever ``like`` belongs to."""
    if isinstance(like, np.ndarray):
        return np.stack(parts, axis=-1)
    import torch

    return torch.stack(parts, dim=-1)


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera; ``focal`` in pixels, ``near``/``far`` in the units of the points.

    ``cx``, ``cy`` default to the image centre ``(width / 2, height / 2)``.
    """

    focal: float
    width: int
    height: int
    cx: float | None = None
    cy: float | None = None
    near: float = 1.0
    far: float = 1.0e4

    @property
    def principal_point(self) -> tuple[float, float]:
        cx = self.width / 2.0 if self.cx is None else float(self.cx)
        cy = self.height / 2.0 if self.cy is None else float(self.cy)
        return cx, cy

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` as the rasterizer expects it."""
        return self.height, self.width

    def to_clip(self, points_cam):
        """Clip-space positions [..., 4] of camera-space points [..., 3] (OpenGL depth range).

        Works on numpy arrays and torch tensors (differentiable); returns the same kind.
        """
        cx, cy = self.principal_point
        x, y, z = points_cam[..., 0], points_cam[..., 1], points_cam[..., 2]
        n, f = self.near, self.far
        return _stack(
            [
                (2.0 * self.focal / self.width) * x + (1.0 - 2.0 * cx / self.width) * z,
                (2.0 * self.focal / self.height) * y - (1.0 - 2.0 * cy / self.height) * z,
                -(f + n) / (f - n) * z - 2.0 * f * n / (f - n),
                -z,
            ],
            points_cam,
        )

    def to_pixels(self, points_cam):
        """Image coordinates [..., 2] (x right, y down, pixel centres at half-integers) of
        camera-space points [..., 3]; numpy arrays or torch tensors."""
        cx, cy = self.principal_point
        x, y, z = points_cam[..., 0], points_cam[..., 1], points_cam[..., 2]
        depth = -z
        return _stack([cx + self.focal * x / depth, cy - self.focal * y / depth], points_cam)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] from angles [..., 3] = (pitch, yaw, roll) in radians.

    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``: pitch turns about x, then yaw about y, then
    roll about z (extrinsic axes); each is a right-handed (counter-clockwise) rotation.
    Torch only; the numpy twin is :func:`facerecon_core.pose.euler_to_matrix`.
    """
    import torch

    pitch, yaw, roll = angles.unbind(-1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cp, sp = pitch.cos(), pitch.sin()
    cy, sy = yaw.cos(), yaw.sin()
    cr, sr = roll.cos(), roll.sin()
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1)
    shape = angles.shape[:-1] + (3, 3)
    return rz.reshape(shape) @ ry.reshape(shape) @ rx.reshape(shape)
