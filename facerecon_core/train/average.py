"""Weight averaging: checkpoints (or bundles) of one network, averaged weight by weight.

Networks fine-tuned from one start, with BatchNorm frozen, share its parametrisation, so a weighted mean of
their weights is a network between them (as WiSE-FT's interpolation of starting and fine-tuned weights). The
inputs must agree: the same face model, the same network (parameter names and shapes, model config) and the
same BatchNorm form. An inference-only bundle's BatchNorm is folded into its convolutions
(:mod:`facerecon_core.train.from_bundle`); a run started from one keeps that form (statistics 0 and 1 − ε),
one started from a checkpoint does not, and the two cannot be averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facerecon_core.train.checkpoint import CheckpointError, model_state
from facerecon_core.train.from_bundle import holds_folded_batchnorm, load_start


@dataclass(frozen=True)
class AverageReport:
    """What was averaged, with which weights, and how far apart the first two inputs were."""

    sources: tuple[str, ...]
    weights: tuple[float, ...]
    tensors: int  # floating-point tensors averaged
    distance: float  # RMS difference between the first two sources' weights

    def summary(self) -> str:
        parts = ", ".join(f"{w:g} × {s}" for s, w in zip(self.sources, self.weights))
        return f"averaged {self.tensors} tensors: {parts} (RMS weight difference {self.distance:.3g})"


def average_checkpoints(sources: list[str | Path], weights: list[float] | None,
                        facemodel) -> tuple[dict, AverageReport]:
    """The checkpoint dict of the weighted mean of ``sources`` (checkpoints or bundle folders); ``weights``
    (default equal) are normalised to sum to 1. Raises :class:`CheckpointError` on inputs that do not agree."""
    if len(sources) < 2:
        raise CheckpointError("averaging needs at least two checkpoints or bundles")
    weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
    if len(weights) != len(sources):
        raise CheckpointError(f"{len(weights)} weights for {len(sources)} checkpoints")
    if min(weights) < 0 or sum(weights) <= 0:
        raise CheckpointError("weights must be non-negative with a positive sum")
    total = sum(weights)
    weights = [w / total for w in weights]
    starts = [load_start(s, facemodel).checkpoint for s in sources]
    states = [model_state(s["model"]) for s in starts]
    first = states[0]
    for source, start, state in zip(sources[1:], starts[1:], states[1:]):
        if start["config"]["model"] != starts[0]["config"]["model"]:
            raise CheckpointError(f"{source}: another network configuration than {sources[0]}")
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise CheckpointError(f"{source}: another network (parameter names or shapes) than {sources[0]}")
    forms = {holds_folded_batchnorm(s) for s in states}
    if len(forms) > 1:
        raise CheckpointError("BatchNorm is folded into the convolutions in some inputs and not in others (a run "
                              "started from an inference-only bundle against one started from a checkpoint): "
                              "their weights do not correspond")
    floats = [k for k in first if first[k].is_floating_point()]
    averaged = {k: sum(w * s[k].double() for w, s in zip(weights, states)).to(v.dtype) if v.is_floating_point()
                else v.clone() for k, v in first.items()}  # counters (num_batches_tracked): the first's
    squared = sum(float(((states[0][k].double() - states[1][k].double()) ** 2).sum()) for k in floats)
    distance = (squared / max(sum(first[k].numel() for k in floats), 1)) ** 0.5
    state = {**starts[0], "model": averaged, "discriminator": None, "optimizers": {}, "step": 0, "epoch": 0,
             "batch_in_epoch": 0, "best_metric": float("inf")}
    report = AverageReport(tuple(str(s) for s in sources), tuple(weights), len(floats), distance)
    return state, report

