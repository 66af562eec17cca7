"""Running unchanged under ``torchrun``: process group, gradient averaging, rank-0 duties.

Gradients are averaged across processes right before each optimiser step (the optimisers are
wrapped), which is what DistributedDataParallel computes, without requiring every stage to go
through one ``forward``. BatchNorm statistics stay per process on the CPU (torch has no CPU
SyncBatchNorm); on CUDA they are synchronised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device: str) -> Dist:
    """Read torchrun's environment (gloo on the CPU, nccl on CUDA); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


class AveragedGradients(torch.optim.Optimizer):
    """Wraps an optimiser: all-reduces (averages) the gradients over processes, then steps."""

    def __init__(self, inner: torch.optim.Optimizer, world: int):  # noqa: D107 - no super().__init__: a proxy
        self.inner, self.world = inner, world

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        if self.world > 1:
            for group in self.inner.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
        return self.inner.step(closure)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def broadcast_module(module: torch.nn.Module, world: int) -> None:
    """Give every process rank 0's parameters and buffers."""
    if world > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_metrics(metrics: dict[str, float], world: int) -> dict[str, float]:
    """Mean of each metric over processes."""
    if world == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {k: float(v) / world for k, v in zip(keys, values)}
