"""The three training stages of the paper (Sec. IV-B): geometry, texture, fusion.

Each stage owns its loss, optimisers (Adam, the config's learning rate and betas) and, for the
texture stage, the PatchGAN discriminator; the network is shared. A step uses the step
functions of :mod:`facerecon_core.model.losses`.
"""

from __future__ import annotations

import numpy as np
import torch

from facerecon_core.datasets.preview import asm_expression_rgb, asm_identity_rgb, draw_landmarks
from facerecon_core.model import losses as L
from facerecon_core.model.config import Config
from facerecon_core.model.network import DualStreamNet
from facerecon_core.model.texture import PatchDiscriminator
from facerecon_core.train.distributed import AveragedGradients

STAGES = ("geometry", "texture", "fusion")
REQUIRED_KEYS = {
    "geometry": {"image", "asm_id", "asm_exp", "angles", "translation", "sh", "albedo_coeff"},
    "texture": {"image", "landmarks_2d", "uv_albedo", "uv_texture"},
    "fusion": {"image", "landmarks_2d", "face_mask"},
}


def missing_keys(stage: str, dataset) -> set[str]:
    """The labels ``stage`` needs that the samples of ``dataset`` (a FaceDataset) lack (first sample checked)."""
    return REQUIRED_KEYS[stage] - set(dataset.parts[0][0])


