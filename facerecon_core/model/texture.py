"""Texture stream (Sec. III-B): SSRPM, SRSM, the U-Net texture generator G_t and a PatchGAN.

Layout of G_t (levels ℓ = 0..L−1 at T / 2^ℓ, widths ``widths[ℓ]``):

    I_u ─ content encoder ─ e_0 … e_{L−1} = X_u^m ─┐
    I_o ─ style encoder (same shape, own weights) ─ X_o^m ─┼─ SSRPM → X_s (n soft regions, eqs. 9–11)
    heatmaps(68 landmarks) ⊕ I_o ─ F_a ─ X_a ──────┘
    SRSM(X_u^m, X_o^m, X_s) (eqs. 13–14) → decoder: ×2 bilinear + conv per level, adding e_ℓ
    (additive skip connections between layer l and h − l) → conv → sigmoid → I_a ∈ [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2, inplace=True))


def landmark_heatmaps(landmarks: torch.Tensor, crop_size: int, size: int, sigma: float) -> torch.Tensor:
    """68 Gaussian heatmaps [B, K, size, size] of landmarks [B, K, 2] given in pixels of a
    ``crop_size`` crop (pixel centres on integers); σ in heatmap pixels, peak value 1."""
    pts = (landmarks + 0.5) * (size / crop_size) - 0.5
    grid = torch.arange(size, dtype=landmarks.dtype, device=landmarks.device)
    dx = (grid.view(1, 1, 1, size) - pts[..., 0, None, None]).square()
    dy = (grid.view(1, 1, size, 1) - pts[..., 1, None, None]).square()
    return torch.exp(-(dx + dy) / (2.0 * sigma**2))


class Encoder(nn.Module):
    """Stem conv at full resolution then a stride-2 conv per level; returns every level's features."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.stem = _conv(3, widths[0])
        self.downs = nn.ModuleList(_conv(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class SSRPM(nn.Module):
    """Shared Semantic Region Prediction Module: X_s = softmax(F_s(X'_u + X'_o) + k X_a) (eqs. 9–11).

    X'_u, X'_o: the mid-level features aligned by two groups of filters (conv 1×1 each); F_s: a
    conv with n filters. X_a = F_a[K(I_o), I_o]: the landmark heatmaps concatenated with I_o at a
    quarter of the texture size, taken to the mid-level grid by strided convolutions. k is learnable,
    initialised to ``k_init``.
    """

    def __init__(self, channels: int, n_regions: int, n_landmarks: int = 68, k_init: float = 1e-2,
                 landmark_downsample: int = 1) -> None:
        super().__init__()
        self.align_u = nn.Conv2d(channels, channels, 1)
        self.align_o = nn.Conv2d(channels, channels, 1)
        self.f_s = nn.Conv2d(channels, n_regions, 3, 1, 1)
        layers: list[nn.Module] = []
        c = n_landmarks + 3
        for _ in range(landmark_downsample):
            layers += [nn.Conv2d(c, 64, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c = 64
        layers.append(nn.Conv2d(c, n_regions, 3, 1, 1))
        self.f_a = nn.Sequential(*layers)
        self.k = nn.Parameter(torch.tensor(float(k_init)))

    def forward(self, x_u: torch.Tensor, x_o: torch.Tensor, heatmaps: torch.Tensor,
                image_small: torch.Tensor) -> torch.Tensor:
        x_prime = self.align_u(x_u) + self.align_o(x_o)
        x_a = self.f_a(torch.cat([heatmaps, image_small], dim=1))
        return torch.softmax(self.f_s(x_prime) + self.k * x_a, dim=1)


class SRSM(nn.Module):
    """Semantic Region Stylization Mechanism (eqs. 13–14).

    For each soft region i (weights X_s_i), μ_i and σ_i are the X_s_i-weighted mean and standard
    deviation per channel of the content features X_u^m (instance normalisation restricted to the
    region), and the style codes α_i, β_i come from the style features X_o^m: a conv (3×3) on
    X_o^m, pooled with the same region weights, then one 1×1 conv each for α_i and β_i (β = 1 + ·).
    X_r = Σ_i ((X_u − μ_i) / (σ_i + ε) · β_i + α_i) ⊙ X_s_i.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.style = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.to_alpha = nn.Conv1d(channels, channels, 1)
        self.to_beta = nn.Conv1d(channels, channels, 1)
        self.eps = eps

    def forward(self, x_u: torch.Tensor, x_o: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        mass = regions.sum(dim=(2, 3)).unsqueeze(-1) + self.eps  # [B, n, 1]
        mu = torch.einsum("bchw,bnhw->bnc", x_u, regions) / mass
        var = torch.einsum("bchw,bnhw->bnc", x_u.square(), regions) / mass - mu.square()
        sigma = var.clamp_min(0.0).add(self.eps).sqrt()
        style = torch.einsum("bchw,bnhw->bcn", self.style(x_o), regions) / mass.transpose(1, 2)  # [B, C, n]
        alpha = self.to_alpha(style).transpose(1, 2)  # [B, n, C]
        beta = 1.0 + self.to_beta(style).transpose(1, 2)
        gain = beta / (sigma + self.eps)
        scale_map = torch.einsum("bnc,bnhw->bchw", gain, regions)
        shift_map = torch.einsum("bnc,bnhw->bchw", alpha - mu * gain, regions)
        return x_u * scale_map + shift_map


class TextureGenerator(nn.Module):
    """G_t (eq. 12): (I_u [B, 3, T, T], I_o [B, 3, S, S], landmarks [B, 68, 2] crop px) → I_a [B, 3, T, T]."""

    def __init__(self, tex_size: int, input_size: int, widths: list[int], n_regions: int = 16,
                 k_init: float = 1e-2, landmark_sigma: float = 1.0) -> None:
        super().__init__()
        if len(widths) < 3 or tex_size % (2 ** (len(widths) - 1)):
            raise ValueError(f"texture size {tex_size} and widths {widths}: need ≥3 levels dividing the size")
        self.tex_size, self.input_size, self.sigma = tex_size, input_size, landmark_sigma
        self.heat_size = tex_size // 4
        self.content = Encoder(widths)
        self.style = Encoder(widths)
        self.ssrpm = SSRPM(widths[-1], n_regions, k_init=k_init, landmark_downsample=len(widths) - 3)
        self.srsm = SRSM(widths[-1])
        self.bottleneck = _conv(widths[-1], widths[-1])
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _conv(a, b))
            for a, b in zip(widths[:0:-1], widths[-2::-1]))
        self.out = nn.Conv2d(widths[0], 3, 3, 1, 1)

    def forward(self, i_u: torch.Tensor, image: torch.Tensor, landmarks_2d: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (I_a, X_s) with X_s the soft region maps [B, n, T/2^(L−1), ...]."""
        i_o = image
        if image.shape[-1] != self.tex_size:  # static shapes: fine for tracing
            i_o = F.interpolate(image, size=(self.tex_size, self.tex_size), mode="bilinear", align_corners=False,
                                antialias=False)
        feats_u = self.content(i_u)
        x_o = self.style(i_o)[-1]
        heat = landmark_heatmaps(landmarks_2d, self.input_size, self.heat_size, self.sigma)
        small = F.adaptive_avg_pool2d(i_o, self.heat_size)
        regions = self.ssrpm(feats_u[-1], x_o, heat, small)
        x = self.bottleneck(self.srsm(feats_u[-1], x_o, regions))
        for up, skip in zip(self.ups, feats_u[-2::-1]):
            x = up(x) + skip
        return torch.sigmoid(self.out(x)), regions


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix 70×70 for 4 widths): conv4×4 s2 … s1 → one logit per patch [B, 1, h, w]."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            stride = 2 if i < len(widths) - 2 else 1
            layers += [nn.Conv2d(a, b, 4, stride, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
