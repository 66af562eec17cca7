"""Placing the face model in front of the camera: head pose and the standard crop camera.

A pose is (pitch, yaw, roll) in radians plus a translation in millimetres; camera-space vertices
are ``R @ v + t`` with ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (same as
:func:`facerecon_core.render.euler_to_matrix`). Camera space is OpenGL's: x right, y up, the
camera at the origin looking down −z, so a frontal face sits at t = (0, 0, −distance).
Every network input crop uses the same pinhole camera: focal length ``FOCAL_PER_PIXEL × size``
pixels (a 12.6° field of view), principal point at the crop centre. 2D points follow OpenCV's
pixel convention throughout facerecon: pixel centres on integers, the top-left pixel at (0, 0).

numpy only: this is used by inference, which runs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOCAL_PER_PIXEL = 1015.0 / 224.0  # the 12.6° field of view Deep3DFaceRecon uses for face crops


@dataclass(frozen=True)
class CropCamera:
    """The pinhole camera of a square crop of ``size`` pixels."""

    size: int

    @property
    def focal(self) -> float:
        return FOCAL_PER_PIXEL * self.size

    @property
    def centre(self) -> float:
        """Principal point (both axes) in pixel-centre coordinates."""
        return self.size / 2.0 - 0.5

    def render_camera(self, near: float = 10.0, far: float = 1e5):
        """The same camera for :func:`facerecon_core.render.render_mesh` (torch)."""
        from facerecon_core.render import PerspectiveCamera

        return PerspectiveCamera(self.focal, self.size, self.size, near=near, far=far)

    def matrix(self) -> np.ndarray:
        """OpenCV intrinsics (y down, z forward)."""
        f, c = self.focal, self.centre
        return np.array([[f, 0, c], [0, f, c], [0, 0, 1]], np.float64)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixel coordinates (x right, y down) of camera-space points (..., 3)."""
        depth = -points_cam[..., 2]
        return np.stack([self.centre + self.focal * points_cam[..., 0] / depth,
                         self.centre - self.focal * points_cam[..., 1] / depth], axis=-1)


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from (pitch, yaw, roll) (..., 3) in radians."""
    angles = np.asarray(angles, np.float64)
    p, y, r = angles[..., 0], angles[..., 1], angles[..., 2]
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, np.cos(p), -np.sin(p), zero, np.sin(p), np.cos(p)], -1)
    ry = np.stack([np.cos(y), zero, np.sin(y), zero, one, zero, -np.sin(y), zero, np.cos(y)], -1)
    rz = np.stack([np.cos(r), -np.sin(r), zero, np.sin(r), np.cos(r), zero, zero, zero, one], -1)
    shape = angles.shape[:-1] + (3, 3)
    return rz.reshape(shape) @ ry.reshape(shape) @ rx.reshape(shape)


def matrix_to_euler(rotation: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) of rotation matrices (..., 3, 3); yaw in [−90°, 90°]."""
    rotation = np.asarray(rotation, np.float64)
    yaw = np.arcsin(np.clip(-rotation[..., 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rotation[..., 2, 1], rotation[..., 2, 2])
    roll = np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return np.stack([pitch, yaw, roll], axis=-1)


def to_camera(vertices: np.ndarray, angles: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Camera-space vertices ``R v + t`` for vertices (..., V, 3), angles and translation (..., 3)."""
    rotation = euler_to_matrix(angles)
    return vertices @ np.swapaxes(rotation, -1, -2) + np.asarray(translation)[..., None, :]


def opencv_to_pose(rvec: np.ndarray, tvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert an OpenCV pose (Rodrigues vector, translation; y down, z forward) to ours."""
    import cv2

    flip = np.diag([1.0, -1.0, -1.0])
    rotation = flip @ cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    return matrix_to_euler(rotation), flip @ np.asarray(tvec, np.float64).reshape(3)


@dataclass(frozen=True)
class Similarity:
    """x ↦ s R x + t."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def apply_vector(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate and scale (no translation): for offsets such as expression displacements."""
        return self.scale * np.asarray(vectors, np.float64) @ self.rotation.T

    def compose(self, first: Similarity) -> Similarity:
        """``self ∘ first``."""
        return Similarity(self.scale * first.scale, self.rotation @ first.rotation,
                          self.scale * self.rotation @ first.translation + self.translation)

    @classmethod
    def identity(cls) -> Similarity:
        return cls(1.0, np.eye(3), np.zeros(3))


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True,
            weights: np.ndarray | None = None) -> Similarity:
    """Least-squares similarity (Umeyama 1991) mapping ``source`` (N, 3) onto ``target`` (N, 3)."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_s = float(w @ np.sum(xs * xs, axis=1))
    scale = float(np.sum(sig * d) / var_s) if with_scale and var_s > 0 else 1.0
    return Similarity(scale, rotation, mu_d - scale * rotation @ mu_s)
