"""One optimiser step of each training stage lowers that stage's loss on a fixed tiny batch (cpu.yaml)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from facerecon_core import paths
from facerecon_core.model import Config, DualStreamNet
from facerecon_core.model.geometry import REFERENCE_DEPTH_MM
from facerecon_core.model.losses import (FusionLoss, GeometryLoss, TextureLoss, fusion_step, geometry_step,
                                         texture_step)
from facerecon_core.model.texture import PatchDiscriminator
from facerecon_core.pose import CropCamera, to_camera


@pytest.fixture(scope="module")
def config() -> Config:
    return Config.load(paths.REPO_ROOT / "training" / "configs" / "cpu.yaml")


@pytest.fixture(scope="module")
def batch(config, facemodel) -> dict[str, torch.Tensor]:
    """Two rendered mean faces with every key the datasets yield."""
    from facerecon_core.render import render_mesh

    s, g, t = config.model.input_size, config.model.geometry.asm_size, config.model.texture.tex_size
    cam = CropCamera(s)
    angles = np.array([[0.05, 0.3, 0.0], [-0.1, -0.2, 0.1]], np.float32)
    translation = np.array([[5.0, -3.0, -REFERENCE_DEPTH_MM * 1.1], [-4.0, 2.0, -REFERENCE_DEPTH_MM]], np.float32)
    verts = np.stack([to_camera(facemodel.mean_shape, a, tr) for a, tr in zip(angles, translation)]).astype(np.float32)
    sh = np.zeros((2, 3, 9), np.float32)
    sh[:, :, 0], sh[:, :, 2] = 0.8, 0.3
    albedo = torch.from_numpy(facemodel.albedo_mean)[None].expand(2, -1, -1).contiguous()
    with torch.no_grad():
        rendered = render_mesh(torch.from_numpy(verts), torch.from_numpy(facemodel.triangles), cam.render_camera(),
                               vertex_colors=albedo, sh=torch.from_numpy(sh), background=torch.full((2, 3, s, s), 0.3))
    uv_albedo = torch.from_numpy(facemodel.to_uv_map(facemodel.albedo_mean, t)).permute(2, 0, 1)
    gen = torch.Generator().manual_seed(0)
    return {
        "image": rendered.image.clamp(0, 1), "face_mask": rendered.mask,
        "landmarks_2d": torch.from_numpy(cam.project(verts[:, facemodel.landmark_indices]).astype(np.float32)),
        "asm_id": torch.from_numpy(facemodel.to_uv_map(facemodel.mean_shape, g)).permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
        "asm_exp": torch.zeros(2, 3, g, g), "albedo_coeff": torch.zeros(2, facemodel.n_albedo),
        "sh": torch.from_numpy(sh), "angles": torch.from_numpy(angles), "translation": torch.from_numpy(translation),
        "uv_albedo": uv_albedo[None].repeat(2, 1, 1, 1),
        "uv_texture": (uv_albedo * 0.9 + 0.05 * torch.rand(2, 3, t, t, generator=gen)).clamp(0, 1),
        "uv_visibility": torch.ones(2, 1, t, t),
    }


def _adam(params, lr, config):
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, betas=tuple(config.train.betas))


def test_geometry_step_lowers_the_geometry_loss(config, facemodel, batch):
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel).train()
    loss = GeometryLoss(config.losses.geometry, facemodel, config.model.geometry.asm_size)

    def evaluate():
        with torch.no_grad():
            out = net.geometry(batch["image"])
            return loss(out, batch, net.asm_to_vertices(out.I_g))["total"].item()

    before = evaluate()
    geometry_step(net, loss, batch, _adam(net.parameters(), config.train.lr_geometry, config))
    after = evaluate()
    assert after < before, (before, after)


def test_same_person_term_pulls_two_photos_identities_together(config, facemodel, batch):
    """L_same (our extension): with a weight and a valid pair, the geometry step reports it and a few steps on the
    same pair bring the two photos' identity maps closer; without a weight, or with no valid pair, it is absent."""
    import dataclasses

    from facerecon_core.model.losses import same_person_loss

    a = torch.randn(2, 3, 8, 8)
    mask = torch.ones(8, 8)
    assert same_person_loss(a, a, torch.ones(2), mask) == 0
    b = a.clone()
    b[1] += 3.0
    assert same_person_loss(a, b, torch.tensor([1.0, 0.0]), mask) == 0  # the unequal pair is not valid
    assert same_person_loss(a, b, torch.tensor([[0.0], [1.0]]), mask) > 0  # stored as (B, 1): still per pair

    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel).train()
    weights = dataclasses.replace(config.losses.geometry, same_person=5.0)
    loss = GeometryLoss(weights, facemodel, config.model.geometry.asm_size)
    paired = {**batch, "image_pair": batch["image"].flip(-1) * 0.8, "pair_valid": torch.tensor([1.0, 1.0])}

    def gap():
        with torch.no_grad():
            return same_person_loss(net.geometry(paired["image"]).A_id, net.geometry(paired["image_pair"]).A_id,
                                    paired["pair_valid"], loss.weight_mask).item()

    before = gap()
    optimizer = _adam(net.parameters(), config.train.lr_geometry, config)
    for _ in range(3):
        terms = geometry_step(net, loss, paired, optimizer)
    assert "same" in terms and gap() < before
    assert "same" not in geometry_step(net, loss, {**paired, "pair_valid": torch.zeros(2)}, optimizer)
    plain = GeometryLoss(config.losses.geometry, facemodel, config.model.geometry.asm_size)
    assert "same" not in geometry_step(net, plain, paired, optimizer)


