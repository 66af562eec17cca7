"""Random scene parts of synthetic samples: pose, SH light, backgrounds and image degradations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PoseRange:
    """Uniform head-pose ranges in degrees (±)."""

    yaw: float = 75.0
    pitch: float = 30.0
    roll: float = 20.0

    def degrees(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) limits, as ``--pose-range`` takes them."""
        return (self.yaw, self.pitch, self.roll)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """(pitch, yaw, roll) in radians."""
        limits = np.radians([self.pitch, self.yaw, self.roll])
        return rng.uniform(-limits, limits)


@dataclass(frozen=True)
class CropJitter:
    """Detection jitter of the crop: its side × uniform(1 ± ``scale``), its centre moved by a normal
    offset of σ = ``shift`` × the crop side on each axis."""

    scale: float = 0.1
    shift: float = 0.04

    def values(self) -> tuple[float, float]:
        """(scale, shift), as ``--crop-jitter`` takes them."""
        return (self.scale, self.shift)

    def check(self) -> None:
        """Raise ValueError unless ``scale`` is in [0, 0.5) and ``shift`` in [0, 0.25]."""
        if not (0.0 <= self.scale < 0.5 and 0.0 <= self.shift <= 0.25):
            raise ValueError(f"SCALE must be in [0, 0.5) and SHIFT in [0, 0.25], got {self.scale:g} {self.shift:g}")

    def sample(self, rng: np.random.Generator, size: int) -> tuple[float, np.ndarray]:
        """(side factor, centre offset (2,) in pixels) for ``place_in_crop``."""
        return rng.uniform(1.0 - self.scale, 1.0 + self.scale), rng.normal(0.0, self.shift * size, 2)


def sample_sh(rng: np.random.Generator) -> np.ndarray:
    """Random SH light (3, 9) in the normalised basis of ``render.sh_basis`` (basis order 1, y, z, x, ...).

    A white-ish ambient term, one directional light from the front hemisphere, a little second-order
    variation and a per-channel colour tint.
    """
    direction = rng.standard_normal(3)
    direction[2] = abs(direction[2]) + 0.3  # from the camera's side
    direction /= np.linalg.norm(direction)
    coeff = np.zeros(9)
    coeff[0] = rng.uniform(0.55, 1.1)
    coeff[1:4] = rng.uniform(0.0, 0.55) * np.array([direction[1], direction[2], direction[0]]) * math.sqrt(3.0) / 2.0
    coeff[4:] = rng.normal(0.0, 0.06, 5)
    tint = rng.uniform(0.88, 1.12, 3)
    return (tint[:, None] * coeff[None]).astype(np.float32)


class BackgroundBank:
    """Random crops of real photos as backgrounds (photos downscaled and cached at creation)."""

    def __init__(self, photos: list[Path], max_photos: int = 150, max_side: int = 384, seed: int = 0):
        import cv2

        from facerecon_core.io.photo import PhotoError, load_photo

        if not photos:
            raise ValueError("no background photos given")
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(photos), size=min(max_photos, len(photos)), replace=False))
        self.images = []
        for i in chosen:
            try:
                image = load_photo(photos[i])
            except PhotoError:
                continue
            scale = max_side / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            self.images.append(image)
        if not self.images:
            raise ValueError("none of the background photos could be read")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A (size, size, 3) uint8 crop: random photo, region, flip and blur."""
        import cv2

        image = self.images[rng.integers(len(self.images))]
        h, w = image.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 3.0))
        return np.ascontiguousarray(crop)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-like degradations of a uint8 RGB image: blur, noise and JPEG, each at random."""
    import cv2

    out = image
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:
        noise = rng.normal(0.0, rng.uniform(1.0, 8.0), out.shape)
        out = np.clip(out.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def place_in_crop(
    landmarks_model: np.ndarray, angles: np.ndarray, size: int, scale: float = 1.0, shift=(0.0, 0.0)
) -> np.ndarray:
    """Translation that frames a posed face in a ``size`` crop as the landmark crop would.

    The 3DDFA_V2 crop of the projected landmarks (:meth:`Crop.from_landmarks`) is made to cover
    the whole image, then its side is multiplied by ``scale`` and its centre moved by ``shift``
    pixels: the detection jitter the network must tolerate. Returns (3,) mm in camera space.
    """
    from facerecon_core.detect.crop import Crop
    from facerecon_core.pose import CropCamera, euler_to_matrix

    cam = CropCamera(size)
    rotated = landmarks_model @ euler_to_matrix(angles).T
    translation = np.array([0.0, 0.0, -cam.focal * 200.0 / size])
    for _ in range(4):  # perspective makes the mapping slightly non-linear: iterate to a fixed point
        crop = Crop.from_landmarks(cam.project(rotated + translation), size)
        depth = -translation[2]
        centre = np.array([crop.left + crop.side / 2, crop.top + crop.side / 2])
        target = cam.centre + np.asarray(shift)
        translation[0] += (target[0] - centre[0]) * depth / cam.focal
        translation[1] -= (target[1] - centre[1]) * depth / cam.focal
        translation[2] = -depth * crop.side * scale / size
    return translation
