"""A torch ``Dataset`` over one or more dataset folders, with photometric augmentation.

Augmentations change only the input crop's appearance (colour, blur, noise, JPEG, occluders), so
every geometric label stays exact. They are drawn from ``(seed, epoch, index)``: the same epoch
gives the same batches, which makes resumed training reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facerecon_core.datasets.scene import degrade
from facerecon_core.datasets.storage import PNG_KEYS, ShardedDataset

IMAGE_KEYS = frozenset({"image", "image_pair", "uv_albedo", "uv_texture"})


@dataclass(frozen=True)
class Augment:
    """Probabilities and strengths of the photometric augmentations."""

    colour: float = 0.8  # brightness / contrast / saturation jitter
    grayscale: float = 0.05
    degrade: float = 0.5  # blur, noise, JPEG (see scene.degrade)
    occluder: float = 0.2  # a random flat-coloured rectangle over part of the face

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = image.astype(np.float32)
        if rng.random() < self.colour:
            mean = out.mean(axis=(0, 1), keepdims=True)
            out = (out - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.7, 1.3)
            grey = out.mean(axis=2, keepdims=True)
            out = grey + (out - grey) * rng.uniform(0.6, 1.4)
        if rng.random() < self.grayscale:
            out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
        out = np.clip(out, 0, 255).astype(np.uint8)
        if rng.random() < self.degrade:
            out = degrade(out, rng)
        if rng.random() < self.occluder:
            h, w = out.shape[:2]
            bh, bw = (rng.uniform(0.1, 0.35, 2) * (h, w)).astype(int)
            y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
            out = out.copy()
            out[y:y + bh, x:x + bw] = rng.integers(0, 256, 3)
        return out


class FaceDataset(torch.utils.data.Dataset):
    """Samples of one or more dataset folders as tensors.

    Images become float (C, H, W) in [0, 1], masks float (1, H, W), everything else float32
    tensors of the stored shape. Only ``image`` (and a same-person ``image_pair``) is augmented.
    """

    def __init__(self, folders: list[str | Path], augment: Augment | None = Augment(), seed: int = 0):
        self.parts = [ShardedDataset(f) for f in folders]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.augment, self.seed, self.epoch = augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        sample = self.parts[part][index - int(self.offsets[part])]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample["image"] = self.augment(sample["image"], rng)
            if "image_pair" in sample:
                sample["image_pair"] = self.augment(sample["image_pair"], rng)
        return {key: to_tensor(key, value) for key, value in sample.items()}


def to_tensor(key: str, value: np.ndarray) -> torch.Tensor:
    if key in IMAGE_KEYS:
        return torch.from_numpy(np.ascontiguousarray(value)).permute(2, 0, 1).float() / 255.0
    if key in PNG_KEYS:  # masks
        return torch.from_numpy(np.ascontiguousarray(value))[None].float()
    if key.startswith("asm_"):
        return torch.from_numpy(value.astype(np.float32)).permute(2, 0, 1)
    return torch.from_numpy(np.asarray(value, np.float32))

