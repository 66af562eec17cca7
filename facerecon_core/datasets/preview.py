"""``facerecon data preview``: a contact sheet of dataset samples (crops with landmarks, ASMs, UV maps)."""

from __future__ import annotations

import cv2
import numpy as np

from facerecon_core.datasets.storage import ShardedDataset

EXPRESSION_RANGE_MM = 10.0  # expression ASM offsets of ±this map to the ends of the colour scale


def asm_identity_rgb(asm: np.ndarray) -> np.ndarray:
    """Identity ASM → uint8 RGB, x/y/z each stretched over its range (as the paper's Fig. 3)."""
    asm = asm.astype(np.float32)
    lo, hi = asm.reshape(-1, 3).min(0), asm.reshape(-1, 3).max(0)
    return ((asm - lo) / np.maximum(hi - lo, 1e-6) * 255).astype(np.uint8)


def asm_expression_rgb(asm: np.ndarray) -> np.ndarray:
    """Expression ASM → uint8 RGB with zero offset at mid-grey, ±EXPRESSION_RANGE_MM at the ends."""
    return (np.clip(asm.astype(np.float32) / EXPRESSION_RANGE_MM * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    radius = max(1, image.shape[0] // 128)
    for x, y in np.round(landmarks).astype(int):
        cv2.circle(out, (int(x), int(y)), radius, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return out


def sample_row(sample: dict[str, np.ndarray], tile: int) -> np.ndarray:
    """One sample as tiles: image + landmarks, face mask, identity ASM, expression ASM, UV maps."""
    tiles = [draw_landmarks(sample["image"], sample["landmarks_2d"])]
    if "face_mask" in sample:
        tiles.append(np.repeat(sample["face_mask"][..., None].astype(np.uint8) * 255, 3, axis=2))
    if "asm_id" in sample:
        tiles += [asm_identity_rgb(sample["asm_id"]), asm_expression_rgb(sample["asm_exp"])]
    for key in ("uv_albedo", "uv_texture"):
        if key in sample:
            tiles.append(sample[key])
    return np.concatenate([cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles], axis=1)


def preview_grid(dataset: ShardedDataset, count: int = 8, tile: int = 128, seed: int = 0) -> np.ndarray:
    """Rows of ``count`` randomly chosen samples (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(dataset), size=min(count, len(dataset)), replace=False))
    return np.concatenate([sample_row(dataset[int(i)], tile) for i in chosen], axis=0)
