"""UV position maps: mesh → map → vertices round trip, conventions, masks."""

from __future__ import annotations

import numpy as np

from facerecon_core.facemodel import FaceModel, sample_vertices
from facerecon_core.facemodel.uvmap import LANDMARK_REGIONS, uv_to_pixel


def test_round_trip_error_below_a_tenth_of_a_millimetre(facemodel: FaceModel):
    rng = np.random.default_rng(0)
    faces = facemodel.vertices(rng.standard_normal((3, facemodel.n_id)), 2 * rng.standard_normal((3, facemodel.n_exp)))
    maps = facemodel.to_uv_map(faces)
    assert maps.shape == (3, 256, 256, 3) and maps.dtype == np.float32
    error = np.linalg.norm(facemodel.from_uv_map(maps) - faces, axis=-1)
    assert error.mean() <= 0.1, error.mean()
    assert np.median(error) < 0.01
    landmark_error = error[:, facemodel.landmark_indices]
    assert landmark_error.max() < 0.3  # the Landweber refinement makes vertices (nearly) exact
    unrefined = np.linalg.norm(facemodel.from_uv_map(facemodel.uv_raster().to_map(faces, refine_steps=0)) - faces, axis=-1)
    assert error.mean() < 0.5 * unrefined.mean()


def test_uv_convention_row_zero_is_the_top():
    # a map whose top row is 1 and bottom row 0: v = 1 samples 1, v = 0 samples 0
    ramp = np.linspace(1, 0, 8, dtype=np.float32)[:, None, None] * np.ones((8, 8, 1), np.float32)
    values = sample_vertices(ramp, np.array([[0.5, 1.0], [0.5, 0.0], [0.5, 0.5]]))
    np.testing.assert_allclose(values[:, 0], [1.0, 0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(uv_to_pixel(np.array([[0.0, 1.0]]), (8, 8)), [[-0.5, -0.5]])


def test_linear_attribute_is_reproduced_exactly_inside(facemodel: FaceModel):
    raster = facemodel.uv_raster()
    attr = np.c_[facemodel.uv, np.ones(facemodel.n_vertices)]
    uv_map = raster.to_map(attr, refine_steps=0)
    rows, cols = np.nonzero(raster.coverage)
    np.testing.assert_allclose(uv_map[rows, cols, 0], (cols + 0.5) / 256, atol=1e-4)
    np.testing.assert_allclose(uv_map[rows, cols, 1], 1 - (rows + 0.5) / 256, atol=1e-4)
    np.testing.assert_allclose(uv_map[..., 2], 1.0, atol=1e-6)  # filled outside the face too


def test_masks(facemodel: FaceModel):
    face, weights = facemodel.face_mask(), facemodel.weight_mask()
    assert face.shape == weights.shape == (256, 256) and face.dtype == bool
    assert 0.5 < face.mean() < 0.85
    assert set(np.unique(weights)) == {0.0, 3.0, 4.0}
    assert np.all(weights[~face] == 0) and np.all(weights[face] > 0)
    lm_px = np.round(uv_to_pixel(facemodel.uv[facemodel.landmark_indices], (256, 256))).astype(int)
    for ids in LANDMARK_REGIONS.values():
        x, y = lm_px[ids].T
        assert np.all(weights[y, x] == 4.0)
    x, y = lm_px[0]  # jaw line: face, not a feature
    assert weights[y, x] == 3.0
    small = facemodel.weight_mask(64)
    assert small.shape == (64, 64) and set(np.unique(small)) == {0.0, 3.0, 4.0}
