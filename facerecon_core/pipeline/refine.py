"""Stage 6 (optional, torch): photometric refinement of the network's faces with the fitter.

Starts :meth:`facerecon_core.fitting.Fitter.refine` from the network's expressive face, pose, SH and
albedo (the texture sampled at the vertices), and fits changes on top: identity and expression
coefficients, SH, albedo coefficients and smooth per-vertex offsets (landmarks + masked
photometric term + priors + Laplacian). Identity coefficients and offsets go to the identity
mesh, expression coefficients to the expression offsets, albedo changes to the texture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel


@dataclass
class Refined:
    identity: np.ndarray  # (B, V, 3)
    expression: np.ndarray  # (B, V, 3)
    angles: np.ndarray  # (B, 3)
    translation: np.ndarray  # (B, 3)
    sh: np.ndarray  # (B, 3, 9)
    albedo_delta: np.ndarray | None  # (B, V, 3) per-vertex albedo change, None without an albedo basis
    losses: dict[str, float]  # final per-term losses
    landmark_error: np.ndarray  # (B,) crop pixels


def make_fitter(facemodel: FaceModel, steps: int, device: str = "cpu"):
    """A fitter configured for ``steps`` photometric refinement steps (imports torch)."""
    from facerecon_core.fitting import FitConfig, Fitter

    config = FitConfig(landmark_steps=0, photometric_steps=steps, fit_offsets=True)
    return Fitter(facemodel, config, device=device)


def refine(fitter, crops: np.ndarray, landmarks: np.ndarray, identity: np.ndarray, expression: np.ndarray,
           angles: np.ndarray, translation: np.ndarray, sh: np.ndarray, albedo: np.ndarray | None,
           callback: Callable[[int, dict[str, float]], None] | None = None) -> Refined:
    """Refine a batch of faces (crops (B, S, S, 3) uint8 and their target landmarks (B, 68, 2) crop px)."""
    model = fitter.model
    result = fitter.refine(crops, landmarks, identity + expression, angles, translation, sh, albedo=albedo,
                           callback=callback)
    id_delta = np.tensordot(result.id_coeff, model.id_basis, axes=([-1], [0]))
    if result.offsets is not None:
        id_delta = id_delta + result.offsets
    exp_delta = np.tensordot(result.exp_coeff, model.exp_basis, axes=([-1], [0]))
    albedo_delta = None
    if model.n_albedo > 0:
        albedo_delta = np.tensordot(result.albedo_coeff, model.albedo_basis, axes=([-1], [0])).astype(np.float32)
    return Refined(
        identity=(identity + id_delta).astype(np.float32), expression=(expression + exp_delta).astype(np.float32),
        angles=result.angles.astype(np.float64), translation=result.translation.astype(np.float64),
        sh=result.sh.astype(np.float64), albedo_delta=albedo_delta,
        losses=dict(result.losses.get("photometric", {})), landmark_error=result.landmark_error,
    )
