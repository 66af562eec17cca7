"""``facerecon validate``: a stage's held-out losses for several checkpoints on the same samples.

Runs are compared on samples that none of them trained on: every ``every``-th sample of each dataset
folder (optionally only those below an index). A training run on folders A + B holds out every n-th
sample of their concatenation, which is every n-th of B too when A's size is a multiple of n.
Losses are the stage's validation losses (eval mode, no augmentation), averaged over the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core.datasets.torch_data import FaceDataset
from facerecon_core.facemodel import FaceModel
from facerecon_core.inference.export import build_network
from facerecon_core.train.checkpoint import CheckpointError
from facerecon_core.train.data import held_out_batch, split_indices
from facerecon_core.train.from_bundle import load_start
from facerecon_core.train.stages import make_stage, missing_keys


@dataclass(frozen=True)
class HeldOutLosses:
    checkpoint: Path
    dataset: Path
    samples: int
    losses: dict[str, float]  # the stage's validation terms and total, averaged over the samples


def held_out_ids(n: int, every: int, below: int | None = None) -> np.ndarray:
    """Every ``every``-th index of ``n`` (as a run's validation split), only those ``< below`` if given."""
    ids = split_indices(n, every)[1]
    return ids if below is None else ids[ids < below]


def validate(checkpoints: list[Path], data: list[Path], stage: str, *, every: int = 20, below: int | None = None,
             facemodel: Path | None = None, batch_size: int = 8) -> list[HeldOutLosses]:
    """The ``stage`` losses of each checkpoint or bundle folder (built with its own config) on each folder's
    held-out samples (in eval mode, so a bundle's folded BatchNorm gives exactly its network)."""
    model = FaceModel.load(facemodel)
    folders = [(Path(d), FaceDataset([d], augment=None)) for d in data]
    for folder, dataset in folders:
        missing = missing_keys(stage, dataset)
        if missing:
            raise CheckpointError(f"{folder} has no {', '.join(sorted(missing))}: the {stage} losses need them")
    results = []
    for path in checkpoints:
        state = load_start(path, model).checkpoint
        net, config = build_network(state, model, str(path))  # no ImageNet weights loaded only to be replaced
        evaluator = make_stage(stage, net, config, model)
        for folder, dataset in folders:
            ids = held_out_ids(len(dataset), every, below)
            if len(ids) == 0:
                raise CheckpointError(f"{folder}: no held-out sample (every {every}-th, below {below})")
            sums: dict[str, float] = {}
            for start in range(0, len(ids), batch_size):
                chunk = ids[start:start + batch_size]
                for name, value in evaluator.evaluate(held_out_batch(dataset, chunk, config.model)).items():
                    sums[name] = sums.get(name, 0.0) + float(value) * len(chunk)
            results.append(HeldOutLosses(Path(path), folder, len(ids), {k: v / len(ids) for k, v in sums.items()}))
    return results
