"""Stage 4b: the reconstructed expression as ARKit key weights (numpy; the face model's ARKit rig,
:mod:`facerecon_core.facemodel.arkit`).

The expression offsets (V, 3) are explained as Σ wₖ · keyₖ over the face region's vertices by bounded least
squares, wₖ ∈ [0, 1], with a small L1 prior that keeps unused keys at 0 (accelerated projected gradient on the
keys' Gram matrix; left and right keys free to differ); what the keys do not explain is the residual, so that
keys + residual give the reconstructed expression back exactly. Personalised keys are the rig's deltas as
they are (mm), added to the person's own identity mesh.

:meth:`ArkitSolver.split` re-divides a face between identity and expression around a calibrated *rest* (the
network's mean weights on neutral photos, stored in the model bundle): the expression becomes the keys at
clip(w − rest, 0, 1), and everything else (the rest, the keys' residual) joins the identity, so identity +
expression, the posed face, is unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel

SPARSITY = 2e-3  # the L1 prior's weight, relative to the mean of the Gram matrix's diagonal
ITERATIONS = 400


@dataclass(frozen=True)
class ArkitSolution:
    weights: dict[str, float]  # ARKit name → weight in [0, 1]
    residual: np.ndarray  # (V, 3) float32 mm: the expression minus what the weighted keys give


@dataclass(frozen=True)
class ArkitSolver:
    names: tuple[str, ...]
    deltas: np.ndarray  # (K, V, 3) float32 mm
    basis: np.ndarray  # (K, 3R) the deltas over the R face-region vertices, flattened
    region: np.ndarray  # (V,) bool
    gram: np.ndarray  # (K, K)
    step: float  # 1 / the Gram matrix's largest eigenvalue
    sparsity: float

    @classmethod
    def of(cls, model: FaceModel) -> ArkitSolver:
        """The solver of ``model``'s rig (cached per model); ``ValueError`` when the model has none."""
        return _solver(model)

    def solve(self, offsets: np.ndarray) -> ArkitSolution:
        weights = self.weights(np.asarray(offsets, np.float32))
        residual = (np.asarray(offsets, np.float32) - self.keys(weights)).astype(np.float32)
        return ArkitSolution(dict(zip(self.names, weights.astype(float).tolist())), residual)

    def rest_vector(self, rest: dict[str, float] | None) -> np.ndarray:
        """(K,) the rest weights in the rig's key order (zeros for None); ``ValueError`` for keys the rig lacks."""
        vector = np.zeros(len(self.names))
        if rest:
            unknown = sorted(set(rest) - set(self.names))
            if unknown:
                raise ValueError(f"rest weights name keys the face model's rig lacks: {', '.join(unknown[:5])}")
            index = {n: k for k, n in enumerate(self.names)}
            for name, w in rest.items():
                vector[index[name]] = float(w)
        return vector

    def split(self, identity: np.ndarray, expression: np.ndarray,
              rest: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(identity', expression', weights): expression' = Σ wₖ keyₖ, w = clip(solve(expression) − rest, 0, 1)
        (``rest``: :meth:`rest_vector`; None: zero), identity' = identity + expression − expression' (float32
        (V, 3); weights (K,) float64)."""
        expression = np.asarray(expression, np.float32)
        w = self.weights(expression)
        if rest is not None:
            w = np.clip(w - rest, 0.0, 1.0)
        keys = self.keys(w)
        return (np.asarray(identity, np.float32) + (expression - keys)).astype(np.float32), keys, w

    def keys(self, weights: np.ndarray) -> np.ndarray:
        """(V, 3) float32 mm: Σ wₖ keyₖ."""
        return np.tensordot(np.asarray(weights, np.float32), self.deltas, axes=(0, 0)).astype(np.float32)

    def weights(self, offsets: np.ndarray) -> np.ndarray:
        """(K,) in [0, 1]: argmin ½‖B w − d‖² + λ Σ w (FISTA)."""
        target = self.basis @ offsets[self.region].reshape(-1)
        w = np.zeros(len(self.names))
        y, t = w.copy(), 1.0
        for _ in range(ITERATIONS):
            gradient = self.gram @ y - target + self.sparsity
            w_next = np.clip(y - self.step * gradient, 0.0, 1.0)
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            y = w_next + ((t - 1.0) / t_next) * (w_next - w)
            w, t = w_next, t_next
        return w


@functools.lru_cache(maxsize=4)
def _solver(model: FaceModel) -> ArkitSolver:
    deltas = model.arkit_basis  # ValueError when the model has no rig
    region = model.face_vertices()
    basis = deltas[:, region].reshape(len(deltas), -1).astype(np.float64)
    gram = basis @ basis.T
    return ArkitSolver(tuple(str(n) for n in model.arkit_names), deltas, basis, region, gram,
                       1.0 / float(np.linalg.eigvalsh(gram).max()), SPARSITY * float(np.mean(np.diag(gram))))
