"""Stage 2: 3DDFA_V2-style crops — from detected landmarks (pass 1), and with ``Reconstructor(recrop=True)``
from the landmarks the network predicts (pass 2)."""

from __future__ import annotations

import numpy as np

from facerecon_core.detect import Crop, DetectedFace, FaceBox


def contains(crop: Crop, box: FaceBox, tolerance: float = 0.0) -> bool:
    """Whether the crop square covers the face box (``tolerance`` in image pixels)."""
    left, top, right, bottom = crop.box
    return (left <= box.left + tolerance and top <= box.top + tolerance
            and right >= box.right - tolerance and bottom >= box.bottom - tolerance)


def covering(crop: Crop, box: FaceBox) -> Crop:
    """``crop`` grown about its centre (if needed) until it covers ``box``."""
    if contains(crop, box):
        return crop
    left, top, right, bottom = crop.box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half = max(crop.side / 2, cx - box.left, box.right - cx, cy - box.top, box.bottom - cy)
    return Crop.centred(cx, cy, 2 * half + 1e-6, crop.size)


def first_crop(face: DetectedFace, size: int) -> Crop:
    """Pass 1: the crop around the detected landmarks (covering the detector's box)."""
    return covering(Crop.from_landmarks(face.landmarks, size), face.box)


def second_crop(predicted: np.ndarray, face: DetectedFace, fallback: Crop, max_growth: float = 2.5) -> tuple[Crop, bool]:
    """Pass 2: the crop around the landmarks the network predicted (photo pixels).

    A prediction that is not finite, whose crop does not cover the detected face box, or that is
    more than ``max_growth`` times larger than the first crop is not trusted: ``fallback`` (the
    first crop) is kept. Returns ``(crop, accepted)``.
    """
    if not np.all(np.isfinite(predicted)):
        return fallback, False
    crop = Crop.from_landmarks(predicted, fallback.size)
    if crop.side > max_growth * fallback.side or not contains(crop, face.box, tolerance=0.5):
        return fallback, False
    return crop, True
