"""Stage 1: load the photo and find the faces (dlib; torch-free)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.detect import DetectedFace, FaceDetector, LandmarkDetector, NoFaceError
from facerecon_core.io.photo import NotAnImageError, load_photo

UNSUPPORTED_EXTENSIONS = frozenset({
    ".heic", ".heif", ".avif", ".jxl", ".svg", ".svgz", ".pdf", ".eps", ".raw", ".cr2", ".cr3", ".nef",
    ".arw", ".dng", ".orf", ".rw2", ".raf", ".exr", ".hdr", ".psb", ".xcf", ".jp2", ".j2k",
})
"""Image formats facerecon recognises by their extension but cannot read."""


class UnsupportedFormatError(NotAnImageError):
    """An image in a format facerecon cannot read (HEIC, RAW, SVG, …)."""


def load_image(image: np.ndarray | str | os.PathLike) -> tuple[np.ndarray, str]:
    """``(H×W×3 uint8 RGB, source name)`` of a path (via ``load_photo``) or an RGB array."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            return load_photo(path), str(path)
        except NotAnImageError:
            if path.suffix.lower() in UNSUPPORTED_EXTENSIONS:
                raise UnsupportedFormatError(
                    f"{path}: unsupported image format {path.suffix.lower()} (convert it to JPEG or PNG)"
                ) from None
            raise
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image must be a path or an H×W×3 uint8 RGB array, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array), "image"


def find_faces(image: np.ndarray, source: str, detector: FaceDetector, landmarker: LandmarkDetector,
               all_faces: bool = False) -> list[DetectedFace]:
    """The largest face (or every face, largest first, with ``all_faces``); ``NoFaceError`` naming
    ``source`` when there is none."""
    boxes = detector.detect(image)
    if not boxes:
        raise NoFaceError(f"{source}: no face found")
    boxes = boxes if all_faces else boxes[:1]
    return [DetectedFace(box, landmarker.detect(image, box)) for box in boxes]