def test_texture_step_lowers_the_texture_losses(config, facemodel, batch):
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel).train()
    disc = PatchDiscriminator(config.model.texture.disc_widths).train()
    loss = TextureLoss(config.losses.texture)
    w = config.losses.texture

    def evaluate(d):
        with torch.no_grad():
            i_a, _ = net.texture(batch["uv_albedo"], batch["image"], batch["landmarks_2d"])
            g = loss.generator(i_a, batch, d)
            return w.rec * g["rec"].item() + w.con * g["con"].item(), g["total"].item(), loss.discriminator(i_a, batch, d).item()

    frozen_disc = copy.deepcopy(disc)
    content0, total0, d0 = evaluate(frozen_disc)
    lr = config.train.lr_texture
    texture_step(net, disc, loss, batch, _adam(net.texture_net.parameters(), lr, config), _adam(disc.parameters(), lr, config))
    content1, total1, _ = evaluate(frozen_disc)  # generator judged by the discriminator it stepped against
    assert content1 < content0 and total1 < total0, (content0, content1, total0, total1)
    assert evaluate(disc)[2] < d0  # the discriminator improved too


def test_fusion_step_lowers_the_fusion_loss(config, facemodel, batch):
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel).eval()  # fusion fine-tunes with frozen BN statistics
    loss = FusionLoss(config.losses.fusion, config.model.input_size)

    def evaluate():
        with torch.no_grad():
            return loss(net(batch["image"], batch["landmarks_2d"], render=True), batch)

    before = evaluate()
    assert before["ali"] > 0 and before["pix"] > 0
    # From a random init L_id (weight 2) is very rough: one Adam step at lr_fusion = 5e-5 can overshoot,
    # so this overfit check uses 1e-5 (the stage is meant to start from trained streams).
    opt = _adam(net.parameters(), 1e-5, config)
    terms = fusion_step(net, loss, batch, opt)
    assert np.isfinite(terms["total"])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decoder_id.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.texture_net.parameters())
    after = evaluate()
    assert after["total"] < before["total"], (before, after)


