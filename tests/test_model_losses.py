"""Losses of facerecon_core.model on inputs with known answers."""

from __future__ import annotations

import numpy as np
import torch

from facerecon_core.fitting.losses import Laplacian
from facerecon_core.facemodel import topology
from facerecon_core.model import decode_pose, encode_pose
from facerecon_core.model.losses import (ContextualLoss, alignment_loss, asm_loss, contextual_similarity, flip_asm,
                                         identity_loss, laplacian_loss, parametric_loss, pixel_loss,
                                         reconstruction_loss, symmetry_loss, adversarial_d_loss, adversarial_g_loss)
from facerecon_core.model.network import Params


def test_pose_parametrisation_round_trip():
    angles = torch.tensor([[0.1, -0.8, 0.2], [0.0, 0.0, 0.0]])
    translation = torch.tensor([[12.0, -8.0, -950.0], [0.0, 0.0, -906.25]])
    p_h = encode_pose(angles, translation)
    assert torch.allclose(p_h[1], torch.zeros(6), atol=1e-4)  # a centred face at the reference depth
    a, t = decode_pose(p_h)
    assert torch.allclose(a, angles) and torch.allclose(t, translation, atol=1e-3)


def test_parametric_loss():
    gen = torch.Generator().manual_seed(0)
    target = Params(torch.randn(2, 5, generator=gen), torch.randn(2, 3, 9, generator=gen), torch.randn(2, 6, generator=gen))
    assert parametric_loss(target, target, tau=0.0) == 0
    # At the ground truth only the τ‖p_t‖² regulariser remains.
    expected = 0.05 * target.p_t.square().sum(-1).mean()
    assert torch.isclose(parametric_loss(target, target, tau=0.05), expected)
    shifted = Params(target.p_t, target.p_l, target.p_h + torch.tensor([0, 0, 0, 0, 0, 2.0]))
    assert torch.isclose(parametric_loss(shifted, target, tau=0.0), torch.tensor(4.0))
    assert parametric_loss(Params(torch.zeros(2, 0), target.p_l, target.p_h),  # K_alb = 0 works
                           Params(torch.zeros(2, 0), target.p_l, target.p_h)) == 0


def test_asm_loss_zero_at_ground_truth_and_weighted():
    gen = torch.Generator().manual_seed(0)
    gt_id, gt_exp = torch.randn(1, 3, 8, 8, generator=gen) * 50, torch.randn(1, 3, 8, 8, generator=gen) * 5
    w = torch.zeros(8, 8)
    w[2, 2], w[5, 5] = 4.0, 1.0
    assert asm_loss(gt_id, gt_exp, gt_id, gt_exp, w) == 0
    err = torch.zeros(1, 3, 8, 8)
    err[0, 0, 2, 2] = 10.0  # 1 cm error where W = 4
    assert torch.isclose(asm_loss(gt_id + err, gt_exp, gt_id, gt_exp, w), torch.tensor(4.0 / 64))
    moved = torch.zeros(1, 3, 8, 8)
    moved[0, 0, 5, 5] = 10.0  # same error where W = 1
    assert torch.isclose(asm_loss(gt_id + moved, gt_exp, gt_id, gt_exp, w), torch.tensor(1.0 / 64))
    moved = torch.zeros(1, 3, 8, 8)
    moved[0, 1, 0, 0] = 10.0  # W = 0: identity error ignored there ...
    assert asm_loss(gt_id + moved, gt_exp, gt_id, gt_exp, w) == 0
    # ... but the expression ASM is unweighted
    assert torch.isclose(asm_loss(gt_id, gt_exp + moved, gt_id, gt_exp, w), torch.tensor(1.0 / 64))


def test_symmetry_loss():
    a = torch.randn(2, 3, 16, 16) * 30
    sym = 0.5 * (a + flip_asm(a))
    assert symmetry_loss(sym) < 1e-6
    assert symmetry_loss(a) > 1.0
    assert torch.allclose(flip_asm(flip_asm(a)), a)
    # A map whose x is odd and y, z even across u = 0.5 is symmetric; an x offset is not.
    assert symmetry_loss(sym + torch.tensor([0.0, 3.0, -2.0]).view(1, 3, 1, 1)) < 1e-6
    assert torch.isclose(symmetry_loss(sym + torch.tensor([5.0, 0.0, 0.0]).view(1, 3, 1, 1)), torch.tensor(1.0))


