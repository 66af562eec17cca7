"""Writing images (PNG, JPEG) atomically from RGB arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.io.atomic import atomic_write_bytes


def to_uint8(image: np.ndarray) -> np.ndarray:
    """RGB(A) float in [0, 1] or uint8 → uint8, clipped."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(target: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Save an H×W×3 (RGB) or H×W×4 (RGBA) image; the format follows the file's extension."""
    import cv2

    target = Path(target)
    image = to_uint8(rgb)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H×W×3 or H×W×4 image, got shape {image.shape}")
    code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, buf = cv2.imencode(target.suffix or ".png", cv2.cvtColor(image, code))
    if not ok:
        raise ValueError(f"{target}: cannot encode an image with extension {target.suffix!r}")
    return atomic_write_bytes(target, buf.tobytes())
