"""Losses of the dual-stream network (defaults = the paper's weights; see docs/paper-notes.md).

Geometry stream (eq. 8):  η_p L_p + η_a L_asm + η_s L_sym + η_r L_reg   (0.5, 1, 0.5, 1e-3)
Texture stream (eq. 18):  ω_r L_rec + ω_c L_con + ω_a L_adv             (0.1, 3, 0.2)
Fusion module (eq. 23):   λ_1 L_pix + λ_2 L_id + λ_3 L_ali              (0.1, 2, 1e-2)

Every function returns a scalar averaged over the batch. ASM terms measure millimetres in
``unit_mm`` (default 10: centimetres) and average over texels instead of summing (eq. 5/6), and
L_rec / L_pix measure intensities in ``levels`` per unit (default 255: 8-bit pixel values), so
that the paper's weights give terms of similar magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facerecon_core.fitting.losses import Laplacian, landmark_error
from facerecon_core.model.backbones import ImageNormalize, load_mobilenet_v2
from facerecon_core.model.config import Config, FusionWeights, GeometryWeights, TextureWeights
from facerecon_core.model.geometry import encode_pose
from facerecon_core.model.network import DualStreamNet, Output, Params

# ------------------------------------------------------------------------------ geometry stream


def target_params(batch: dict[str, torch.Tensor]) -> Params:
    """Ground-truth P̂ from a dataset batch (``albedo_coeff``, ``sh``, ``angles``, ``translation``)."""
    return Params(batch["albedo_coeff"], batch["sh"], encode_pose(batch["angles"], batch["translation"]))


def parametric_loss(pred: Params, target: Params, tau: float = 5e-2) -> torch.Tensor:
    """Eq. 4: ‖P − P̂‖² + τ ‖p_t‖² (squared norms summed over the parameters, mean over the batch)."""
    err = ((pred.p_t - target.p_t).square().sum(-1) + (pred.p_l - target.p_l).square().flatten(1).sum(-1)
           + (pred.p_h - target.p_h).square().sum(-1))
    return (err + tau * pred.p_t.square().sum(-1)).mean()


def asm_loss(a_id: torch.Tensor, a_exp: torch.Tensor, gt_id: torch.Tensor, gt_exp: torch.Tensor,
             weight_mask: torch.Tensor, unit_mm: float = 10.0) -> torch.Tensor:
    """Eq. 5: mean over texels of W·‖A_id − Â_id‖² + ‖A_exp − Â_exp‖² (maps [B, 3, H, W], W [H, W])."""
    d_id = (a_id - gt_id).square().sum(1) * weight_mask
    d_exp = (a_exp - gt_exp).square().sum(1)
    return (d_id + d_exp).mean() / unit_mm**2


def same_person_loss(a_id: torch.Tensor, b_id: torch.Tensor, valid: torch.Tensor, weight_mask: torch.Tensor,
                     unit_mm: float = 10.0) -> torch.Tensor:
    """L_same (our extension): mean over the valid pairs and texels of W·‖A_id(a) − A_id(b)‖², the identity maps of
    two photos of one person (maps [B, 3, H, W], ``valid`` [B] in {0, 1}); 0 without a valid pair."""
    per_pair = ((a_id - b_id).square().sum(1) * weight_mask).mean(dim=(1, 2))
    valid = valid.reshape(-1).to(per_pair.dtype)
    return (per_pair * valid).sum() / valid.sum().clamp(min=1.0) / unit_mm**2


def flip_asm(a: torch.Tensor) -> torch.Tensor:
    """F_h: the mirror face's map: flip the UV columns (the layout is symmetric about u = 0.5) and negate x."""
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=a.dtype, device=a.device).view(1, 3, 1, 1)
    return a.flip(-1) * sign


