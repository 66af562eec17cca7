"""Faces and their 68 iBUG landmarks in a photo, offline on the CPU (dlib; no torch).

``detect_faces(image)`` gives every face (box + landmarks), largest first; ``detect_face`` gives the
largest one or raises ``NoFaceError``. ``Crop`` turns a box or landmarks into 3DDFA_V2's square crop.
The dlib models are loaded on first use and kept for the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from facerecon_core.detect.crop import Crop
from facerecon_core.detect.faces import FaceBox, FaceDetector
from facerecon_core.detect.landmarks import LandmarkDetector
from facerecon_core.detect.models import ModelNotFoundError

__all__ = [
    "Crop", "DetectedFace", "FaceBox", "FaceDetector", "LandmarkDetector", "ModelNotFoundError",
    "NoFaceError", "detect_face", "detect_faces",
]


class NoFaceError(ValueError):
    """No face was found in an image where one is required."""


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """A face box and its (68, 2) float32 landmarks in image pixels."""

    box: FaceBox
    landmarks: np.ndarray


def detect_faces(
    image: np.ndarray,
    detector: FaceDetector = FaceDetector(),
    landmarker: LandmarkDetector = LandmarkDetector(),
) -> list[DetectedFace]:
    """Every face in an RGB uint8 image with its landmarks, largest first (empty if none)."""
    return [DetectedFace(box, landmarker.detect(image, box)) for box in detector.detect(image)]


def detect_face(
    image: np.ndarray,
    source: str | os.PathLike | None = None,
    detector: FaceDetector = FaceDetector(),
    landmarker: LandmarkDetector = LandmarkDetector(),
) -> DetectedFace:
    """The largest face; ``NoFaceError`` naming ``source`` (the photo's path) when there is none."""
    faces = detect_faces(image, detector, landmarker)
    if not faces:
        raise NoFaceError(f"{source if source is not None else 'image'}: no face found")
    return faces[0]
