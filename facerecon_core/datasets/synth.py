"""``facerecon data synth``: generate a dataset of one kind into a sharded folder."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core import paths
from facerecon_core.datasets import storage
from facerecon_core.facemodel import FaceModel

KINDS = ("asm", "profiled", "texture")
SHARD_SIZE = 32


@dataclass(frozen=True)
class SynthRequest:
    """Everything that determines a dataset's content (and so its shards' bytes)."""

    kind: str
    count: int
    seed: int
    out: Path
    res: int = 256
    facemodel: Path | None = None
    photos: Path | None = None  # real photos: backgrounds (asm) or the photos to profile (profiled, texture)

    def photo_root(self) -> Path:
        return self.photos or paths.shared_dir() / "faces"


def synth(request: SynthRequest, workers: int = 1, progress: bool = True) -> dict:
    """Generate the missing shards of ``request`` (resuming an interrupted run) and return the index."""
    if request.kind not in KINDS:
        raise storage.DatasetError(f"unknown kind {request.kind!r}; choose one of {', '.join(KINDS)}")
    if request.count < 1 or request.res < 32:
        raise storage.DatasetError("--count must be ≥ 1 and --res ≥ 32")
    model = FaceModel.load(request.facemodel)
    generator_name = _generator_version(request.kind)
    spec = storage.DatasetSpec(kind=request.kind, count=request.count, seed=request.seed, res=request.res,
                               shard_size=SHARD_SIZE, facemodel_hash=model.content_hash, generator=generator_name)
    factory = functools.partial(make_generator, request)
    return storage.write_dataset(spec, request.out, factory, workers=workers, progress=progress)


def make_generator(request: SynthRequest) -> Callable[[int], dict[str, np.ndarray]]:
    """The sample function of ``request.kind`` (called once per worker process)."""
    from facerecon_core.io.photo import find_photos

    model = FaceModel.load(request.facemodel)

    if request.kind == "asm":
        from facerecon_core.datasets.asm import AsmGenerator
        from facerecon_core.datasets.scene import BackgroundBank

        bank = BackgroundBank(find_photos(request.photo_root()), seed=request.seed)
        return AsmGenerator(model, bank, seed=request.seed, res=request.res)
    raise storage.DatasetError(f"kind {request.kind!r} is not available yet")


def _generator_version(kind: str) -> str:
    if kind == "asm":
        from facerecon_core.datasets.asm import GENERATOR

        return GENERATOR
    return kind
