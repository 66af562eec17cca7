"""``facerecon average``: the weighted mean of networks fine-tuned from one start (BatchNorm frozen)."""

from __future__ import annotations

import pytest
import torch

from facerecon_core import paths
from facerecon_core.cli import main
from facerecon_core.inference.export import export_bundle
from facerecon_core.inference.torch_runtime import inference_config
from facerecon_core.model import Config, DualStreamNet
from facerecon_core.train.average import average_checkpoints
from facerecon_core.train.checkpoint import CheckpointError, checkpoint_state, load_checkpoint, save_checkpoint
from facerecon_core.train.from_bundle import checkpoint_from_bundle

CPU_YAML = paths.REPO_ROOT / "training" / "configs" / "cpu.yaml"


@pytest.fixture(scope="module")
def runs(facemodel, tmp_path_factory):
    """An inference-only bundle (BatchNorm folded), a run fine-tuned from it (every float weight moved, the
    folded statistics kept, as with --freeze-bn) and a checkpoint of the unfolded network it came from."""
    torch.manual_seed(0)
    config = Config.load(CPU_YAML)
    net = DualStreamNet(inference_config(config), facemodel).eval()
    root = tmp_path_factory.mktemp("average")
    unfolded = save_checkpoint(root / "unfolded.pt", checkpoint_state(net, config, facemodel.content_hash, "fusion"))
    bundle = root / "bundle"
    export_bundle(unfolded, bundle, facemodel, half=False, weights=False)
    start = checkpoint_from_bundle(bundle, facemodel).checkpoint
    tuned = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() and "running" not in k else v.clone()
             for k, v in start["model"].items()}
    run = save_checkpoint(root / "tuned.pt", {**start, "model": tuned, "stage": "geometry", "step": 500})
    return bundle, run, unfolded, start["model"], tuned


def test_weighted_mean_of_every_weight(runs, facemodel):
    bundle, run, _, start, tuned = runs
    state, report = average_checkpoints([bundle, run], [1, 3], facemodel)
    assert report.weights == (0.25, 0.75) and report.tensors == sum(v.is_floating_point() for v in start.values())
    assert 0.005 < report.distance < 0.02  # the 0.01 perturbation, RMS over the perturbed weights
    for key, value in state["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.25 * start[key] + 0.75 * tuned[key], atol=1e-6), key
        else:  # counters: the first input's
            assert torch.equal(value, start[key]), key
    assert state["step"] == 0 and state["optimizers"] == {} and state["facemodel_hash"] == facemodel.content_hash
    # one weight gives that input back; equal weights by default
    only, _ = average_checkpoints([bundle, run], [0, 1], facemodel)
    assert all(torch.allclose(only["model"][k], tuned[k]) for k in tuned)
    _, equal = average_checkpoints([run, bundle], None, facemodel)
    assert equal.weights == (0.5, 0.5)


def test_inputs_that_do_not_correspond_are_refused(runs, facemodel):
    bundle, run, unfolded, _, _ = runs
    with pytest.raises(CheckpointError, match="folded"):
        average_checkpoints([bundle, unfolded], None, facemodel)
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([run], None, facemodel)
    with pytest.raises(CheckpointError, match="2 weights for 3"):
        average_checkpoints([run, run, bundle], [1, 1], facemodel)
    with pytest.raises(CheckpointError, match="non-negative"):
        average_checkpoints([run, bundle], [1, -1], facemodel)
    other = DualStreamNet(inference_config(Config.load(CPU_YAML, ["model.geometry.psn_split=true"])), facemodel)
    split = save_checkpoint(run.parent / "split.pt", checkpoint_state(other, Config.load(
        CPU_YAML, ["model.geometry.psn_split=true"]), facemodel.content_hash))
    with pytest.raises(CheckpointError, match="another network"):
        average_checkpoints([unfolded, split], None, facemodel)


def test_cli_writes_a_checkpoint_that_exports(runs, facemodel_path, tmp_path, capsys):
    bundle, run, unfolded, _, _ = runs
    out, asset = tmp_path / "avg.pt", ["--facemodel", str(facemodel_path)]
    assert main(["average", "--checkpoint", str(bundle), str(run), "--out", str(out), *asset]) == 0
    assert "averaged" in capsys.readouterr().out and load_checkpoint(out)["stage"] == "fusion"
    assert main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "model"), *asset]) == 0
    assert (tmp_path / "model" / "geometry.onnx").is_file()
    # an existing output is kept unless --overwrite; inputs that do not correspond write nothing
    assert main(["average", "--checkpoint", str(bundle), str(run), "--out", str(out), *asset]) == 2
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    assert main(["average", "--checkpoint", str(bundle), str(unfolded), "--out", str(bad), *asset]) == 2
    assert "folded" in capsys.readouterr().err and not bad.exists()
