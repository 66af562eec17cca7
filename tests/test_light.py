"""The pipeline's light fit (:mod:`facerecon_core.pipeline.light`): faces rendered with a known SH light."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon_core.datasets.scene import place_in_crop, sample_sh
from facerecon_core.pipeline.light import LightFitConfig, fit_light, visible_vertices
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.render.kernels import rasterize_numpy
from facerecon_core.render.numpy_render import render_mesh_numpy, vertex_normals

SIZE = 128
AMBIENT = np.tile(np.eye(9)[0], (3, 1))  # a plain white light: what an untrained network might say


def posed_face(facemodel, yaw: float, seed: int = 3):
    rng = np.random.default_rng(seed)
    shape = facemodel.vertices(0.5 * rng.standard_normal(facemodel.n_id)).astype(np.float64)
    angles = np.array([0.1, yaw, 0.05])
    return to_camera(shape, angles, place_in_crop(shape[facemodel.landmark_indices], angles, SIZE)), rng


def photo_of(facemodel, verts, sh):
    """(crop uint8, face mask): the face with the mean albedo under ``sh`` on a grey background."""
    image, mask = render_mesh_numpy(verts, facemodel.triangles, CropCamera(SIZE).render_camera(),
                                    vertex_colors=facemodel.albedo_mean, sh=sh, background=np.full(3, 0.5))
    return (np.clip(image[0], 0, 1) * 255).round().astype(np.uint8), mask[0]


def rerender_error(facemodel, verts, sh, crop, where):
    image, _ = render_mesh_numpy(verts, facemodel.triangles, CropCamera(SIZE).render_camera(),
                                 vertex_colors=facemodel.albedo_mean, sh=sh)
    return float(np.abs(np.clip(image[0], 0, 1) - crop / 255.0)[where].mean())


@pytest.mark.parametrize("yaw", [0.0, 0.6])
def test_fit_recovers_the_light_of_a_rendered_face(facemodel, yaw):
    verts, rng = posed_face(facemodel, yaw)
    truth = sample_sh(rng).astype(np.float64)
    crop, mask = photo_of(facemodel, verts, truth)
    fit = fit_light(crop, None, verts, facemodel.albedo_mean, facemodel, AMBIENT)
    assert fit.fitted and fit.vertices > 5000 and fit.sh.shape == (3, 9)
    # constant, z and 3z² − 1 trade off over a face's normals; the left-right and up-down terms do not
    np.testing.assert_allclose(fit.sh[:, [1, 3]], truth[:, [1, 3]], atol=0.03)
    assert rerender_error(facemodel, verts, fit.sh, crop, mask) < 0.006
    assert rerender_error(facemodel, verts, AMBIENT, crop, mask) > 0.03


def test_occluders_barely_move_the_robust_fit(facemodel):
    """Sunglasses (a black band over the eyes) pull plain least squares off; the L1 fit keeps the light."""
    verts, rng = posed_face(facemodel, 0.2, seed=5)
    truth = sample_sh(rng).astype(np.float64)
    crop, mask = photo_of(facemodel, verts, truth)
    eyes = CropCamera(SIZE).project(verts[facemodel.landmark_indices[36:48]])
    top, bottom = int(eyes[:, 1].min()) - 6, int(eyes[:, 1].max()) + 6
    occluded = crop.copy()
    occluded[top:bottom] = 10
    clean = mask.copy()
    clean[top:bottom] = False
    robust = fit_light(occluded, None, verts, facemodel.albedo_mean, facemodel, AMBIENT)
    plain = fit_light(occluded, None, verts, facemodel.albedo_mean, facemodel, AMBIENT, LightFitConfig(iterations=0))
    robust_error = rerender_error(facemodel, verts, robust.sh, crop, clean)
    assert robust_error < 0.01
    assert robust_error < 0.5 * rerender_error(facemodel, verts, plain.sh, crop, clean)


def test_too_little_face_keeps_the_network_light(facemodel):
    verts, rng = posed_face(facemodel, 0.0)
    crop, _ = photo_of(facemodel, verts, sample_sh(rng))
    prior = sample_sh(np.random.default_rng(9)).astype(np.float64)
    padded = np.zeros((SIZE, SIZE), bool)  # the crop lies wholly outside the photo
    fit = fit_light(crop, padded, verts, facemodel.albedo_mean, facemodel, prior)
    assert not fit.fitted and fit.vertices == 0
    np.testing.assert_array_equal(fit.sh, prior)


def test_visibility_agrees_with_the_rasterizer(facemodel):
    """At a 52° yaw the far cheek hides behind the nose: the splatted depth test finds the vertices a
    4× finer rasterization sees, and rejects most of those that face the camera but are hidden."""
    verts, _ = posed_face(facemodel, 0.9)
    normals = vertex_normals(verts, facemodel.triangles).astype(np.float64)
    config = LightFitConfig()
    seen, pixels = visible_vertices(verts, normals, SIZE, config)
    assert pixels.shape == (len(verts), 2)
    big = 4 * SIZE
    clip = CropCamera(big).render_camera().to_clip(verts[None].astype(np.float32))
    rast = rasterize_numpy(np.ascontiguousarray(clip, np.float32), np.ascontiguousarray(facemodel.triangles, np.int32),
                           (big, big))
    hit = rast[0, ..., 3].astype(np.int64)
    covered = np.zeros(len(verts), bool)
    covered[facemodel.triangles[hit[hit > 0] - 1].ravel()] = True
    view = -verts / np.linalg.norm(verts, axis=1, keepdims=True)
    facing = (normals * view).sum(1) > config.min_facing
    hidden = facing & ~covered
    assert hidden.sum() > 800  # the test has occlusion in it
    assert (seen & covered).sum() / (facing & covered).sum() > 0.97
    assert (seen & hidden).sum() / hidden.sum() < 0.1
