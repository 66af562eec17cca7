"""Geometry stream: attribute decoders (D_id, D_exp) and the parametric sub-network (PSN).

Pose parametrisation p_h ∈ R^6 (size-independent, consistent with :class:`facerecon_core.pose.CropCamera`):

* p_h[0:3] = (pitch, yaw, roll) in radians (``R = Rz(roll) Ry(yaw) Rx(pitch)``);
* p_h[3:5] = 10 · F · (t_x, t_y) / d, the projection of the model origin relative to the crop
  centre in units of the crop side / 10 (F = ``pose.FOCAL_PER_PIXEL``, d = −t_z; y up);
* p_h[5] = 10 · log(D0 / d), the log scale relative to D0 = 200 F mm (≈ 906 mm, the distance at
  which the training crops frame an average face).

The factor 10 makes all three groups O(1) for L_p (angles ≲ 1.3 rad, origin offsets ≲ 0.1 crop,
scale 0.9–1.1). SH p_l ∈ R^27 = 9 coefficients per colour channel ([B, 3, 9] in the normalised basis
of :func:`facerecon_core.render.sh_basis`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facerecon_core.pose import FOCAL_PER_PIXEL

POSE_DIM = 6
SH_DIM = 27
POSE_T_SCALE = 10.0
REFERENCE_DEPTH_MM = 200.0 * FOCAL_PER_PIXEL


def encode_pose(angles: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(angles [B, 3] rad, translation [B, 3] mm) → p_h [B, 6]."""
    depth = -translation[..., 2:3]
    xy = POSE_T_SCALE * FOCAL_PER_PIXEL * translation[..., :2] / depth
    scale = POSE_T_SCALE * torch.log(REFERENCE_DEPTH_MM / depth)
    return torch.cat([angles, xy, scale], dim=-1)


def decode_pose(p_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p_h [B, 6] → (angles [B, 3] rad, translation [B, 3] mm, camera space)."""
    depth = REFERENCE_DEPTH_MM * torch.exp(-p_h[..., 5:6] / POSE_T_SCALE)
    xy = p_h[..., 3:5] / POSE_T_SCALE * depth / FOCAL_PER_PIXEL
    return p_h[..., :3], torch.cat([xy, -depth], dim=-1)


class AttributeDecoder(nn.Module):
    """Pix2pix-style decoder from the 1×1×C latent: log2(size) layers, each bilinear ×2 upsampling
    followed by Conv3×3(stride 1, pad 1); all but the last are Conv-BatchNorm-ReLU, the last is
    Conv → tanh, times ``scale_mm``, plus an optional fixed ``base`` map [3, size, size]: output
    [B, 3, size, size] in millimetres (x, y, z in R, G, B). D_id uses the mean-shape map as base (the
    tanh then only carries the identity's departure from the mean face), D_exp none.
    """

    def __init__(self, latent_dim: int, size: int, widths: list[int], scale_mm: float,
                 base: torch.Tensor | None = None) -> None:
        super().__init__()
        n_layers = int(round(math.log2(size)))
        if 2**n_layers != size:
            raise ValueError(f"ASM size {size} must be a power of two")
        if len(widths) != n_layers - 1:
            raise ValueError(f"ASM size {size} needs {n_layers - 1} decoder widths (one per hidden layer), "
                             f"got {len(widths)}")
        blocks: list[nn.Module] = []
        c = latent_dim
        for w in widths:
            blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                        nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)))
            c = w
        blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh()))
        self.layers = nn.Sequential(*blocks)
        self.scale_mm = float(scale_mm)
        self.latent_dim = latent_dim
        self.register_buffer("base", torch.zeros(3, size, size) if base is None else base.clone(), persistent=False)

    def forward(self, f_l: torch.Tensor) -> torch.Tensor:
        return self.base + self.scale_mm * self.layers(f_l.reshape(-1, self.latent_dim, 1, 1))


class ParametricSubnet(nn.Module):
    """PSN (eq. 3): two FC layers on f_L → (p_t [B, K_alb], p_l [B, 3, 9], p_h [B, 6]).

    ``split=True`` gives albedo and light a hidden layer of their own (``app1``, ``app2``) beside the pose's
    (``fc1``, ``fc2``, then pose rows only), so that fusion can retrain them while the pose stays as stage 1
    taught it. A shared PSN's weights load into a split one as two copies of the shared layer.
    """

    def __init__(self, latent_dim: int, n_albedo: int, hidden: int = 512, split: bool = False) -> None:
        super().__init__()
        self.n_albedo, self.split = n_albedo, split
        k = n_albedo + SH_DIM
        self.fc1 = nn.Linear(latent_dim, hidden)
        self.fc2 = nn.Linear(hidden, POSE_DIM if split else k + POSE_DIM)
        self.app1 = nn.Linear(latent_dim, hidden) if split else None
        self.app2 = nn.Linear(hidden, k) if split else None
        with torch.no_grad():  # start from a neutral, frontal, ambient-lit face
            for fc in (self.fc2, self.app2):
                if fc is not None:
                    fc.weight.mul_(0.1)
                    fc.bias.zero_()
            (self.app2 if split else self.fc2).bias[n_albedo:k].view(3, 9)[:, 0] = 0.8

    def forward(self, f_l: torch.Tensor, f_a: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p_t, p_l, p_h); a split PSN's albedo and light read ``f_a`` instead of f_L when given."""
        out = self.fc2(torch.relu(self.fc1(f_l)))
        if self.split:
            out = torch.cat([self.app2(torch.relu(self.app1(f_l if f_a is None else f_a))), out], dim=1)
        k = self.n_albedo
        return out[:, :k], out[:, k:k + SH_DIM].reshape(-1, 3, 9), out[:, k + SH_DIM:]

    def freeze_pose(self) -> None:
        """Keep p_h fixed while p_t and p_l still learn: no gradient to the pose's layers (shared: to fc1 and to
        fc2's pose rows)."""
        if self.split:
            for fc in (self.fc1, self.fc2):
                fc.requires_grad_(False)
        else:
            self.fc1.requires_grad_(False)
            self._freeze_rows(slice(self.n_albedo + SH_DIM, None))

    def freeze_light(self) -> None:
        """No gradient to the albedo and light layers while the pose's learn: a split PSN's ``app1``/``app2``
        (p_t and p_l then depend on them and on the appearance layers alone); a shared PSN's fc2 rows for them
        (its fc1 serves the pose too and still learns, so there p_t and p_l can still move)."""
        if self.split:
            for fc in (self.app1, self.app2):
                fc.requires_grad_(False)
        else:
            self._freeze_rows(slice(0, self.n_albedo + SH_DIM))

    def _freeze_rows(self, rows: slice) -> None:
        keep = torch.ones(self.fc2.out_features, 1)
        keep[rows] = 0.0
        self.fc2.weight.register_hook(lambda grad: grad * keep)
        self.fc2.bias.register_hook(lambda grad: grad * keep[:, 0])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        k = self.n_albedo + SH_DIM
        shared = state_dict.get(prefix + "fc2.weight")
        if self.split and prefix + "app1.weight" not in state_dict and shared is not None \
                and len(shared) == k + POSE_DIM:
            for name in ("weight", "bias"):
                state_dict[prefix + "app1." + name] = state_dict[prefix + "fc1." + name]
                full = state_dict[prefix + "fc2." + name]
                state_dict[prefix + "app2." + name], state_dict[prefix + "fc2." + name] = full[:k], full[k:]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
