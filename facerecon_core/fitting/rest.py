"""The photo fit's *rest*: the expression it gives calm faces, moved out of the training labels.

Fitted alone, the neutral-labelled photos of training people keep 1.5 mm RMS of expression (browDown, a raised
lower lip, jawOpen), the very expression the network trained on these labels puts on every real face
(docs/training-history.md, "The rest face, calibrated"). :class:`FitRest` is the mean of those fits' expression
coefficients and ARKit weights; :meth:`FitRest.apply` moves it from a fit's expression into its identity offsets
(coefficients less the mean, ARKit weights less the mean clipped to [0, 1]), so the fitted shape, and with it the
rendered photo and its landmarks, stays as it was (``data synth --label-rest``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting.photos import PhotoFit


@dataclass(frozen=True)
class FitRest:
    exp_coeff: np.ndarray  # (n_exp,) the mean fitted expression coefficients of calm faces
    arkit_weights: np.ndarray  # (K,) their mean fitted ARKit weights
    photos: int

    @classmethod
    def of(cls, fits: list[PhotoFit]) -> FitRest:
        """The mean over ``fits`` (photos of neutral faces, each fitted alone with the ARKit keys)."""
        if not fits:
            raise ValueError("no fit of a neutral photo to take the rest from")
        if any(len(f.arkit_weights) == 0 for f in fits):
            raise ValueError("the rest needs fits with the ARKit keys (FitConfig.arkit)")
        return cls(np.mean([f.exp_coeff for f in fits], 0).astype(np.float32),
                   np.mean([f.arkit_weights for f in fits], 0).astype(np.float32), len(fits))

    def apply(self, fit: PhotoFit, model: FaceModel) -> PhotoFit:
        """``fit`` with the rest moved from its expression into its identity offsets (the same fitted shape)."""
        if len(fit.arkit_weights) != len(self.arkit_weights):
            raise ValueError(f"{fit.source}: the fit has {len(fit.arkit_weights)} ARKit weights, the rest "
                             f"{len(self.arkit_weights)}")
        weights = np.clip(fit.arkit_weights - self.arkit_weights, 0.0, 1.0).astype(np.float32)
        moved = model.expression_offsets(self.exp_coeff) + model.arkit_offsets(fit.arkit_weights - weights)
        return dataclasses.replace(fit, exp_coeff=(fit.exp_coeff - self.exp_coeff).astype(np.float32),
                                   arkit_weights=weights, offsets=(fit.offsets + moved).astype(np.float32))