def symmetry_loss(a_id: torch.Tensor, unit_mm: float = 10.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 6: ‖A_id − F_h(A_id)‖₁, mean over texels (and over ``mask`` [H, W] if given), summed over x, y, z."""
    diff = (a_id - flip_asm(a_id)).abs().sum(1)
    if mask is None:
        return diff.mean() / unit_mm
    return (diff * mask).sum() / (mask.sum() * a_id.shape[0]).clamp_min(1.0) / unit_mm


def laplacian_loss(vertices: torch.Tensor, laplacian: Laplacian, unit_mm: float = 10.0,
                   vertex_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7: (1/N) Σ_i ‖v_i − mean of its 1-ring‖² on the decoded vertices [B, V, 3]
    (``vertex_weights`` [V] optionally restricts / weights the vertices)."""
    energy = laplacian(vertices / unit_mm).square().sum(-1)
    if vertex_weights is None:
        return energy.mean()
    return (energy * vertex_weights).sum(-1).mean() / vertex_weights.sum().clamp_min(1e-8)


class GeometryLoss(nn.Module):
    """L_gs (eq. 8) of a geometry-stream :class:`Output` against a batch with ``asm_id``, ``asm_exp``
    and the parameter targets. ``vertices`` (the I_g samples at the vertex UVs) feed L_reg; L_sym
    runs over the UV face region (outside it A_id is unconstrained: W = 0 there). Without the
    expression ASM (``expression_asm=False``, the ablation), A_id is the whole shape: L_asm compares
    it with Â_id + Â_exp, and L_sym is off (an expressive face is not symmetric)."""

    def __init__(self, weights: GeometryWeights, facemodel, asm_size: int, expression_asm: bool = True) -> None:
        super().__init__()
        self.w, self.expression_asm = weights, expression_asm
        self.register_buffer("weight_mask", torch.from_numpy(np.asarray(facemodel.weight_mask(asm_size),
                                                                         np.float32)), persistent=False)
        self.register_buffer("face_mask", torch.from_numpy(np.asarray(facemodel.face_mask(asm_size), np.float32)),
                             persistent=False)
        self.laplacian = Laplacian(*facemodel.neighbours)

    def forward(self, out: Output, batch: dict[str, torch.Tensor], vertices: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.w
        if self.expression_asm:
            asm = asm_loss(out.A_id, out.A_exp, batch["asm_id"], batch["asm_exp"], self.weight_mask, w.unit_mm)
            sym = symmetry_loss(out.A_id, w.unit_mm, self.face_mask)
        else:
            zero = torch.zeros_like(out.A_id)
            asm = asm_loss(out.A_id, zero, batch["asm_id"] + batch["asm_exp"], zero, self.weight_mask, w.unit_mm)
            sym = out.A_id.new_zeros(())
        terms = {
            "p": parametric_loss(out.params, target_params(batch), w.tau),
            "asm": asm,
            "sym": sym,
            "reg": laplacian_loss(vertices, self.laplacian, w.unit_mm),
        }
        terms["total"] = w.p * terms["p"] + w.asm * terms["asm"] + w.sym * terms["sym"] + w.reg * terms["reg"]
        return terms


# ------------------------------------------------------------------------------- texture stream


def reconstruction_loss(i_a: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                        levels: float = 1.0) -> torch.Tensor:
    """Eq. 15: (1/WHC) Σ ‖I_a − Î_a‖² of [0, 1] maps measured in ``levels`` (255: pixel values); with
    ``mask`` [B, 1, H, W] (texel visibility) the mean runs over it."""
    err = ((i_a - target) * levels).square()
    if mask is None:
        return err.mean()
    return (err * mask).sum() / (mask.sum() * i_a.shape[1]).clamp_min(1.0)


def adversarial_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator side of eq. 16: −[log D(Î_a) + log(1 − D(I_a))] per patch (PatchGAN logits)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def adversarial_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of eq. 16 in the non-saturating form −log D(I_a) (as pix2pix)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def contextual_similarity(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.5, eps: float = 1e-5) -> torch.Tensor:
    """CX(X, Y) of Mechrez et al. 2018 for feature sets x [B, C, N], y [B, C, M]: returns [B] in (0, 1].

    Cosine distances after centring both on the mean of Y, normalised by each x_i's nearest
    distance, turned into affinities exp((1 − d̃)/h), normalised over the y_j (per x_i), and
    CX = mean over y_j of the max over x_i.
    """
    mu = y.mean(dim=2, keepdim=True)
    xn = F.normalize(x - mu, dim=1)
    yn = F.normalize(y - mu, dim=1)
    dist = (1.0 - torch.bmm(xn.transpose(1, 2), yn)).clamp_min(0.0)  # [B, N, M]
    rel = dist / (dist.min(dim=2, keepdim=True).values + eps)
    w = torch.exp((1.0 - rel) / bandwidth)
    cx = w / w.sum(dim=2, keepdim=True)
    return cx.max(dim=1).values.mean(dim=1)


class ContextualLoss(nn.Module):
    """Eq. 17, −log CX(φ(I_a), φ(Î_a)) summed over layers, on frozen ImageNet MobileNetV2 features.

    Stand-in for the paper's VGG relu2_2…relu5_2 (VGG weights are not reachable): the outputs of
    ``features[i]`` for ``layers`` (default 1, 3, 6, 13: strides 2, 4, 8, 16), each average-pooled to
    at most ``max_side``² positions to bound the N×M similarity matrix.
    """

    def __init__(self, layers: list[int] = (1, 3, 6, 13), bandwidth: float = 0.5, max_side: int = 32,
                 pretrained: bool = True) -> None:
        super().__init__()
        feats = load_mobilenet_v2(pretrained).features[: max(layers) + 1]
        self.features = feats.eval().requires_grad_(False)
        self.normalize = ImageNormalize()
        self.layers, self.bandwidth, self.max_side = set(layers), bandwidth, max_side

    def train(self, mode: bool = True) -> ContextualLoss:  # frozen: BN statistics stay fixed
        super().train(mode)
        self.features.eval()
        return self

    def extract(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, out = self.normalize(image), []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                h, w = x.shape[-2:]
                pooled = F.adaptive_avg_pool2d(x, (min(h, self.max_side), min(w, self.max_side)))
                out.append(pooled.flatten(2))
        return out

    def forward(self, i_a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = i_a.new_zeros(())
        for fx, fy in zip(self.extract(i_a), self.extract(target)):
            loss = loss - torch.log(contextual_similarity(fx, fy, self.bandwidth) + 1e-8).mean()
        return loss


class TextureLoss(nn.Module):
    """L_ts (eq. 18) for the generator, and the discriminator's loss (eq. 16)."""

    def __init__(self, weights: TextureWeights, pretrained: bool = True) -> None:
        super().__init__()
        self.w = weights
        self.contextual = ContextualLoss(weights.con_layers, weights.con_bandwidth, weights.con_max_side, pretrained)

    def content(self, i_a: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """L_rec and L_con against the batch's ``uv_texture`` (within ``uv_visibility`` when given)."""
        target, vis = batch["uv_texture"], batch.get("uv_visibility")
        masked = (i_a, target) if vis is None else (i_a * vis, target * vis)
        return {"rec": reconstruction_loss(i_a, target, vis, self.w.levels), "con": self.contextual(*masked)}

    def generator(self, i_a: torch.Tensor, batch: dict[str, torch.Tensor], discriminator: nn.Module
                  ) -> dict[str, torch.Tensor]:
        terms = {**self.content(i_a, batch), "adv": adversarial_g_loss(discriminator(i_a))}
        terms["total"] = self.w.rec * terms["rec"] + self.w.con * terms["con"] + self.w.adv * terms["adv"]
        return terms

    def discriminator(self, i_a: torch.Tensor, batch: dict[str, torch.Tensor], discriminator: nn.Module
                      ) -> torch.Tensor:
        return adversarial_d_loss(discriminator(batch["uv_texture"]), discriminator(i_a.detach()))


# -------------------------------------------------------------------------------- fusion module


def pixel_loss(image: torch.Tensor, render: torch.Tensor, mask: torch.Tensor, levels: float = 1.0) -> torch.Tensor:
    """Eq. 20: L1 colour error ‖I_o − I_R‖₁ (summed over channels) of [0, 1] images measured in
    ``levels`` (255: pixel values), averaged over the visibility mask."""
    per_pixel = (image - render).abs().sum(1, keepdim=True) * levels
    return ((per_pixel * mask).flatten(1).sum(-1) / mask.flatten(1).sum(-1).clamp_min(1.0)).mean()


def identity_loss(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Eq. 21: 1 − cos(F_id(I_o), F_id(I_R)), mean over the batch."""
    return (1.0 - F.cosine_similarity(emb_a, emb_b, dim=-1, eps=1e-8)).mean()


def alignment_loss(pred: torch.Tensor, target: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Eq. 22: mean Euclidean distance of the 68 landmarks, in pixels of a 256-pixel crop."""
    return landmark_error(pred, target).mean() * (256.0 / crop_size)


class FusionLoss(nn.Module):
    """L_fm (eq. 23) of a fused :class:`Output` against a batch (``image``, ``face_mask``, ``landmarks_2d``).

    L_id embeds I_o and I_R composited over I_o (the render has no background), both aligned with
    the input's landmarks.
    """

    def __init__(self, weights: FusionWeights, crop_size: int, identity_path: str | Path | None = None) -> None:
        super().__init__()
        from facerecon_core import paths
        from facerecon_core.model.facenet import IdentityEmbedder

        self.w, self.crop_size = weights, crop_size
        path = Path(identity_path) if identity_path is not None else paths.shared_dir() / weights.identity_weights
        self.identity = IdentityEmbedder(path)

    def forward(self, out: Output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image, lms = batch["image"], batch["landmarks_2d"]
        composite = torch.lerp(image, out.I_R, out.render_mask)
        with torch.no_grad():
            emb_o = self.identity(image, lms)
        terms = {"pix": pixel_loss(image, out.I_R, batch["face_mask"], self.w.levels),
                 "id": identity_loss(emb_o, self.identity(composite, lms)),
                 "ali": alignment_loss(out.landmarks_2d, lms, self.crop_size)}
        terms["total"] = self.w.pix * terms["pix"] + self.w.id * terms["id"] + self.w.ali * terms["ali"]
        return terms


class DualStreamLoss(nn.Module):
    """All three stage losses of a :class:`Config` (``fusion=False`` skips loading MobileFaceNet)."""

    def __init__(self, config: Config, facemodel, fusion: bool = True, identity_path: str | Path | None = None,
                 pretrained: bool = True) -> None:
        super().__init__()
        m = config.model
        self.geometry = GeometryLoss(config.losses.geometry, facemodel, m.geometry.asm_size, m.geometry.expression_asm)
        self.texture = TextureLoss(config.losses.texture, pretrained)
        self.fusion = FusionLoss(config.losses.fusion, m.input_size, identity_path) if fusion else None


# ------------------------------------------------------------------------------ stage steps


def geometry_step(net: DualStreamNet, loss: GeometryLoss, batch: dict, optimizer: torch.optim.Optimizer) -> dict:
    """One step of stage 1 (MTE + PSN + ADs on ASM data)."""
    optimizer.zero_grad(set_to_none=True)
    out = net.geometry(batch["image"])
    terms = loss(out, batch, net.asm_to_vertices(out.I_g))
    if loss.w.same_person > 0 and "pair_valid" in batch and bool(batch["pair_valid"].any()):
        pair = net.geometry(batch["image_pair"])  # the whole batch (zeros where no pair): BatchNorm sees a full one
        terms["same"] = same_person_loss(out.A_id, pair.A_id, batch["pair_valid"], loss.weight_mask, loss.w.unit_mm)
        terms["total"] = terms["total"] + loss.w.same_person * terms["same"]
    terms["total"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in terms.items()}


def texture_step(net: DualStreamNet, discriminator: nn.Module, loss: TextureLoss, batch: dict,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> dict:
    """One step of stage 2 (G_t from the ground-truth I_u = ``uv_albedo``, then the PatchGAN)."""
    opt_g.zero_grad(set_to_none=True)
    i_a, _ = net.texture(batch["uv_albedo"], batch["image"], batch["landmarks_2d"])
    discriminator.requires_grad_(False)
    terms = loss.generator(i_a, batch, discriminator)
    terms["total"].backward()
    opt_g.step()
    discriminator.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    d_loss = loss.discriminator(i_a, batch, discriminator)
    d_loss.backward()
    opt_d.step()
    return {**{k: float(v.detach()) for k, v in terms.items()}, "d": float(d_loss.detach())}


def freeze_batchnorm(net: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics of stages 1–2; affine weights still train)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def fusion_step(net: DualStreamNet, loss: FusionLoss, batch: dict, optimizer: torch.optim.Optimizer,
                freeze_bn: bool = True) -> dict:
    """One step of stage 3 (end-to-end, self-supervised through the renderer).

    ``freeze_bn``: fine-tune with the BatchNorm statistics of the pretrained streams (batch
    statistics of the decoders' 1×1 / 2×2 layers over a batch of 8 are degenerate, and make the
    rendered losses very rough).
    """
    net.train()
    if freeze_bn:
        freeze_batchnorm(net)
    optimizer.zero_grad(set_to_none=True)
    out = net(batch["image"], batch["landmarks_2d"], render=True)
    terms = loss(out, batch)
    terms["total"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in terms.items()}
