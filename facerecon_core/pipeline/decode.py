"""Stage 4: the network's UV maps → identity mesh, expression offsets and landmarks (numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.uvmap import BilinearTaps
from facerecon_core.inference import NetworkOutput
from facerecon_core.pose import CropCamera, to_camera


@dataclass
class DecodedFace:
    identity: np.ndarray  # (V, 3) float32 mm, model frame
    expression: np.ndarray  # (V, 3) float32 mm offsets
    landmarks_3d: np.ndarray  # (68, 3) mm, model frame, expressive face
    landmarks_crop: np.ndarray  # (68, 2) crop pixels of the network crop


class Decoder:
    """Samples A_id / A_exp at the face model's vertex UVs (``FaceModel.from_uv_map``, with the
    bilinear taps cached per map size) and projects landmarks through the predicted pose."""

    def __init__(self, facemodel: FaceModel) -> None:
        self.facemodel = facemodel
        self._cache: dict[tuple[int, bool], BilinearTaps] = {}

    def _taps(self, size: int, landmarks_only: bool) -> BilinearTaps:
        key = (size, landmarks_only)
        if key not in self._cache:
            uv = self.facemodel.uv[self.facemodel.landmark_indices] if landmarks_only else self.facemodel.uv
            self._cache[key] = BilinearTaps.of(uv, (size, size))
        return self._cache[key]

    def _sample(self, uv_map: np.ndarray, landmarks_only: bool) -> np.ndarray:
        g = uv_map.shape[-2]
        flat = np.ascontiguousarray(uv_map, np.float32).reshape(*uv_map.shape[:-3], g * g, uv_map.shape[-1])
        return self._taps(g, landmarks_only).sample(flat)

    def landmarks_3d(self, out: NetworkOutput) -> np.ndarray:
        """(B, 68, 3) float64 mm: the expressive face's landmark vertices in the model frame."""
        return self._sample(out.shape_map, landmarks_only=True).astype(np.float64)

    @staticmethod
    def project(points: np.ndarray, angles: np.ndarray, translation: np.ndarray, crop_size: int) -> np.ndarray:
        """Crop pixels (B, N, 2) of model-frame points (B, N, 3) under the pose of each face."""
        cam = to_camera(np.asarray(points, np.float64), np.asarray(angles, np.float64),
                        np.asarray(translation, np.float64))
        return CropCamera(crop_size).project(cam)

    def decode(self, out: NetworkOutput, crop_size: int) -> list[DecodedFace]:
        """Every face of the batch as identity mesh + expression offsets + landmarks."""
        identity = self._sample(out.A_id, landmarks_only=False).astype(np.float32)
        expression = self._sample(out.A_exp, landmarks_only=False).astype(np.float32)
        lm_idx = self.facemodel.landmark_indices
        lm3d = (identity[:, lm_idx] + expression[:, lm_idx]).astype(np.float64)
        lm2d = self.project(lm3d, out.angles, out.translation, crop_size)
        return [DecodedFace(identity[i], expression[i], lm3d[i], lm2d[i]) for i in range(len(out))]
