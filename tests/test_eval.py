"""Evaluation: metrics on constructed cases, the 3DDFA_V2 peer on AFLW2000, the suites end to end."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon_core.eval import metrics


def _rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.linalg.det(q))


# ------------------------------------------------------------------------------------- metrics
def test_identical_meshes_have_zero_error(facemodel):
    v = facemodel.mean_shape.astype(np.float64)
    lm = v[facemodel.landmark_indices]
    err = metrics.geometry_error(v, facemodel.triangles, v, pred_landmarks=lm, gt_landmarks=lm)
    assert err.mean < 1e-6 and err.std < 1e-6
    assert err.alignment.scale == pytest.approx(1.0, abs=1e-6)


def test_icp_removes_a_rigid_transform_and_scale(facemodel):
    rng = np.random.default_rng(3)
    gt = facemodel.vertices(rng.standard_normal(facemodel.n_id), rng.standard_normal(facemodel.n_exp)).astype(float)
    rot, scale, shift = _rotation(rng), 1.23, np.array([30.0, -12.0, 250.0])
    pred = (gt - shift) @ rot / scale  # gt = scale * rot @ pred + shift
    lm = facemodel.landmark_indices
    # landmarks disturbed by 3 mm noise: ICP has to finish the alignment from a rough start
    noisy = pred[lm] + rng.normal(0.0, 3.0, (68, 3))
    err = metrics.geometry_error(pred, facemodel.triangles, gt, pred_landmarks=noisy, gt_landmarks=gt[lm])
    assert err.mean < 0.05, err.mean
    assert err.alignment.scale == pytest.approx(scale, rel=2e-3)
    assert np.abs(err.alignment.rotation - rot).max() < 2e-3
    assert np.abs(err.aligned - gt).max() < 0.5


def test_uniform_normal_offset_is_one_millimetre(facemodel):
    v = facemodel.mean_shape.astype(np.float64)
    normals = metrics.vertex_normals(v, facemodel.triangles)
    dist = metrics.point_to_plane(v + 1.0 * normals, v, normals)
    # the boundary rim of the open mesh has tilted normals: use the interior (the 95 mm crop)
    keep = metrics.crop_mask(v, v[facemodel.landmark_indices[metrics.NOSE_TIP]], 80.0)
    assert np.median(dist[keep]) == pytest.approx(1.0, abs=1e-3)
    assert dist[keep].mean() == pytest.approx(1.0, abs=0.02)


def test_expression_error_is_zero_for_the_same_expression_in_another_frame(facemodel):
    rng = np.random.default_rng(4)
    idc, exc = rng.standard_normal(facemodel.n_id), 2 * rng.standard_normal(facemodel.n_exp)
    gt, gt_n = facemodel.vertices(idc, exc), facemodel.vertices(idc)
    rot, scale = _rotation(rng), 0.8
    pred, pred_n = gt @ rot / scale, gt_n @ rot / scale
    align = metrics.umeyama(pred, gt)
    err = metrics.expression_error(pred, pred_n, gt, gt_n, align)
    assert np.nanmax(err) < 1e-3
    wrong = metrics.expression_error(pred_n, pred_n, gt, gt_n, align)
    assert np.nanmean(wrong) == pytest.approx(np.linalg.norm(gt - gt_n, axis=1).mean(), rel=1e-4)


def test_nme_of_a_known_shift():
    rng = np.random.default_rng(5)
    gt = rng.uniform(100, 300, (68, 2))
    gt[0], gt[1] = (100, 100), (300, 200)  # bounding box 200 × 100 → sqrt(w h) = 141.42
    gt[2:] = np.clip(gt[2:], [100, 100], [300, 200])
    pred = gt + (3.0, 4.0)  # 5 px everywhere
    assert metrics.bbox_size(gt) == pytest.approx(np.sqrt(200 * 100))
    assert metrics.nme(pred, gt) == pytest.approx(5.0 / np.sqrt(20000))
    gt3 = np.c_[gt, rng.normal(0, 20, 68)]
    pred3 = np.c_[pred, gt3[:, 2] + 17.0]  # a constant depth offset is not an error
    assert metrics.nme(pred3, gt3, dims=3) == pytest.approx(5.0 / np.sqrt(20000))


def test_photometric_errors():
    photo = np.full((8, 8, 3), 100, np.uint8)
    render = np.full((8, 8, 3), 110 / 255.0)
    region = np.zeros((8, 8), bool)
    region[2:6, 2:6] = True
    out = metrics.photometric_errors(photo, render, region)
    assert out["pixels"] == 16
    assert out["mae"] == pytest.approx(10 / 255.0)
    assert out["e_pho"] == pytest.approx(300.0)
    assert out["e_pho_l2"] == pytest.approx(np.sqrt(300.0))
