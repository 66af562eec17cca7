"""Training from an exported bundle: its network read back from the ONNX graphs (or its weights file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from facerecon_core import paths
from facerecon_core.cli import main
from facerecon_core.inference.export import export_bundle
from facerecon_core.inference.torch_runtime import GeometryGraph, TextureGraph, inference_config
from facerecon_core.model import Config, DualStreamNet
from facerecon_core.train.checkpoint import FORMAT, checkpoint_state, load_checkpoint
from facerecon_core.train.from_bundle import checkpoint_from_bundle, is_bundle
from facerecon_core.train.validate import validate

CPU_YAML = paths.REPO_ROOT / "training" / "configs" / "cpu.yaml"
SHIPPED_FORM = ["model.geometry.psn_split=true", "model.geometry.appearance_layers=3"]  # the bundled model's


@pytest.fixture(scope="module")
def source(facemodel, tmp_path_factory):
    """A network in the shipped model's form (split PSN, appearance layers), BatchNorm statistics and affine
    parameters perturbed so that folding them changes every convolution, and its checkpoint."""
    torch.manual_seed(0)
    config = Config.load(CPU_YAML, SHIPPED_FORM)
    net = DualStreamNet(inference_config(config), facemodel)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    net.eval()
    path = tmp_path_factory.mktemp("ckpt") / "fusion.pt"
    torch.save({"format": FORMAT, **checkpoint_state(net, config, facemodel.content_hash, "fusion", step=77)}, path)
    return net, config, path


@pytest.fixture(scope="module")
def inference_only(source, facemodel, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "half"
    export_bundle(source[2], out, facemodel, half=True, weights=False)
    return out


def _outputs(net: DualStreamNet, size: int = 128) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(2, size, size, 3, generator=gen)
    lms = size * (0.3 + 0.4 * torch.rand(2, 68, 2, generator=gen))
    with torch.no_grad():
        geometry = GeometryGraph(net.eval())(image)
        return [*geometry, *TextureGraph(net)(image, lms, geometry[2])]


def test_inference_only_bundle_gives_back_its_network(source, inference_only, facemodel, tmp_path):
    """The shipped form (float16 graphs, no weights file): every parameter comes back, the network equals the
    bundle's graphs (checked against onnxruntime) and the source network up to float16 storage, and
    re-exporting it gives the same graphs."""
    net, config, _ = source
    start = checkpoint_from_bundle(inference_only, facemodel)
    assert is_bundle(inference_only) and start.folded_batchnorm and start.max_abs_diff < 1e-3
    ckpt = start.checkpoint
    assert ckpt["stage"] == "fusion" and ckpt["step"] == 77 and ckpt["facemodel_hash"] == facemodel.content_hash
    assert Config.from_dict(ckpt["config"]) == config
    rebuilt = DualStreamNet(inference_config(config), facemodel)
    rebuilt.load_state_dict(ckpt["model"])
    for a, b in zip(_outputs(rebuilt), _outputs(net)):
        assert a.shape == b.shape
        assert a.numel() == 0 or (a - b).abs().max() < 0.1 and (a - b).abs().mean() < 0.01  # mm / SH / [0, 1]
    # layers without BatchNorm come back as stored: the float16 value of the source's weight
    for key in ("psn.app1.weight", "appearance.project.weight", "texture_net.srsm.to_alpha.weight"):
        assert torch.equal(ckpt["model"][key], net.state_dict()[key].half().float()), key
    bn = ckpt["model"]
    assert torch.equal(bn["encoder.backbone.0.1.weight"], torch.ones(32))  # the folded form
    assert torch.equal(bn["encoder.backbone.0.1.running_mean"], torch.zeros(32))

    saved = tmp_path / "rebuilt.pt"
    torch.save({"format": FORMAT, **ckpt}, saved)
    again = export_bundle(saved, tmp_path / "again", facemodel, half=True, weights=False).out
    for graph in ("geometry.onnx", "texture.onnx"):
        first, second = (sorted((i.name.split("__")[0], numpy_helper.to_array(i).astype(np.float32))
                                for i in onnx.load(str(b / graph)).graph.initializer if i.name.startswith("net."))
                         for b in (inference_only, again))
        assert [n for n, _ in first] == [n for n, _ in second]
        for (name, a), (_, b) in zip(first, second):
            np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-6, err_msg=name)


def test_bundle_with_weights_gives_them_exactly(source, facemodel, tmp_path):
    net, _, path = source
    out = export_bundle(path, tmp_path / "full", facemodel).out
    start = checkpoint_from_bundle(out, facemodel)
    assert not start.folded_batchnorm
    for key, value in net.state_dict().items():
        assert torch.equal(start.checkpoint["model"][key], value), key


@pytest.mark.slow
def test_training_and_validation_start_from_a_bundle(source, inference_only, asm_dataset, facemodel_path,
                                                     facemodel, tmp_path, capsys):
    """``--init BUNDLE`` runs a stage with BatchNorm frozen from exactly the bundle's network; a stage that
    trains BatchNorm statistics is refused (they are folded away); validate takes bundle folders."""
    def train(out: Path, *extra: str, form: list[str] = SHIPPED_FORM) -> int:
        args = ["train", "--stage", "geometry", "--config", str(CPU_YAML), "--data", str(asm_dataset), "--out",
                str(out), "--facemodel", str(facemodel_path), "--workers", "0", "--max-steps", "0",
                "--init", str(inference_only), *extra]
        for override in form:
            args += ["--set", override]
        return main(args)

    assert train(tmp_path / "other_form", "--freeze-bn", form=[]) == 2  # without the bundle's --set options
    assert "its weights do not fit this network" in capsys.readouterr().err
    assert train(tmp_path / "refused") == 2
    assert "BatchNorm folded into the convolutions" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "last.pt").exists()
    assert train(tmp_path / "frozen", "--freeze-bn") == 0
    state = load_checkpoint(tmp_path / "frozen" / "last.pt")["model"]
    expected = checkpoint_from_bundle(inference_only, facemodel).checkpoint["model"]
    for key, value in expected.items():
        assert torch.equal(state[key], value), key

    from_bundle, from_checkpoint = validate([inference_only, source[2]], [asm_dataset], "geometry", every=10,
                                            facemodel=facemodel_path)
    assert from_bundle.samples == from_checkpoint.samples == 4
    for name, value in from_checkpoint.losses.items():
        assert from_bundle.losses[name] == pytest.approx(value, rel=2e-2, abs=1e-3), name
