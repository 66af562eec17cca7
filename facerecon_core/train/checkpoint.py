"""Training checkpoints: written atomically, loaded without unpickling code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts (``torch.save``), so
``torch.load(weights_only=True)`` reads it:
``{"format", "stage", "config", "model", "discriminator", "optimizers", "step", "epoch",
"batch_in_epoch", "best_metric", "facemodel_hash"}``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facerecon_core.io import atomic_path

FORMAT = "facerecon-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (one line)."""


def save_checkpoint(path: Path, state: dict) -> Path:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: Path) -> dict:
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a facerecon checkpoint (expected format {FORMAT})")
    return state


def model_state(state_dict: dict) -> dict:
    """A state dict without DistributedDataParallel's ``module.`` prefixes."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}
