"""``DualStreamNet``: the full dual-stream network (geometry stream, texture stream, fusion module).

Stages can run separately: :meth:`DualStreamNet.geometry` (MTE + ADs + PSN), :meth:`DualStreamNet.texture`
(G_t from any I_u), :meth:`DualStreamNet.fuse` (ASMs + albedo + SH + pose → rendered I_R and landmarks).
``forward(image, landmarks_2d)`` runs both streams; ``render=True`` adds the fusion module.
The non-rendering paths have no data-dependent Python control flow (ONNX-exportable, see
:meth:`DualStreamNet.export_forward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facerecon_core.facemodel import FaceModel
from facerecon_core.model.backbones import AppearanceEncoder, MultiTaskEncoder
from facerecon_core.model.config import Config, ModelConfig
from facerecon_core.model.geometry import AttributeDecoder, ParametricSubnet, decode_pose
from facerecon_core.model.texture import TextureGenerator
from facerecon_core.pose import CropCamera


@dataclass
class Params:
    """PSN output P = {p_t, p_l, p_h}."""

    p_t: torch.Tensor  # [B, K_alb] albedo coefficients (standard deviations)
    p_l: torch.Tensor  # [B, 3, 9] SH per colour channel
    p_h: torch.Tensor  # [B, 6] pose (see geometry.encode_pose)

    def pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(angles [B, 3] rad, translation [B, 3] mm)."""
        return decode_pose(self.p_h)


@dataclass
class Output:
    A_id: torch.Tensor  # [B, 3, Hg, Wg] mm, canonical model frame
    A_exp: torch.Tensor  # [B, 3, Hg, Wg] mm
    params: Params
    I_u: torch.Tensor | None = None  # [B, 3, T, T] 3DMM albedo map from p_t
    I_a: torch.Tensor | None = None  # [B, 3, T, T] synthesised albedo in [0, 1]
    regions: torch.Tensor | None = None  # [B, n, h, w] shared semantic regions X_s
    vertices: torch.Tensor | None = None  # [B, V, 3] model frame (fusion)
    vertices_cam: torch.Tensor | None = None  # [B, V, 3] camera space
    I_R: torch.Tensor | None = None  # [B, 3, S, S] rendered face (black background)
    render_mask: torch.Tensor | None = None  # [B, 1, S, S]
    landmarks_2d: torch.Tensor | None = None  # [B, 68, 2] projected landmark vertices, crop px

    @property
    def I_g(self) -> torch.Tensor:
        return self.A_id + self.A_exp


