"""Loss terms of the model fitter (torch): landmarks, masked photometric error, priors, smoothness."""

from __future__ import annotations

import numpy as np
import torch


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-image Gaussian negative log-likelihood of 2D landmarks: Σ w_k ‖p_k − q_k‖² / (2σ²), shape (B,)."""
    return (weights * (pred - target).square().sum(-1)).sum(-1) / (2.0 * sigma**2)


def landmark_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean landmark error per image (B,), in the inputs' units."""
    return (pred - target).norm(dim=-1).mean(-1)


def photometric_loss(image: torch.Tensor, render: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image masked L2,1 colour error (B,): mean over covered pixels of ‖I − R‖₂.

    ``image`` and ``render`` are (B, 3, H, W), ``mask`` (B, 1, H, W) in [0, 1].
    """
    per_pixel = (image - render).square().sum(1, keepdim=True).add(1e-8).sqrt()
    return (per_pixel * mask).flatten(1).sum(-1) / mask.flatten(1).sum(-1).clamp_min(1.0)


def gaussian_prior(coeff: torch.Tensor) -> torch.Tensor:
    """½‖c‖² per image (B,): the standard normal prior of coefficients in standard deviations."""
    return 0.5 * coeff.square().flatten(1).sum(-1)


class Laplacian:
    """Uniform mesh Laplacian δ_i = v_i − mean of the 1-ring, for (B, V, 3) tensors."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        counts = np.diff(indptr)
        self.owner = torch.as_tensor(np.repeat(np.arange(len(counts)), counts))
        self.neighbour = torch.as_tensor(indices, dtype=torch.long)
        self.inv_count = torch.as_tensor(1.0 / np.maximum(counts, 1), dtype=torch.float32)[:, None]

    def __call__(self, verts: torch.Tensor) -> torch.Tensor:
        sums = torch.zeros_like(verts).index_add(1, self.owner.to(verts.device), verts[:, self.neighbour.to(verts.device)])
        return verts - sums * self.inv_count.to(verts)

    def energy(self, verts: torch.Tensor) -> torch.Tensor:
        """Mean squared Laplacian per image (B,)."""
        return self(verts).square().sum(-1).mean(-1)
