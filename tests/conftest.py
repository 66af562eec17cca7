"""Shared fixtures: the ``../shared`` data folder and a face-model asset built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerecon_core import paths


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = paths.shared_dir()
    if not (path / "bfm").is_dir():
        pytest.fail(f"shared data not found at {path}: put shared/ beside the repository or set "
                    f"{paths.SHARED_ENV}")
    return path


@pytest.fixture(scope="session")
def facemodel_path(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facerecon_core.facemodel.build import build_facemodel

    out = tmp_path_factory.mktemp("asset") / "facemodel.npz"
    build_facemodel(out, shared_dir / "bfm")
    return out


@pytest.fixture(scope="session")
def facemodel(facemodel_path: Path):
    from facerecon_core.facemodel import FaceModel

    return FaceModel.load(facemodel_path)


@pytest.fixture(scope="session")
def asm_dataset(facemodel_path: Path, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 ``asm`` samples at 128² (seed 7)."""
    from facerecon_core.datasets.synth import SynthRequest, synth

    out = tmp_path_factory.mktemp("asm")
    synth(SynthRequest("asm", 40, seed=7, out=out, res=128, facemodel=facemodel_path), progress=False)
    return out