class DualStreamNet(nn.Module):
    def __init__(self, config: Config | ModelConfig, facemodel: FaceModel) -> None:
        super().__init__()
        cfg = config.model if isinstance(config, Config) else config
        self.config = cfg
        g, t = cfg.geometry, cfg.texture
        self.input_size = cfg.input_size
        self.encoder = MultiTaskEncoder(cfg.encoder.backbone, cfg.encoder.latent_dim, cfg.encoder.pretrained,
                                        cfg.encoder.weights)
        d = cfg.encoder.latent_dim
        mean_shape_map = torch.from_numpy(facemodel.to_uv_map(facemodel.mean_shape, g.asm_size)).permute(2, 0, 1)
        self.decoder_id = AttributeDecoder(d, g.asm_size, g.decoder_widths, g.id_scale_mm, mean_shape_map)
        self.decoder_exp = (AttributeDecoder(d, g.asm_size, g.decoder_widths, g.exp_scale_mm) if g.expression_asm
                            else None)
        self.appearance = AppearanceEncoder(self.encoder, g.appearance_layers) if g.appearance_layers else None
        self.psn = ParametricSubnet(d, facemodel.n_albedo, g.psn_hidden, g.psn_split)
        self.texture_net = TextureGenerator(t.tex_size, cfg.input_size, t.widths, t.n_regions, t.k_init,
                                            t.landmark_sigma)
        # 3DMM albedo in UV (I_u = mean + Σ p_t,k basis_k), channels-first.
        mean_map = facemodel.to_uv_map(facemodel.albedo_mean, t.tex_size)
        basis = facemodel.albedo_basis
        basis_map = (facemodel.to_uv_map(basis, t.tex_size) if len(basis)
                     else np.zeros((0, t.tex_size, t.tex_size, 3), np.float32))
        self.register_buffer("albedo_mean_map", torch.from_numpy(mean_map).permute(2, 0, 1).contiguous(),
                             persistent=False)
        self.register_buffer("albedo_basis_map", torch.from_numpy(basis_map).permute(0, 3, 1, 2).contiguous(),
                             persistent=False)
        # Fusion: topology, vertex UVs, landmarks, camera.
        self.register_buffer("vertex_uv", torch.from_numpy(facemodel.uv.astype(np.float32)), persistent=False)
        self.register_buffer("triangles", torch.from_numpy(facemodel.triangles.astype(np.int32)), persistent=False)
        self.register_buffer("landmark_index", torch.from_numpy(facemodel.landmark_indices.astype(np.int64)),
                             persistent=False)
        self.camera = CropCamera(cfg.input_size)

    # -------------------------------------------------------------------------- geometry stream
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """E_M: image [B, 3, S, S] in [0, 1] → f_L [B, 512] (eq. 1)."""
        return self.encoder(image)

    def decode_asm(self, f_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_id, A_exp) [B, 3, G, G] in mm (eq. 2); A_exp ≡ 0 without the expression ASM."""
        a_id = self.decoder_id(f_l)
        return a_id, self.decoder_exp(f_l) if self.decoder_exp is not None else torch.zeros_like(a_id)

    def predict_params(self, f_l: torch.Tensor, f_a: torch.Tensor | None = None) -> Params:
        """P from f_L (and the appearance latent f_a, which the albedo and light read when given)."""
        return Params(*self.psn(f_l, f_a))

    def geometry(self, image: torch.Tensor) -> Output:
        """Geometry stream only: A_id, A_exp and P."""
        if self.appearance is None:
            f_l, f_a = self.encode(image), None
        else:
            f_l, tap = self.encoder.forward_tapped(image, self.appearance.n_layers)
            f_a = self.appearance(tap)
        a_id, a_exp = self.decode_asm(f_l)
        return Output(a_id, a_exp, self.predict_params(f_l, f_a))

    # --------------------------------------------------------------------------- texture stream
    def albedo_map(self, p_t: torch.Tensor) -> torch.Tensor:
        """I_u [B, 3, T, T] = albedo mean map + Σ_k p_t,k basis map_k (works for K_alb = 0)."""
        return self.albedo_mean_map + torch.einsum("bk,kchw->bchw", p_t, self.albedo_basis_map)

    def texture(self, i_u: torch.Tensor, image: torch.Tensor, landmarks_2d: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """G_t (eq. 12): (I_a [B, 3, T, T] in [0, 1], regions X_s)."""
        return self.texture_net(i_u, image, landmarks_2d)

    # ---------------------------------------------------------------------------- fusion module
    def asm_to_vertices(self, i_g: torch.Tensor) -> torch.Tensor:
        """Sample a spatial map [B, 3, G, G] at the vertex UVs → vertices [B, V, 3] (model frame, mm)."""
        from facerecon_core.render import sample_texture

        uv = self.vertex_uv.view(1, 1, -1, 2).expand(i_g.shape[0], 1, -1, 2)
        return sample_texture(i_g, uv)[:, :, 0].transpose(1, 2)

    def to_camera(self, vertices: torch.Tensor, params: Params) -> torch.Tensor:
        from facerecon_core.render import euler_to_matrix

        angles, translation = params.pose()
        return vertices @ euler_to_matrix(angles).transpose(1, 2) + translation[:, None, :]

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """Crop pixel coordinates (pixel centres on integers, y down) of camera-space points."""
        cam = self.camera
        depth = -points_cam[..., 2]
        return torch.stack([cam.centre + cam.focal * points_cam[..., 0] / depth,
                            cam.centre - cam.focal * points_cam[..., 1] / depth], dim=-1)

    def fuse(self, out: Output, i_a: torch.Tensor | None = None, backend: str = "auto") -> Output:
        """Fusion module (eq. 19): fills ``vertices``, ``vertices_cam``, ``I_R``, ``render_mask`` and the
        projected ``landmarks_2d`` of ``out`` (albedo ``i_a`` defaults to ``out.I_a``)."""
        from facerecon_core.render import render_mesh

        i_a = out.I_a if i_a is None else i_a
        verts = self.asm_to_vertices(out.I_g)
        verts_cam = self.to_camera(verts, out.params)
        rendered = render_mesh(verts_cam, self.triangles, self.camera.render_camera(), uv=self.vertex_uv,
                               texture=i_a, sh=out.params.p_l, backend=backend)
        out.vertices, out.vertices_cam = verts, verts_cam
        out.I_R, out.render_mask = rendered.image, rendered.mask
        out.landmarks_2d = self.project(verts_cam[:, self.landmark_index])
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.appearance is not None and not any(k.startswith(prefix + "appearance.") for k in state_dict):
            self.appearance.copy_keys(state_dict, prefix + "appearance.", prefix + "encoder.")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------------ whole
    def forward(self, image: torch.Tensor, landmarks_2d: torch.Tensor, render: bool = False) -> Output:
        out = self.geometry(image)
        out.I_u = self.albedo_map(out.params.p_t)
        out.I_a, out.regions = self.texture(out.I_u, image, landmarks_2d)
        if render:
            self.fuse(out)
        return out

    def export_forward(self, image: torch.Tensor, landmarks_2d: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Tensor-only inference path for ONNX: (A_id, A_exp, p_t, p_l, p_h, I_a)."""
        out = self.forward(image, landmarks_2d)
        return out.A_id, out.A_exp, out.params.p_t, out.params.p_l, out.params.p_h, out.I_a


class ExportWrapper(nn.Module):
    """``torch.onnx.export(ExportWrapper(net), (image, landmarks), ..., dynamo=False)``."""

    def __init__(self, net: DualStreamNet) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)  # the exporter restores this mode on every submodule afterwards

    def forward(self, image: torch.Tensor, landmarks_2d: torch.Tensor):
        return self.net.export_forward(image, landmarks_2d)
