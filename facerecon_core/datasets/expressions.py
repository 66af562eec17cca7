"""Expression sampling for synthetic data: heavy-tailed, leaning toward the large expressions.

The expression basis has no named components, so the archetypes the paper is about (open mouth,
wide smile, pout, raised brows) are found in it: each is the ridge-regularised least-squares
coefficient vector whose landmark displacements best match a target displacement in millimetres.

The 10 components cannot widen the eyes, furrow the brows or snarl. With the face model's ARKit keys
(:class:`ArkitPrior`), an expression can also be a sparse, mostly symmetric combination of the 51 keys: a
basic emotion at a random strength up to its extreme (:data:`ARKIT_PRESETS`), or a few random keys.
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


# The basic emotions and their extremes as ARKit weights (FACS-style readings); a name without Left/Right
# stands for both sides where the rig has them.
ARKIT_PRESETS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmile": 0.8, "cheekSquint": 0.5, "eyeSquint": 0.3, "mouthDimple": 0.3},
    "closed_smile": {"mouthSmile": 0.9, "mouthClose": 0.2, "mouthPress": 0.3, "cheekSquint": 0.4},
    "laugh": {"mouthSmile": 1.0, "jawOpen": 0.6, "cheekSquint": 0.8, "eyeSquint": 0.6, "mouthUpperUp": 0.3},
    "surprise": {"browInnerUp": 0.9, "browOuterUp": 0.9, "eyeWide": 0.9, "jawOpen": 0.6},
    "fear": {"browInnerUp": 0.9, "eyeWide": 0.8, "mouthStretch": 0.7, "jawOpen": 0.3, "browOuterUp": 0.3},
    "anger": {"browDown": 1.0, "eyeSquint": 0.5, "mouthPress": 0.6, "noseSneer": 0.3, "mouthFrown": 0.3},
    "shout": {"browDown": 0.9, "jawOpen": 0.8, "mouthUpperUp": 0.6, "mouthLowerDown": 0.6, "noseSneer": 0.5},
    "disgust": {"noseSneer": 0.9, "mouthUpperUp": 0.7, "browDown": 0.4, "cheekSquint": 0.4, "mouthFrown": 0.3},
    "snarl": {"noseSneer": 1.0, "mouthUpperUp": 1.0, "browDown": 0.6, "eyeSquint": 0.4},
    "sad": {"browInnerUp": 0.8, "mouthFrown": 0.8, "mouthShrugLower": 0.4, "eyeSquint": 0.2},
    "contempt": {"mouthSmileLeft": 0.6, "mouthDimpleLeft": 0.5, "eyeSquintLeft": 0.2},
    "blink": {"eyeBlink": 1.0},
    "pucker": {"mouthPucker": 1.0, "mouthFunnel": 0.3},
    "cheek_puff": {"cheekPuff": 1.0, "mouthClose": 0.3},
    "wide_eyes": {"eyeWide": 1.0, "browOuterUp": 0.4},
    "squeeze": {"eyeBlink": 0.9, "eyeSquint": 0.8, "browDown": 0.6, "noseSneer": 0.4, "cheekSquint": 0.5},
}


@dataclass(frozen=True)
class ArkitPrior:
    """Expressions as ARKit weights (K,) in [0, 1]: a preset (``preset_probability``) at 0.5–1.25 of its
    weights, or 1–4 random keys (both sides of a pair together, 80 %), at 0.2–1 each."""

    names: tuple[str, ...]
    presets: tuple[np.ndarray, ...]
    pairs: tuple[tuple[int, ...], ...]  # each key with its other side (or alone)
    preset_probability: float = 0.6

    @classmethod
    def from_names(cls, names) -> ArkitPrior:
        names = tuple(str(n) for n in names)
        index = {n: k for k, n in enumerate(names)}

        def ids(key: str) -> list[int]:
            if key in index:
                return [index[key]]
            return [index[key + side] for side in ("Left", "Right") if key + side in index]

        presets = []
        for weights in ARKIT_PRESETS.values():
            w = np.zeros(len(names))
            for key, value in weights.items():
                w[ids(key)] = value
            presets.append(w)
        pairs = []
        for name in names:
            base = name[:-4] if name.endswith("Left") else name[:-5] if name.endswith("Right") else name
            pairs.append(tuple(ids(base)) if base != name else (index[name],))
        return cls(names, tuple(presets), tuple(pairs))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.preset_probability:
            w = self.presets[rng.integers(len(self.presets))] * rng.uniform(0.5, 1.25)
            w = w * rng.uniform(0.85, 1.15, len(w))  # a little asymmetry
        else:
            w = np.zeros(len(self.names))
            for key in rng.choice(len(self.names), size=rng.integers(1, 5), replace=False):
                sides = self.pairs[key] if rng.random() < 0.8 else (key,)
                value = rng.uniform(0.2, 1.0)
                for side in sides:
                    w[side] = value * rng.uniform(0.85, 1.15)
        return np.clip(w, 0.0, 1.0)
