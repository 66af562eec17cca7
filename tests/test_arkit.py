"""The ARKit keys: registration of the ICT face to ours, the keys' transfer, the weights' solve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon_core.facemodel import arkit
from facerecon_core.pipeline.arkit import ArkitSolver


def _as_ict(facemodel) -> dict[str, np.ndarray]:
    """Our own face model dressed as the ICT data: registering it to itself must be the identity."""
    tri = np.asarray(facemodel.triangles, np.int32)
    names = [source for key in arkit.ARKIT_NAMES for source in arkit.ict_sources(key)]
    deltas = np.stack([facemodel.exp_basis[i % facemodel.n_exp] * (1 + i // facemodel.n_exp) for i in range(len(names))])
    return {"neutral": facemodel.mean_shape / arkit.CM_TO_MM, "face_sizes": np.full(len(tri), 3, np.int32),
            "face_vertices": tri.reshape(-1), "expression_names": np.array(names),
            "expression_deltas": deltas / arkit.CM_TO_MM, "landmark_vertices": facemodel.landmark_indices,
            "notice": "test"}


def test_the_face_model_registered_to_itself_maps_onto_itself(facemodel, monkeypatch):
    monkeypatch.setattr(arkit, "FACE_PART", facemodel.n_vertices)
    ict = _as_ict(facemodel)
    rig = arkit.build_rig(facemodel, ict)
    registration = rig.registration
    assert registration.landmark_mm < 1e-3 and registration.residual_mm < 0.05
    mapped = np.einsum("vk,vkc->vc", registration.barycentric, facemodel.mean_shape[registration.triangles])
    error = np.linalg.norm(mapped - facemodel.mean_shape, axis=1)
    assert error.mean() < 0.01 and np.percentile(error, 99.9) < 0.3  # mm
    key = rig.names.index("jawOpen")
    source = ict["expression_deltas"][list(ict["expression_names"]).index("jawOpen")] * arkit.CM_TO_MM
    assert np.abs(rig.deltas[key] - source).mean() < 0.05


def test_known_arkit_weights_are_solved_back(facemodel):
    solver = ArkitSolver.of(facemodel)
    truth = dict.fromkeys(solver.names, 0.0)
    truth.update(jawOpen=0.6, mouthSmileLeft=0.5, mouthSmileRight=0.3, browInnerUp=0.4, eyeBlinkRight=0.8)
    offsets = np.tensordot(np.array(list(truth.values()), np.float32), solver.deltas, axes=(0, 0))
    solution = solver.solve(offsets)
    for name, weight in truth.items():
        assert solution.weights[name] == pytest.approx(weight, abs=0.1), name
    explained = np.tensordot(np.array(list(solution.weights.values()), np.float32), solver.deltas, axes=(0, 0))
    np.testing.assert_allclose(explained + solution.residual, offsets, atol=1e-4)  # keys + residual: exact


def test_split_around_the_rest_keeps_the_posed_face_and_gives_the_rest_to_the_identity(facemodel):
    solver = ArkitSolver.of(facemodel)
    rng = np.random.default_rng(3)
    truth = np.zeros(len(solver.names))
    truth[[solver.names.index(n) for n in ("jawOpen", "mouthSmileLeft", "browDownLeft")]] = (0.6, 0.5, 0.2)
    identity = facemodel.mean_shape.astype(np.float32)
    residual = (0.2 * rng.standard_normal(identity.shape)).astype(np.float32)  # what no key gives
    expression = np.tensordot(truth.astype(np.float32), solver.deltas, axes=(0, 0)) + residual
    rest = solver.rest_vector({"browDownLeft": 0.3, "jawOpen": 0.1})
    ident, expr, w = solver.split(identity, expression, rest)
    np.testing.assert_allclose(ident + expr, identity + expression, atol=1e-4)  # the posed face is unchanged
    np.testing.assert_allclose(expr, np.tensordot(w.astype(np.float32), solver.deltas, axes=(0, 0)), atol=1e-5)
    assert w[solver.names.index("browDownLeft")] == 0.0  # below the rest: none
    assert abs(w[solver.names.index("jawOpen")] - 0.5) < 0.05
    assert abs(w[solver.names.index("mouthSmileLeft")] - 0.5) < 0.05
    _, _, zero = solver.split(identity, expression)  # no rest: the plain solve
    np.testing.assert_allclose(zero, solver.weights(expression))
    with pytest.raises(ValueError, match="lacks"):
        solver.rest_vector({"notAKey": 0.1})


def test_jaw_open_opens_the_mouth_without_crossing_the_lips(facemodel):
    solver = ArkitSolver.of(facemodel)
    lm = facemodel.landmark_indices
    opened = facemodel.mean_shape + solver.deltas[solver.names.index("jawOpen")]
    upper, lower = lm[61:64], lm[65:68]  # inner upper and lower lip
    gap_before = facemodel.mean_shape[upper, 1].mean() - facemodel.mean_shape[lower, 1].mean()
    gap_after = opened[upper, 1].min() - opened[lower, 1].max()
    assert gap_after > gap_before + 15.0  # mm: open
    assert opened[lm[8], 1] < facemodel.mean_shape[lm[8], 1] - 10.0  # the chin goes down
    for top, bottom in ((61, 67), (62, 66), (63, 65)):  # each inner-lip pair: the upper stays above the lower
        assert opened[lm[top], 1] > opened[lm[bottom], 1] + 10.0, (top, bottom)
    labels = arkit.lip_lid_labels(facemodel.mean_shape.astype(np.float64), facemodel.mean_shape[lm].astype(np.float64))
    middle = np.abs(facemodel.mean_shape[:, 0] - facemodel.mean_shape[lm[62], 0]) < 8.0  # the lips' middle
    lips = middle & (np.abs(facemodel.mean_shape[:, 1] - facemodel.mean_shape[lm[62], 1]) < 12.0)
    upper_lip, lower_lip = lips & (labels == arkit.UPPER_LIP), lips & (labels == arkit.LOWER_LIP)
    assert opened[upper_lip, 1].min() > opened[lower_lip, 1].max()  # no lower-lip vertex above an upper one


def test_left_keys_move_the_subjects_left(facemodel):
    """ARKit's ``Left`` is the subject's left: x > 0 in our frame."""
    solver = ArkitSolver.of(facemodel)
    x = facemodel.mean_shape[:, 0]
    for name in ("mouthSmileLeft", "eyeBlinkLeft", "browOuterUpLeft", "cheekSquintLeft"):
        moved = np.linalg.norm(solver.deltas[solver.names.index(name)], axis=1)
        assert moved[x > 5].sum() > 5 * moved[x < -5].sum(), name


def test_the_rig_is_in_the_asset_with_its_licence(facemodel):
    assert facemodel.has_arkit and list(facemodel.arkit_names) == list(arkit.ARKIT_NAMES)
    assert facemodel.arkit_deltas.shape == (51, facemodel.n_vertices, 3)
    assert "MIT License" in facemodel.arkit_notice and "ICT" in facemodel.arkit_notice
    assert facemodel.arkit_fit_mm[0] < 1.0  # mean distance to the ICT face after the warp, mm


def test_without_the_ict_data_the_asset_builds_and_loads_without_keys(shared_dir, tmp_path):
    from facerecon_core.facemodel import FaceModel
    from facerecon_core.facemodel.build import build_facemodel

    report = build_facemodel(tmp_path / "plain.npz", shared_dir / "bfm", ict=tmp_path / "nowhere")
    assert "no ARKit keys" in report.summary() and "nowhere/ict_facekit.npz" in report.summary()
    model = FaceModel.load(tmp_path / "plain.npz")
    assert not model.has_arkit
    with pytest.raises(ValueError, match="no ARKit keys"):
        ArkitSolver.of(model)
    with pytest.raises(arkit.RigError, match="ICT Face Model data not found"):
        arkit.load_ict(Path(tmp_path / "nowhere"))
