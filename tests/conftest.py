"""Shared fixtures: the ``../shared`` data folder and a face-model asset built once per session."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from facerecon_core import paths

AFLW = "prnet_aflw2000"  # the reconstruction tests' photo
PHOTO = "image00050.jpg"
K_ALBEDO = 3


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


# ------------------------------------------- the reconstruction tests' model (test_reconstruct, test_same_person)
@pytest.fixture(scope="session")
def recon_facemodel(facemodel, tmp_path_factory):
    """The test face model with a small albedo basis (so p_t is not empty), saved for subprocesses."""
    rng = np.random.default_rng(1)
    basis = (0.02 * rng.standard_normal((K_ALBEDO,) + facemodel.albedo_mean.shape)).astype(np.float32)
    fm = dataclasses.replace(facemodel, albedo_basis=basis, albedo_scale=np.ones(K_ALBEDO, np.float32),
                             content_hash="test-albedo3-" + facemodel.content_hash)
    path = tmp_path_factory.mktemp("recon_fm") / "facemodel.npz"
    fm.save(path)
    return dataclasses.replace(fm, path=path)


@pytest.fixture(scope="session")
def recon_bundle(recon_facemodel, tmp_path_factory) -> Path:
    """A bundle exported from an untrained cpu.yaml network (as tests/test_bundle.py builds one)."""
    import torch

    from facerecon_core.inference.export import export_bundle
    from facerecon_core.model import Config, DualStreamNet
    from test_bundle import CPU_YAML, make_checkpoint

    torch.manual_seed(0)
    config = Config.load(CPU_YAML)
    net = DualStreamNet(config, recon_facemodel).eval()
    folder = tmp_path_factory.mktemp("recon_bundle")
    torch.save(make_checkpoint(net, config, recon_facemodel.content_hash), folder / "ckpt.pt")
    return export_bundle(folder / "ckpt.pt", folder / "model", recon_facemodel, verify=False).out


@pytest.fixture(scope="session")
def photos(shared_dir) -> Path:
    folder = shared_dir / "faces" / AFLW
    if not (folder / PHOTO).is_file():
        pytest.skip(f"{folder / PHOTO} not found")
    return folder


@pytest.fixture(scope="session")
def reconstructor(recon_bundle, recon_facemodel):
    from facerecon_core.pipeline import Reconstructor

    return Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", texture_size=256)
