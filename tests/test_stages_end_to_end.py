"""The three stages through the CLI on tiny datasets, then export and inference with the bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon_core.cli import main
from facerecon_core.datasets.synth import SynthRequest, synth
from facerecon_core.train.checkpoint import load_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "cpu.yaml"


@pytest.mark.slow
def test_geometry_texture_fusion_then_export(asm_dataset: Path, facemodel_path: Path, shared_dir: Path,
                                             tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("image00050.jpg", "image00081.jpg"):
        (photos / name).symlink_to(shared_dir / "faces" / "prnet_aflw2000" / name)
    texture = tmp_path / "texture"
    synth(SynthRequest("texture", 8, seed=0, out=texture, res=128, facemodel=facemodel_path, photos=(photos,),
                       fits=tmp_path / "fits"), progress=False)
    common = ["--config", str(CONFIG), "--facemodel", str(facemodel_path), "--workers", "0", "--val-every", "0"]
    runs = {}
    previous = None
    for stage, data in (("geometry", asm_dataset), ("texture", texture), ("fusion", texture)):
        runs[stage] = tmp_path / stage
        init = ["--init", str(previous / "last.pt")] if previous else []
        assert main(["train", "--stage", stage, "--data", str(data), "--out", str(runs[stage]),
                     "--max-steps", "2", *common, *init]) == 0
        state = load_checkpoint(runs[stage] / "last.pt")
        assert state["stage"] == stage and state["step"] == 2
        previous = runs[stage]
    # the texture stage refuses a dataset without UV targets
    assert main(["train", "--stage", "texture", "--data", str(asm_dataset), "--out", str(tmp_path / "bad"),
                 "--max-steps", "1", *common]) == 2

    bundle_dir = tmp_path / "bundle"
    assert main(["export", "--checkpoint", str(runs["fusion"] / "last.pt"), "--out", str(bundle_dir),
                 "--facemodel", str(facemodel_path)]) == 0
    from facerecon_core.datasets.storage import ShardedDataset
    from facerecon_core.inference.bundle import ModelBundle

    bundle = ModelBundle.load(bundle_dir, facemodel=facemodel_path)
    sample = ShardedDataset(texture)[0]
    out = bundle.run(sample["image"][None], sample["landmarks_2d"][None])
    assert out.A_id.shape == (1, 128, 128, 3) and np.isfinite(out.A_id).all()
    assert out.albedo_map.shape == (1, 128, 128, 3)
