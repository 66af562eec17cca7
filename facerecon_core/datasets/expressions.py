"""Expression sampling for synthetic data: heavy-tailed, leaning toward the large expressions.

The expression basis has no named components, so the archetypes the paper is about (open mouth,
wide smile, pout, raised brows) are found in it: each is the ridge-regularised least-squares
coefficient vector whose landmark displacements best match a target displacement in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel

# Target landmark displacements (iBUG 68 ids → (dx, dy, dz) mm in the model frame: x to the
# subject's left, y up, z forward). Unlisted landmarks should stay put.
_ARCHETYPES: dict[str, dict[tuple[int, ...], tuple[float, float, float]]] = {
    "open_mouth": {(56, 57, 58, 65, 66, 67): (0, -18, 0), (6, 7, 8, 9, 10): (0, -14, -2), (55, 59): (0, -12, 0)},
    "wide_smile": {(48, 60): (-9, 5, -2), (54, 64): (9, 5, -2), (49, 59): (-4, 2, 0), (53, 55): (4, 2, 0)},
    "pout": {(50, 51, 52, 56, 57, 58, 61, 62, 63, 65, 66, 67): (0, 0, 8), (48, 60): (5, 0, 2), (54, 64): (-5, 0, 2)},
    "raised_brows": {tuple(range(17, 27)): (0, 8, 1)},
}


@dataclass(frozen=True)
class ExpressionPrior:
    """Archetype coefficient vectors of a face model and how to draw expressions around them."""

    archetypes: dict[str, np.ndarray]  # name → (K_exp,) coefficients
    archetype_probability: float = 0.6
    max_abs: float = 4.0  # coefficients are clipped to ±max_abs standard deviations

    @classmethod
    def from_model(cls, model: FaceModel, ridge: float = 0.05) -> ExpressionPrior:
        basis = model.exp_basis[:, model.landmark_indices].reshape(model.n_exp, -1).T.astype(np.float64)
        archetypes = {}
        for name, targets in _ARCHETYPES.items():
            target = np.zeros((68, 3))
            for ids, shift in targets.items():
                target[list(ids)] = shift
            lhs = basis.T @ basis + ridge * np.trace(basis.T @ basis) / model.n_exp * np.eye(model.n_exp)
            archetypes[name] = np.linalg.solve(lhs, basis.T @ target.reshape(-1))
        return cls(archetypes)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One expression: an archetype (or a mix of two) at a random strength plus Student-t noise."""
        names = list(self.archetypes)
        k = len(next(iter(self.archetypes.values())))
        coeff = rng.standard_t(3, size=k) * 0.6
        if rng.random() < self.archetype_probability:
            for name in rng.choice(names, size=1 + int(rng.random() < 0.3), replace=False):
                coeff += self.archetypes[name] * rng.uniform(0.4, 1.3)
        return np.clip(coeff, -self.max_abs, self.max_abs)