def test_symmetry_of_the_mean_face(facemodel):
    a = torch.from_numpy(facemodel.to_uv_map(facemodel.mean_shape, 128)).permute(2, 0, 1)[None]
    mask = torch.from_numpy(facemodel.face_mask(128).astype(np.float32))
    offset = torch.tensor([5.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert symmetry_loss(a, mask=mask) < 0.2 * symmetry_loss(a + offset, mask=mask)


def _grid_mesh(n: int = 8):
    ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], -1).astype(np.float32) * 7.0
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            tris += [(a, b, d), (a, d, c)]
    interior = ((xs > 0) & (xs < n - 1) & (ys > 0) & (ys < n - 1)).ravel().astype(np.float32)
    return pts, np.array(tris, np.int32), interior


def test_laplacian_loss_zero_for_a_plane():
    pts, tris, interior = _grid_mesh()
    lap = Laplacian(*topology.one_ring(tris, len(pts)))
    weights = torch.from_numpy(interior)
    plane = torch.from_numpy(pts)[None]
    assert laplacian_loss(plane, lap, vertex_weights=weights) < 1e-10
    # any plane: rotate, scale and move it
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))[0]
    tilted = (plane * 1.7) @ rot.T + torch.tensor([3.0, -40.0, 900.0])
    assert laplacian_loss(tilted, lap, vertex_weights=weights) < 1e-8
    bumped = plane.clone()
    bumped[0, 3 * 8 + 3, 2] = 5.0
    assert laplacian_loss(bumped, lap, vertex_weights=weights) > 1e-3


def test_laplacian_loss_on_the_face(facemodel):
    lap = Laplacian(*facemodel.neighbours)
    face = torch.from_numpy(facemodel.mean_shape)[None]
    base = laplacian_loss(face, lap)
    assert torch.isclose(laplacian_loss(face + torch.tensor([5.0, -3.0, 2.0]), lap), base, rtol=1e-4)
    noisy = face + torch.randn_like(face, generator=torch.Generator().manual_seed(0))
    assert laplacian_loss(noisy, lap) > 10 * base


def test_contextual_similarity_is_maximal_for_identical_features():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, 64, generator=gen)
    same = contextual_similarity(x, x)
    assert same.item() > 0.99
    losses = [-torch.log(contextual_similarity(x + s * torch.randn(x.shape, generator=gen), x)).item()
              for s in (0.0, 0.3, 1.0, 3.0)]
    assert losses[0] < 0.01
    assert all(a < b for a, b in zip(losses, losses[1:])), losses
    # order-free: a permutation of the positions is still a perfect match
    perm = x[:, :, torch.randperm(64, generator=gen)]
    assert contextual_similarity(perm, x).item() > 0.99


def test_contextual_loss_on_images():
    loss = ContextualLoss(layers=[1, 3, 6], max_side=8)
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 64, 64, generator=gen)
    same = loss(img, img).item()
    noisy = loss((img + 0.2 * torch.randn(img.shape, generator=gen)).clamp(0, 1), img).item()
    other = loss(torch.rand(1, 3, 64, 64, generator=gen).roll(7, -1) ** 3, img).item()
    assert same < 1e-3 < noisy < other


def test_reconstruction_and_adversarial():
    a = torch.rand(2, 3, 8, 8)
    assert reconstruction_loss(a, a) == 0
    assert torch.isclose(reconstruction_loss(a + 0.5, a), torch.tensor(0.25))
    assert torch.isclose(reconstruction_loss(a + 2 / 255, a, levels=255.0), torch.tensor(4.0))  # pixel values
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., :4] = 1.0
    b = a.clone()
    b[..., 4:] += 1.0  # errors only where invisible
    assert reconstruction_loss(b, a, mask) == 0
    big = torch.full((2, 1, 4, 4), 20.0)
    assert adversarial_d_loss(big, -big) < 1e-6 and adversarial_g_loss(big) < 1e-6
    assert adversarial_g_loss(-big) > 10


def test_pixel_and_alignment_losses():
    img = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    render = img.clone()
    render[..., 0, :] = 0.0  # outside the mask
    assert pixel_loss(img, render, mask) == 0
    assert torch.isclose(pixel_loss(img, img + 0.1, mask), torch.tensor(0.3))
    assert torch.isclose(pixel_loss(img, img + 1 / 255, mask, levels=255.0), torch.tensor(3.0))
    lm = torch.rand(2, 68, 2) * 128
    assert alignment_loss(lm, lm, 128) == 0
    shift = torch.tensor([3.0, 4.0])
    assert torch.isclose(alignment_loss(lm + shift, lm, 128), torch.tensor(10.0))  # 5 px at 128 = 10 px at 256


def test_identity_loss_cosine():
    e = torch.randn(3, 128)
    assert identity_loss(e, 2 * e) < 1e-6
    assert torch.isclose(identity_loss(e, -e), torch.tensor(2.0))
