"""Stage 4: the network's UV maps → identity mesh, expression offsets and landmarks (numpy).

When the bundle holds a calibrated rest (``facerecon calibrate``) and the face model the ARKit rig, the expression
becomes the rig's keys measured from the rest, and the rest joins the identity
(:meth:`facerecon_core.pipeline.arkit.ArkitSolver.split`). The posed face is the maps' sum either way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.uvmap import BilinearTaps
from facerecon_core.inference import NetworkOutput
from facerecon_core.pipeline.arkit import ArkitSolver
from facerecon_core.pose import CropCamera, to_camera


@dataclass
class DecodedFace:
    identity: np.ndarray  # (V, 3) float32 mm, model frame
    expression: np.ndarray  # (V, 3) float32 mm offsets
    landmarks_3d: np.ndarray  # (68, 3) mm, model frame, expressive face
    landmarks_crop: np.ndarray  # (68, 2) crop pixels of the network crop
    arkit: np.ndarray | None = None  # (K,) ARKit weights measured from the bundle's rest (None: no rest stored)


class Decoder:
    """Samples A_id / A_exp at the face model's vertex UVs (``FaceModel.from_uv_map``, with the
    bilinear taps cached per map size), splits the face around ``rest`` (ARKit name → weight, the bundle's
    :attr:`~facerecon_core.inference.ModelBundle.rest`) when given, and projects landmarks through the
    predicted pose."""

    def __init__(self, facemodel: FaceModel, rest: dict[str, float] | None = None) -> None:
        self.facemodel = facemodel
        self._cache: dict[tuple[int, bool], BilinearTaps] = {}
        self.solver = ArkitSolver.of(facemodel) if facemodel.has_arkit else None
        self.rest = self.solver.rest_vector(rest) if self.solver is not None and rest is not None else None

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

    def split(self, identity: np.ndarray, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One face's (identity, expression, ARKit weights) split around the stored rest; as they are, weights
        None (the pipeline solves them), when no rest is stored or the face model has no rig."""
        if self.solver is None or self.rest is None:
            return identity, expression, None
        return self.solver.split(identity, expression, self.rest)

    def decode(self, out: NetworkOutput, crop_size: int) -> list[DecodedFace]:
        """Every face of the batch as identity mesh + expression offsets (+ ARKit weights around a rest) +
        landmarks."""
        identity = self._sample(out.A_id, landmarks_only=False).astype(np.float32)
        expression = self._sample(out.A_exp, landmarks_only=False).astype(np.float32)
        lm_idx = self.facemodel.landmark_indices
        lm3d = (identity[:, lm_idx] + expression[:, lm_idx]).astype(np.float64)
        lm2d = self.project(lm3d, out.angles, out.translation, crop_size)
        faces = []
        for i in range(len(out)):
            ident, expr, weights = self.split(identity[i], expression[i])
            faces.append(DecodedFace(ident, expr, lm3d[i], lm2d[i], weights))
        return faces
