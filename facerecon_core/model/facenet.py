"""MobileFaceNet (Chen et al. 2018) for the identity loss L_id (eq. 21).

Module tree and parameter names follow Xiaoccer/MobileFaceNet_Pytorch (``conv1``, ``dw_conv1``,
``blocks.0..14.conv.0..7``, ``conv2``, ``linear7``, ``linear1``) so its CASIA-WebFace checkpoint
(``<shared>/models/mobilefacenet_casia_068.ckpt``, key ``net_state_dict``) loads with ``strict=True``.
Input: 112×96 (H×W) aligned RGB face, ``(pixel − 127.5) / 128``; output: 128-d embedding.
Faces are aligned by a similarity transform from five landmark-derived points (eye centres, nose
tip, mouth corners of the iBUG-68 scheme) to the standard 96×112 template of SphereFace / CosFace.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facerecon_core.model.backbones import WeightsError

# (x, y) in a 96-wide, 112-high crop: image-left eye, image-right eye, nose tip, mouth corners.
TEMPLATE_96x112 = ((30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655),
                   (62.7299, 92.2041))
FACE_H, FACE_W = 112, 96

_SETTINGS = [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)]  # t, c, n, s


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k, s: int, p, dw: bool = False, linear: bool = False) -> None:
        super().__init__()
        self.linear = linear
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=cin if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if not linear:
            self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.linear else self.prelu(x)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        self.connect = stride == 1 and cin == cout
        h = cin * expansion
        self.conv = nn.Sequential(
            nn.Conv2d(cin, h, 1, 1, 0, bias=False), nn.BatchNorm2d(h), nn.PReLU(h),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.PReLU(h),
            nn.Conv2d(h, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.connect else self.conv(x)


class MobileFaceNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, dw=True)
        blocks, c = [], 64
        for t, cout, n, s in _SETTINGS:
            for i in range(n):
                blocks.append(Bottleneck(c, cout, s if i == 0 else 1, t))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBlock(128, 512, 1, 1, 0)
        self.linear7 = ConvBlock(512, 512, (7, 6), 1, 0, dw=True, linear=True)
        self.linear1 = ConvBlock(512, 128, 1, 1, 0, linear=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input [B, 3, 112, 96] → embedding [B, 128]."""
        x = self.dw_conv1(self.conv1(x))
        x = self.conv2(self.blocks(x))
        return self.linear1(self.linear7(x)).flatten(1)

    @classmethod
    def load(cls, path: str | Path) -> MobileFaceNet:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"MobileFaceNet checkpoint not found: {path} (expected the shared "
                               "models/mobilefacenet_casia_068.ckpt)")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = cls()
        net.load_state_dict(ckpt.get("net_state_dict", ckpt), strict=True)
        return net.eval()


def five_points(landmarks_68: torch.Tensor) -> torch.Tensor:
    """[B, 68, 2] iBUG landmarks → [B, 5, 2]: eye centres (36–41, 42–47), nose tip (30), mouth corners (48, 54)."""
    return torch.stack([landmarks_68[:, 36:42].mean(1), landmarks_68[:, 42:48].mean(1), landmarks_68[:, 30],
                        landmarks_68[:, 48], landmarks_68[:, 54]], dim=1)


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (Umeyama, no reflection) mapping src [B, N, 2] → dst [B, N, 2]: [B, 2, 3]."""
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - mu_s, dst - mu_d
    # Parametrise [[a, -b], [b, a]]: closed form.
    denom = s.square().sum(dim=(1, 2)).clamp_min(1e-8)
    a = (s * d).sum(dim=(1, 2)) / denom
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / denom
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], 1)  # [B, 2, 2]
    t = mu_d[:, 0] - (rot @ mu_s[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[..., None]], dim=2)


def align_faces(images: torch.Tensor, landmarks_68: torch.Tensor) -> torch.Tensor:
    """Warp images [B, 3, H, W] in [0, 1] to aligned 112×96 faces (bilinear, differentiable in the images).

    ``landmarks_68`` are in pixel coordinates of ``images`` (pixel centres on integers).
    """
    template = torch.tensor(TEMPLATE_96x112, dtype=images.dtype, device=images.device)
    # Template → image mapping (the inverse warp), with template points at pixel centres (x − 0.5).
    m = similarity_transform(template.expand(images.shape[0], 5, 2) - 0.5, five_points(landmarks_68))
    ys, xs = torch.meshgrid(torch.arange(FACE_H, dtype=images.dtype, device=images.device),
                            torch.arange(FACE_W, dtype=images.dtype, device=images.device), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)
    src = pts @ m.transpose(1, 2)  # [B, H*W, 2] image pixels
    h, w = images.shape[-2:]
    grid = torch.stack([(2 * src[..., 0] + 1) / w - 1, (2 * src[..., 1] + 1) / h - 1], -1)
    return F.grid_sample(images, grid.view(-1, FACE_H, FACE_W, 2), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


class IdentityEmbedder(nn.Module):
    """Frozen MobileFaceNet on aligned faces: images [B, 3, H, W] in [0, 1] + 68 landmarks → [B, 128]."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.net = MobileFaceNet.load(path)
        self.net.requires_grad_(False)

    def train(self, mode: bool = True) -> IdentityEmbedder:  # always in eval mode (frozen BN statistics)
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: torch.Tensor, landmarks_68: torch.Tensor) -> torch.Tensor:
        faces = align_faces(images, landmarks_68)
        return self.net((faces * 255.0 - 127.5) / 128.0)
