"""Square face crops as 3DDFA_V2 takes them, and the point mapping between crop and image.

Coordinates are image pixels, x right and y down, with pixel centres on integers. A crop is the
square ``[left, left + side) × [top, top + side)`` scaled to ``size × size``: an image point
``p`` maps to ``(p - (left, top)) * size / side``. ``apply`` warps with exactly that map, so points
mapped by ``to_crop`` land on the same features in the warped crop. (3DDFA_V2 slices the rounded
box and resizes it, which differs from this by under a crop pixel.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facerecon_core import imageops
from facerecon_core.detect.faces import FaceBox

BOX_SCALE = 1.58
"""3DDFA_V2: crop side = mean of the face box's width and height × this."""

BOX_SHIFT_DOWN = 0.14
"""3DDFA_V2: crop centre = box centre moved down by this × mean of width and height."""


@dataclass(frozen=True)
class Crop:
    """A square region of an image (``left``, ``top``, ``side`` in image pixels) and its output ``size``."""

    left: float
    top: float
    side: float
    size: int = 256

    def __post_init__(self) -> None:
        if not self.side > 0 or self.size < 1:
            raise ValueError(f"crop needs side > 0 and size >= 1, got side={self.side}, size={self.size}")

    @classmethod
    def from_box(cls, box: FaceBox, size: int = 256) -> Crop:
        """3DDFA_V2's crop around a face-detector box."""
        mean_side = (box.width + box.height) / 2
        cx = (box.left + box.right) / 2
        cy = (box.top + box.bottom) / 2 + BOX_SHIFT_DOWN * mean_side
        return cls.centred(cx, cy, mean_side * BOX_SCALE, size)

    @classmethod
    def from_landmarks(cls, points: np.ndarray, size: int = 256) -> Crop:
        """3DDFA_V2's crop around landmarks: side = diagonal of their bounding square, same centre."""
        points = _as_points(points)
        lo, hi = points.min(axis=0), points.max(axis=0)
        cx, cy = (lo + hi) / 2
        return cls.centred(float(cx), float(cy), math.sqrt(2.0) * float(np.max(hi - lo)), size)

    @classmethod
    def centred(cls, cx: float, cy: float, side: float, size: int = 256) -> Crop:
        """The square of ``side`` centred on ``(cx, cy)``."""
        return cls(cx - side / 2, cy - side / 2, side, size)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)`` in image pixels."""
        return self.left, self.top, self.left + self.side, self.top + self.side

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image points (..., 2) → crop points (float64)."""
        return (_as_points(points) - (self.left, self.top)) * self.scale

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop points (..., 2) → image points (float64)."""
        return _as_points(points) / self.scale + (self.left, self.top)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The ``size × size`` crop of ``image`` (H×W or H×W×C); outside the image is black (zeros,
        as 3DDFA_V2 pads). Bilinear, after an area-averaging reduction when shrinking, so large
        photos do not alias."""
        height, width = image.shape[:2]
        margin = math.ceil(max(1.0, 1.0 / self.scale)) + 1  # interpolation never sees the cut
        x0, y0 = max(math.floor(self.left) - margin, 0), max(math.floor(self.top) - margin, 0)
        x1 = min(math.ceil(self.left + self.side) + margin, width)
        y1 = min(math.ceil(self.top + self.side) + margin, height)
        out_shape = (self.size, self.size) + image.shape[2:]
        if x1 <= x0 or y1 <= y0:
            return np.zeros(out_shape, image.dtype)
        region = image[y0:y1, x0:x1]
        # region pixel (u, v) ↔ image pixel (u + x0, v + y0); optionally shrink it first
        fx = fy = 1.0
        if self.scale < 1.0:
            new_w = max(round(region.shape[1] * self.scale), 1)
            new_h = max(round(region.shape[0] * self.scale), 1)
            fx, fy = new_w / region.shape[1], new_h / region.shape[0]
            region = imageops.resize(region, new_w, new_h, interpolation="area")
        # resized pixel u' ↔ image x = (u' + 0.5) / fx - 0.5 + x0; crop coordinate = (x - left) * scale
        matrix = np.array(
            [[self.scale / fx, 0.0, (0.5 / fx - 0.5 + x0 - self.left) * self.scale],
             [0.0, self.scale / fy, (0.5 / fy - 0.5 + y0 - self.top) * self.scale]]
        )
        return imageops.warp_affine(region, matrix, (self.size, self.size)).reshape(out_shape)

    def photo_mask(self, height: int, width: int) -> np.ndarray:
        """(size, size) bool: the crop's pixels that come from an image of ``height × width`` (False
        where the crop reaches past its edges and :meth:`apply` pads)."""
        left, top, right, bottom = self.box
        if left >= 0 and top >= 0 and right <= width and bottom <= height:  # the usual case: no padding
            return np.ones((self.size, self.size), bool)
        return self.apply(np.full((height, width), 255, np.uint8)) > 127


def _as_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise ValueError(f"expected points of shape (..., 2), got {points.shape}")
    return points