def test_fusion_stage_keeps_the_frozen_subnetworks(config, facemodel, batch):
    from facerecon_core.model.config import ConfigError
    from facerecon_core.train.stages import make_stage

    assert config.train.fusion_frozen == ["encoder", "decoder_id", "decoder_exp", "pose"]  # cpu.yaml
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel)
    before = copy.deepcopy(net.state_dict())
    stage = make_stage("fusion", net, config, facemodel)
    assert np.isfinite(stage.step(batch)["total"])
    after = net.state_dict()
    changed = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"psn", "texture_net"}, changed
    with pytest.raises(ConfigError, match="unknown sub-network.*decoder"):
        Config.from_dict({"train": {"fusion_frozen": ["decoder"]}})
    with pytest.raises(ConfigError, match="geometry_frozen: unknown sub-network.*lights"):
        Config.from_dict({"train": {"geometry_frozen": ["lights"]}})


@pytest.mark.parametrize("split,appearance", [(False, 0), (True, 0), (True, 2)],
                         ids=["shared_psn", "split_psn", "split_psn_appearance_layers"])
def test_fusion_stage_keeps_the_pose_while_the_light_learns(config, facemodel, batch, split, appearance):
    from facerecon_core.train.stages import make_stage

    assert "pose" in config.train.fusion_frozen and "encoder" in config.train.fusion_frozen  # cpu.yaml
    config = copy.deepcopy(config)
    config.model.geometry.psn_split = split
    config.model.geometry.appearance_layers = appearance
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel)
    stage = make_stage("fusion", net, config, facemodel)
    net.eval()
    with torch.no_grad():
        before = net.geometry(batch["image"]).params
    state = copy.deepcopy(net.state_dict())
    for _ in range(2):  # the second step has Adam moments: the pose rows still stay put
        assert np.isfinite(stage.step(batch)["total"])
    net.eval()
    with torch.no_grad():
        after = net.geometry(batch["image"]).params
    assert torch.equal(before.p_h, after.p_h)
    assert not torch.equal(before.p_l, after.p_l)
    changed = {name.split(".")[0] for name in state if not torch.equal(state[name], net.state_dict()[name])}
    assert changed == {"psn", "texture_net"} | ({"appearance"} if appearance else set()), changed


@pytest.mark.parametrize("split", [False, True], ids=["shared_psn", "split_psn_appearance_layers"])
def test_geometry_stage_keeps_what_fusion_taught_when_frozen(config, facemodel, batch, split):
    """``train.geometry_frozen: [appearance, light]``: a geometry run from a fusion-trained model trains the
    encoder, ASM decoders and pose, and leaves the appearance layers (and their BatchNorm statistics) and
    the PSN's light and albedo layers (a shared PSN: their rows) as they were."""
    from facerecon_core.model.geometry import SH_DIM
    from facerecon_core.train.stages import make_stage

    config = copy.deepcopy(config)
    config.model.geometry.psn_split = split
    config.model.geometry.appearance_layers = 2 if split else 0
    config.train.geometry_frozen = ["appearance", "light"]
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel)
    state = copy.deepcopy(net.state_dict())
    stage = make_stage("geometry", net, config, facemodel)
    for _ in range(2):  # the second step has Adam moments
        assert np.isfinite(stage.step(batch)["total"])
    now = net.state_dict()
    changed = {name for name in state if not torch.equal(state[name], now[name])}
    assert {name.split(".")[0] for name in changed} == {"encoder", "decoder_id", "decoder_exp", "psn"}, changed
    k = facemodel.n_albedo + SH_DIM
    if split:
        assert not any(name.startswith(("psn.app1", "psn.app2")) for name in changed), changed
        assert "psn.fc2.weight" in changed
    else:
        assert torch.equal(state["psn.fc2.weight"][:k], now["psn.fc2.weight"][:k])
        assert not torch.equal(state["psn.fc2.weight"][k:], now["psn.fc2.weight"][k:])
