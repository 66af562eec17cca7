"""Configs, shapes and pretrained weights of facerecon_core.model."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from facerecon_core import paths
from facerecon_core.model import Config, ConfigError, DualStreamNet, ExportWrapper
from facerecon_core.model.backbones import (MobileNetV2, MultiTaskEncoder, VGG16Features, WeightsError,
                                            load_mobilenet_v2, mobilenet_v2_weights_path)
from facerecon_core.model.texture import PatchDiscriminator, landmark_heatmaps

CONFIGS = paths.REPO_ROOT / "training" / "configs"


@pytest.fixture(scope="module")
def cpu_config() -> Config:
    return Config.load(CONFIGS / "cpu.yaml")


@pytest.fixture(scope="module")
def paper_config() -> Config:
    return Config.load(CONFIGS / "paper.yaml")


def test_configs_load_with_the_papers_values(cpu_config, paper_config):
    for cfg in (cpu_config, paper_config):
        g, t, f = cfg.losses.geometry, cfg.losses.texture, cfg.losses.fusion
        assert (g.p, g.asm, g.sym, g.reg, g.tau) == (0.5, 1.0, 0.5, 1e-3, 5e-2)
        assert (t.rec, t.con, t.adv) == (0.1, 3.0, 0.2)
        assert (f.pix, f.id, f.ali) == (0.1, 2.0, 1e-2)
        assert (cfg.train.lr_geometry, cfg.train.lr_texture, cfg.train.lr_fusion) == (2e-4, 1e-4, 5e-5)
        assert cfg.train.batch_size == 8 and cfg.model.texture.n_regions == 16
    assert paper_config.model.encoder.backbone == "vgg16" and paper_config.model.input_size == 256
    assert cpu_config.model.encoder.backbone == "mobilenet_v2" and cpu_config.model.geometry.asm_size == 128


def test_config_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ConfigError, match="unknown key"):
        Config.from_dict({"model": {"encoder": {"backbon": "vgg16"}}})
    with pytest.raises(ConfigError, match="expected an integer"):
        Config.from_dict({"model": {"input_size": "big"}})
    assert Config.from_dict({"train": {"lr_fusion": "5e-5"}}).train.lr_fusion == 5e-5  # YAML 1.1 quirk


def test_config_overrides_change_single_values():
    config = Config.load(CONFIGS / "cpu.yaml", ["model.geometry.psn_split=true", "train.lr_fusion=1e-4",
                                                 "losses.fusion.id=3"])
    assert config.model.geometry.psn_split is True and config.model.geometry.psn_hidden == 256
    assert config.train.lr_fusion == 1e-4 and config.losses.fusion.id == 3.0 and config.losses.fusion.pix == 0.1
    with pytest.raises(ConfigError, match="cpu.yaml with model.geometry.psn_splt=true: .*unknown key"):
        Config.load(CONFIGS / "cpu.yaml", ["model.geometry.psn_splt=true"])
    for bad in ("model.geometry.psn_split", "=1", "model..psn_split=1", "model.input_size.x=1"):
        with pytest.raises(ConfigError, match="override"):
            Config.load(CONFIGS / "cpu.yaml", [bad])


def test_mobilenet_v2_imagenet_weights_load_strictly():
    path = mobilenet_v2_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = MobileNetV2()
    assert set(net.state_dict()) == set(state)
    net.load_state_dict(state, strict=True)
    net = load_mobilenet_v2().eval()
    # ImageNet features: a constant grey image and a textured one give different class scores
    with torch.no_grad():
        logits = net(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_mobilenet_v2(path=tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="not found"):
        MultiTaskEncoder("vgg16", weights=tmp_path / "vgg_face.pth")


def test_vgg16_loads_torchvision_style_state_dict(tmp_path):
    src = VGG16Features()
    state = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored
    torch.save(state, tmp_path / "vgg.pth")
    enc = MultiTaskEncoder("vgg16", weights=tmp_path / "vgg.pth")
    assert torch.equal(enc.backbone[0].weight, src.features[0].weight)


def test_heatmaps_peak_at_landmarks():
    lm = torch.tensor([[[10.0, 20.0], [63.0, 0.0]]])
    heat = landmark_heatmaps(lm, crop_size=64, size=64, sigma=1.0)
    assert heat.shape == (1, 2, 64, 64)
    assert heat[0, 0, 20, 10] == 1.0 and heat[0, 1, 0, 63] == 1.0
    assert heat[0, 0].argmax() == 20 * 64 + 10


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cpu_config_shapes(cpu_config, facemodel):
    net = DualStreamNet(cpu_config, facemodel).eval()
    s, g, t = 128, 128, 128
    image, lms = torch.rand(2, 3, s, s), torch.rand(2, 68, 2) * s
    with torch.no_grad():
        out = net(image, lms, render=True)
    assert out.A_id.shape == out.A_exp.shape == out.I_g.shape == (2, 3, g, g)
    assert (out.A_id - net.decoder_id.base).abs().max() <= 50 and out.A_exp.abs().max() <= 40
    assert out.params.p_t.shape == (2, facemodel.n_albedo)
    assert out.params.p_l.shape == (2, 3, 9) and out.params.p_h.shape == (2, 6)
    assert out.I_u.shape == out.I_a.shape == (2, 3, t, t)
    assert 0 <= out.I_a.min() and out.I_a.max() <= 1
    assert out.regions.shape == (2, 16, 16, 16)
    assert torch.allclose(out.regions.sum(1), torch.ones(2, 16, 16), atol=1e-5)
    assert out.vertices.shape == out.vertices_cam.shape == (2, facemodel.n_vertices, 3)
    assert out.I_R.shape == (2, 3, s, s) and out.render_mask.shape == (2, 1, s, s)
    assert out.landmarks_2d.shape == (2, 68, 2)
    assert out.render_mask.sum() > 0  # the initial pose puts a face in view
    assert _count(net) < 12e6
    disc = PatchDiscriminator(cpu_config.model.texture.disc_widths)
    assert disc(out.I_a).shape[:2] == (2, 1)


def test_paper_config_builds_at_full_size(paper_config, facemodel):
    net = DualStreamNet(paper_config, facemodel).eval()
    assert net.decoder_id.layers[-1][1].out_channels == 3 and len(net.decoder_id.layers) == 8
    assert net.albedo_mean_map.shape == (3, 256, 256)
    assert 30e6 < _count(net) < 60e6
    with torch.no_grad():
        out = net(torch.rand(1, 3, 256, 256), torch.rand(1, 68, 2) * 256)
    assert out.A_id.shape == out.A_exp.shape == (1, 3, 256, 256)
    assert out.I_a.shape == (1, 3, 256, 256) and out.regions.shape == (1, 16, 32, 32)


def test_a_shared_psn_loads_into_a_split_one_unchanged():
    from facerecon_core.model.geometry import ParametricSubnet

    torch.manual_seed(0)
    shared, split = ParametricSubnet(64, 5, 32), ParametricSubnet(64, 5, 32, split=True)
    with torch.no_grad():
        for p in shared.parameters():
            p.normal_()
    split.load_state_dict(shared.state_dict())
    f_l = torch.randn(3, 64)
    for a, b in zip(shared(f_l), split(f_l), strict=True):
        torch.testing.assert_close(a, b)
    assert split.fc2.out_features == 6 and split.app2.out_features == 5 + 27
    split.app1.weight.data.add_(1.0)  # the layers are copies, not shared tensors
    assert not torch.equal(split.app1.weight, split.fc1.weight)
    again = ParametricSubnet(64, 5, 32, split=True)
    again.load_state_dict(split.state_dict())  # a split checkpoint loads as it is
    assert torch.equal(again.app1.weight, split.app1.weight)


def test_a_net_without_appearance_layers_loads_into_one_with_them_unchanged(facemodel):
    config = Config.load(CONFIGS / "cpu.yaml", ["model.geometry.psn_split=true", "model.encoder.pretrained=false"])
    torch.manual_seed(0)
    plain = DualStreamNet(config, facemodel).eval()
    with_copy = DualStreamNet(Config.load(CONFIGS / "cpu.yaml", [
        "model.geometry.psn_split=true", "model.encoder.pretrained=false",
        "model.geometry.appearance_layers=3"]), facemodel).eval()
    with_copy.load_state_dict(plain.state_dict())  # the copy is made from the encoder's last 3 layers
    image = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        a, b = plain.geometry(image), with_copy.geometry(image)
    for x, y in ((a.params.p_l, b.params.p_l), (a.params.p_h, b.params.p_h), (a.A_id, b.A_id)):
        torch.testing.assert_close(x, y)
    assert with_copy.appearance.n_layers == 3 and len(with_copy.appearance.layers) == 3
    with torch.no_grad():  # its own weights, not the encoder's: changing them moves the light only
        next(with_copy.appearance.project.parameters()).add_(0.1)
        c = with_copy.geometry(image)
    assert torch.equal(c.params.p_h, b.params.p_h) and not torch.allclose(c.params.p_l, b.params.p_l)
    again = DualStreamNet(with_copy.config, facemodel).eval()
    again.load_state_dict(with_copy.state_dict())  # a checkpoint with the copy loads as it is
    with torch.no_grad():
        torch.testing.assert_close(again.geometry(image).params.p_l, c.params.p_l)
    with pytest.raises(ConfigError, match="appearance_layers needs model.geometry.psn_split"):
        Config.load(CONFIGS / "cpu.yaml", ["model.geometry.appearance_layers=2"])


def test_albedo_map_handles_any_number_of_components(cpu_config, facemodel):
    net = DualStreamNet(cpu_config, facemodel)
    k = facemodel.n_albedo
    i_u = net.albedo_map(torch.zeros(2, k))
    assert torch.allclose(i_u, net.albedo_mean_map.expand(2, -1, -1, -1))


def test_onnx_export_of_the_inference_path(cpu_config, facemodel, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = DualStreamNet(cpu_config, facemodel).eval()
    image, lms = torch.rand(1, 3, 128, 128), torch.rand(1, 68, 2) * 128
    path = tmp_path / "net.onnx"
    torch.onnx.export(ExportWrapper(net), (image, lms), str(path), opset_version=17, dynamo=False,
                      input_names=["image", "landmarks_2d"],
                      output_names=["A_id", "A_exp", "p_t", "p_l", "p_h", "I_a"])
    onnx.checker.check_model(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": image.numpy(), "landmarks_2d": lms.numpy()})
    with torch.no_grad():
        want = net.export_forward(image, lms)
    assert not net.training
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        if g.size:  # p_t is empty while the face model has no albedo basis
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-3, atol=1e-2)


def test_without_the_expression_asm_one_map_is_the_whole_shape(facemodel):
    """The ablation of Sec. IV-E.1: no D_exp, A_exp ≡ 0, L_asm on the sum, no L_sym."""
    import torch

    from facerecon_core import paths
    from facerecon_core.model.losses import GeometryLoss

    config = Config.load(paths.REPO_ROOT / "training" / "configs" / "ablations" / "no_expression_asm.yaml")
    net = DualStreamNet(config, facemodel).eval()
    assert net.decoder_exp is None
    out = net.geometry(torch.rand(1, 3, 128, 128))
    assert torch.count_nonzero(out.A_exp) == 0
    loss = GeometryLoss(config.losses.geometry, facemodel, 128, expression_asm=False)
    batch = {"asm_id": out.A_id.detach() * 0.5, "asm_exp": out.A_id.detach() * 0.5, "angles": torch.zeros(1, 3),
             "translation": torch.tensor([[0.0, 0.0, -906.0]]), "sh": torch.zeros(1, 3, 9),
             "albedo_coeff": torch.zeros(1, facemodel.n_albedo)}
    terms = loss(out, batch, net.asm_to_vertices(out.I_g))
    assert float(terms["asm"]) < 1e-10 and float(terms["sym"]) == 0.0
