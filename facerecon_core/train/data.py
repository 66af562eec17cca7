"""Batches for training: a deterministic, resumable, rank-sharded sample order, and resizing of
dataset samples to the network's sizes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facerecon_core.model.config import ModelConfig


@dataclass(frozen=True)
class EpochOrder:
    """Which samples form each global batch of an epoch: a permutation of the training indices
    drawn from ``(seed, epoch)``; a global batch is split into equal per-rank parts."""

    indices: np.ndarray  # the dataset indices used for training
    global_batch: int
    seed: int
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if self.global_batch % self.world:
            raise ValueError(f"batch size {self.global_batch} does not split over {self.world} processes")
        if len(self.indices) < self.global_batch:
            raise ValueError(f"{len(self.indices)} training samples are fewer than one batch of {self.global_batch}")

    @property
    def batches_per_epoch(self) -> int:
        return len(self.indices) // self.global_batch

    def batches(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """This rank's sample indices of batches ``start``, ``start + 1``, ... of ``epoch``."""
        perm = self.indices[np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))]
        per_rank = self.global_batch // self.world
        for b in range(start, self.batches_per_epoch):
            first = b * self.global_batch + self.rank * per_rank
            yield perm[first:first + per_rank].tolist()


def split_indices(n: int, val_every: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``val_every``-th sample (by position) is held out for validation."""
    all_ids = np.arange(n)
    val = all_ids[::val_every] if val_every > 0 else all_ids[:0]
    return np.setdiff1d(all_ids, val), val


def repeat_per_folder(ids: np.ndarray, offsets: np.ndarray, repeats: list[int]) -> np.ndarray:
    """``ids`` with each id of folder ``i`` (``offsets[i] <= id < offsets[i + 1]``) repeated ``repeats[i]`` times:
    an epoch oversamples the folder while the held-out samples (every n-th of the folders as given) stay put."""
    if len(repeats) != len(offsets) - 1:
        raise ValueError(f"{len(repeats)} repeat counts for {len(offsets) - 1} dataset folders")
    if min(repeats) < 1:
        raise ValueError(f"repeat counts must be at least 1, not {min(repeats)}")
    folder = np.searchsorted(offsets, ids, side="right") - 1
    return np.repeat(ids, np.asarray(repeats)[folder])


PAIR_KEYS = ("image_pair", "pair_valid")  # a same-person view: samples without one get zeros (pair_valid 0)


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The keys every sample has, stacked; the same-person pair keys when any sample has them (zeros for the
    others, so a batch mixing data kinds keeps its pairs)."""
    keys = set.intersection(*(set(s) for s in samples))
    out = {k: torch.stack([s[k] for s in samples]) for k in sorted(keys)}
    paired = [all(k in s for k in PAIR_KEYS) for s in samples]
    if any(paired) and "image" in out:
        for key in PAIR_KEYS:
            zero = torch.zeros_like(samples[paired.index(True)][key])
            out[key] = torch.stack([s[key] if ok else zero for s, ok in zip(samples, paired)])
    return out


def held_out_batch(dataset: torch.utils.data.Dataset, ids, model: ModelConfig, device="cpu") -> dict:
    """Samples ``ids`` of ``dataset`` as one batch on ``device``, sized for the network (validation)."""
    batch = collate([dataset[int(i)] for i in ids])
    return adapt_batch({k: v.to(device) for k, v in batch.items()}, model)


def adapt_batch(batch: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """Resize a collated batch to the network's input, ASM and texture sizes.

    Images and maps are area-resampled; landmarks are rescaled in pixel-centre coordinates. The
    crop camera scales with the crop, so pose and SH labels stay as they are.
    """
    out = dict(batch)
    size = batch["image"].shape[-1]
    targets = {"image": model.input_size, "image_pair": model.input_size, "face_mask": model.input_size,
               "asm_id": model.geometry.asm_size,
               "asm_exp": model.geometry.asm_size, "uv_albedo": model.texture.tex_size,
               "uv_texture": model.texture.tex_size, "uv_visibility": model.texture.tex_size}
    for key, target in targets.items():
        if key in out and out[key].shape[-1] != target:
            out[key] = F.interpolate(out[key], size=(target, target), mode="area")
    for key in ("face_mask", "uv_visibility"):
        if key in out:
            out[key] = (out[key] > 0.5).float()
    if "landmarks_2d" in out and size != model.input_size:
        scale = model.input_size / size
        out["landmarks_2d"] = (out["landmarks_2d"] + 0.5) * scale - 0.5
    return out
