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


def checkpoint_state(net: torch.nn.Module, config, facemodel_hash: str, stage: str = "geometry",
                     **progress) -> dict:
    """A checkpoint dict of ``net`` (the keys above); ``progress`` sets ``discriminator``,
    ``optimizers``, ``step``, ``epoch``, ``batch_in_epoch``, ``best_metric``, ``seed``."""
    import dataclasses

    state = {"stage": stage, "config": dataclasses.asdict(config), "model": net.state_dict(), "discriminator": None,
             "optimizers": {}, "step": 0, "epoch": 0, "batch_in_epoch": 0, "best_metric": float("inf"),
             "facemodel_hash": facemodel_hash}
    unknown = set(progress) - set(state) - {"seed"}
    if unknown:
        raise TypeError(f"unknown checkpoint fields: {', '.join(sorted(unknown))}")
    return {**state, **progress}


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