class Stage:
    """One stage: ``step(batch)`` trains, ``evaluate(batch)`` measures, ``visualise(batch)`` draws."""

    name: str

    def __init__(self, net: DualStreamNet, config: Config, facemodel, world: int = 1, freeze_bn: bool = False):
        self.net, self.config, self.world, self.freeze_bn = net, config, world, freeze_bn
        self.discriminator: torch.nn.Module | None = None

    def adam(self, params, lr: float) -> torch.optim.Optimizer:
        return AveragedGradients(torch.optim.Adam(params, lr=lr, betas=tuple(self.config.train.betas)), self.world)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_mode(self) -> None:
        self.net.train()
        if self.freeze_bn:
            L.freeze_batchnorm(self.net)

    def step(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def visualise(self, batch: dict) -> np.ndarray:
        raise NotImplementedError


class GeometryStage(Stage):
    name = "geometry"

    def __init__(self, net, config, facemodel, world=1, freeze_bn=False):
        super().__init__(net, config, facemodel, world, freeze_bn)
        g = config.model.geometry
        self.loss = L.GeometryLoss(config.losses.geometry, facemodel, g.asm_size, g.expression_asm)
        self.frozen = freeze(net, config.train.geometry_frozen)
        modules = (net.encoder, net.appearance, net.decoder_id, net.decoder_exp, net.psn)
        params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
        self.optimizer = self.adam(params, config.train.lr_geometry)

    def optimizers(self):
        return {"geometry": self.optimizer}

    def train_mode(self) -> None:
        super().train_mode()
        for module in self.frozen:  # their BatchNorm statistics stay too
            L.freeze_batchnorm(module)

    def step(self, batch):
        self.train_mode()
        return L.geometry_step(self.net, self.loss, batch, self.optimizer)

    @torch.no_grad()
    def evaluate(self, batch):
        self.net.eval()
        out = self.net.geometry(batch["image"])
        vertices = self.net.asm_to_vertices(out.I_g)
        terms = {k: float(v) for k, v in self.loss(out, batch, vertices).items()}
        truth = self.net.asm_to_vertices(batch["asm_id"] + batch["asm_exp"])
        terms["vertex_mm"] = float((vertices - truth).norm(dim=-1).mean())
        return terms

    @torch.no_grad()
    def visualise(self, batch):
        self.net.eval()
        out = self.net.geometry(batch["image"])
        landmarks = _projected_landmarks(self.net, out)
        rows = []
        for i in range(min(4, len(batch["image"]))):
            image = (batch["image"][i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            tiles = [draw_landmarks(image, landmarks[i]),
                     asm_identity_rgb(out.A_id[i].permute(1, 2, 0).numpy()),
                     asm_identity_rgb(batch["asm_id"][i].permute(1, 2, 0).numpy()),
                     asm_expression_rgb(out.A_exp[i].permute(1, 2, 0).numpy()),
                     asm_expression_rgb(batch["asm_exp"][i].permute(1, 2, 0).numpy())]
            rows.append(np.concatenate([_fit(t, image.shape[0]) for t in tiles], axis=1))
        return np.concatenate(rows, axis=0)


class TextureStage(Stage):
    name = "texture"

    def __init__(self, net, config, facemodel, world=1, freeze_bn=False):
        super().__init__(net, config, facemodel, world, freeze_bn)
        self.loss = L.TextureLoss(config.losses.texture)
        self.discriminator = PatchDiscriminator(config.model.texture.disc_widths)
        self.opt_g = self.adam(net.texture_net.parameters(), config.train.lr_texture)
        self.opt_d = self.adam(self.discriminator.parameters(), config.train.lr_texture)

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def step(self, batch):
        self.train_mode()
        self.discriminator.train()
        return L.texture_step(self.net, self.discriminator, self.loss, batch, self.opt_g, self.opt_d)

    @torch.no_grad()
    def evaluate(self, batch):
        self.net.eval()
        i_a, _ = self.net.texture(batch["uv_albedo"], batch["image"], batch["landmarks_2d"])
        terms = {k: float(v) for k, v in self.loss.content(i_a, batch).items()}
        w = self.config.losses.texture
        return {**terms, "total": w.rec * terms["rec"] + w.con * terms["con"]}

    @torch.no_grad()
    def visualise(self, batch):
        self.net.eval()
        i_a, _ = self.net.texture(batch["uv_albedo"], batch["image"], batch["landmarks_2d"])
        rows = []
        for i in range(min(4, len(batch["image"]))):
            tiles = [batch["image"][i], batch["uv_albedo"][i], i_a[i], batch["uv_texture"][i]]
            size = batch["image"].shape[-1]
            rows.append(np.concatenate([_fit(_rgb(t), size) for t in tiles], axis=1))
        return np.concatenate(rows, axis=0)


class FusionStage(Stage):
    name = "fusion"

    def __init__(self, net, config, facemodel, world=1, freeze_bn=True):
        super().__init__(net, config, facemodel, world, freeze_bn)
        self.loss = L.FusionLoss(config.losses.fusion, config.model.input_size)
        freeze(net, config.train.fusion_frozen)
        self.optimizer = self.adam([p for p in net.parameters() if p.requires_grad], config.train.lr_fusion)

    def optimizers(self):
        return {"fusion": self.optimizer}

    def step(self, batch):
        return L.fusion_step(self.net, self.loss, batch, self.optimizer, freeze_bn=self.freeze_bn)

    @torch.no_grad()
    def evaluate(self, batch):
        self.net.eval()
        out = self.net(batch["image"], batch["landmarks_2d"], render=True)
        return {k: float(v) for k, v in self.loss(out, batch).items()}

    @torch.no_grad()
    def visualise(self, batch):
        self.net.eval()
        out = self.net(batch["image"], batch["landmarks_2d"], render=True)
        composite = torch.lerp(batch["image"], out.I_R, out.render_mask)
        rows = []
        for i in range(min(4, len(batch["image"]))):
            image = _rgb(batch["image"][i])
            tiles = [draw_landmarks(image, out.landmarks_2d[i].numpy()), _rgb(out.I_R[i]), _rgb(composite[i])]
            rows.append(np.concatenate(tiles, axis=1))
        return np.concatenate(rows, axis=0)


def make_stage(name: str, net: DualStreamNet, config: Config, facemodel, world: int = 1,
               freeze_bn: bool | None = None) -> Stage:
    cls = {"geometry": GeometryStage, "texture": TextureStage, "fusion": FusionStage}[name]
    return cls(net, config, facemodel, world, freeze_bn=name == "fusion" if freeze_bn is None else freeze_bn)


def freeze(net: DualStreamNet, names: list[str]) -> list[torch.nn.Module]:
    """Keep these sub-networks (``config.FREEZABLE``) fixed: no gradient, so Adam leaves them unchanged.
    Returns the whole sub-networks frozen (for their BatchNorm statistics)."""
    whole = []
    for name in names:
        if name == "pose":
            net.psn.freeze_pose()
        elif name == "light":
            net.psn.freeze_light()
        elif (module := getattr(net, name)) is not None:
            module.requires_grad_(False)
            whole.append(module)
    return whole


def _projected_landmarks(net: DualStreamNet, out) -> np.ndarray:
    landmarks = net.asm_to_vertices(out.I_g)[:, net.landmark_index]
    return net.project(net.to_camera(landmarks, out.params)).numpy()


def _rgb(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _fit(tile: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return tile if tile.shape[0] == size else cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
