"""68 iBUG landmarks of a face inside a box, in image pixels (x right, y down).

Backends: ``"dlib"`` (default; the ``shape_predictor_68_face_landmarks.dat`` regression-tree
predictor, ~2 ms a face) and ``"face_alignment"`` (the FAN network of the ``face-alignment``
package: more robust to pose, but it needs torch and downloads its weights on first use, so it is
imported only when selected).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from facerecon_core.detect import models
from facerecon_core.detect.faces import FaceBox, check_image

Backend = Literal["dlib", "face_alignment"]
N_LANDMARKS = 68


@dataclass(frozen=True)
class LandmarkDetector:
    """Predicts 68 landmarks for a face box (boxes in the convention of ``FaceDetector``)."""

    backend: Backend = "dlib"

    def __post_init__(self) -> None:
        if self.backend not in ("dlib", "face_alignment"):
            raise ValueError(f"unknown landmark backend {self.backend!r} (use dlib or face_alignment)")

    def detect(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """(68, 2) float32 landmarks of the face in ``box`` of an RGB or grayscale uint8 image."""
        image = check_image(image)
        if self.backend == "dlib":
            return _dlib_landmarks(image, box)
        return _fan_landmarks(image, box)


def _dlib_landmarks(image: np.ndarray, box: FaceBox) -> np.ndarray:
    dlib = models.dlib_module()
    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right), round(box.bottom))
    shape = models.shape_predictor()(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _fan_landmarks(image: np.ndarray, box: FaceBox) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    found = _fan_model().get_landmarks_from_image(
        image, detected_faces=[np.array([box.left, box.top, box.right, box.bottom, box.score])]
    )
    if not found:
        raise RuntimeError("face_alignment returned no landmarks for the given box")
    return np.asarray(found[0], dtype=np.float32)[:N_LANDMARKS, :2]


@functools.cache
def _fan_model() -> Any:
    try:
        import face_alignment
    except ImportError as exc:
        raise models.ModelNotFoundError(
            f"the face_alignment backend needs the pip package 'face-alignment' ({exc})"
        ) from None
    kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
    return face_alignment.FaceAlignment(kind, device="cpu", flip_input=False)
