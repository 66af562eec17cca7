"""Several photos of one person → one head (facerecon_core.pipeline.same_person, ``--same-person``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facerecon_core.pipeline.same_person import combine_identities, combine_textures, repose, unique_names
from facerecon_core.pose import euler_to_matrix
from facerecon_core.reconstruction import FaceReconstruction
from test_reconstruct import cli, listing


def _identities(facemodel, count: int = 5, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = facemodel.vertices(rng.standard_normal(facemodel.n_id)).astype(np.float64)
    noisy = truth + rng.normal(0.0, noise, (count,) + truth.shape)
    return truth, noisy


def test_identity_error_falls_as_photos_are_added(facemodel):
    truth, noisy = _identities(facemodel, count=8)
    region = facemodel.face_vertices()
    errors = []
    for n in (1, 2, 4, 8):
        shape, weights = combine_identities(noisy[:n], np.zeros(n), np.ones(n), region)
        assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
        errors.append(np.sqrt(((shape[region] - truth[region]) ** 2).sum(-1).mean()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.45 * errors[0]


def test_a_wrong_photo_is_outvoted_and_frontal_photos_count_more(facemodel):
    truth, noisy = _identities(facemodel, count=5)
    region = facemodel.face_vertices()
    other = facemodel.vertices(np.random.default_rng(9).standard_normal(facemodel.n_id))
    stack = np.concatenate([noisy, other[None]])
    shape, weights = combine_identities(stack, np.zeros(6), np.ones(6), region)
    assert weights[-1] < 0.3 * weights[:-1].min()

    def rms(x):
        return np.sqrt(((x[region] - truth[region]) ** 2).sum(-1).mean())

    assert rms(shape) < 0.6 * rms(stack.mean(0))  # closer than the plain mean
    _, weights = combine_identities(noisy[:2], np.radians([0.0, 70.0]), np.ones(2), region)
    assert weights[0] > 3 * weights[1]


def test_repose_keeps_the_face_where_the_photo_shows_it(facemodel):
    truth, noisy = _identities(facemodel, count=1, noise=0.5)
    region = facemodel.face_vertices()
    angles, translation = np.radians([5.0, -20.0, 3.0]), np.array([4.0, -2.0, -600.0])
    rec = FaceReconstruction(
        identity_vertices=noisy[0], expression_offsets=np.zeros_like(truth), triangles=facemodel.triangles,
        uvs=facemodel.uv, albedo=np.zeros((8, 8, 3), np.uint8), angles=angles, translation=translation,
        sh=np.zeros((3, 9)), landmarks_2d=np.zeros((68, 2)), landmarks_3d=np.zeros((68, 3)),
        crop_box=np.array([0.0, 0.0, 256.0]), crop_size=256, confidence=1.0)
    new_angles, new_translation = repose(rec, truth, region)
    assert np.degrees(np.abs(new_angles - angles)).max() < 0.5
    moved = truth @ euler_to_matrix(new_angles).T + new_translation
    assert np.sqrt(((moved[region] - rec.camera_vertices()[region]) ** 2).sum(-1).mean()) < 1.02 * 0.5 * np.sqrt(3)  # the noise


def test_textures_join_where_each_photo_sees_and_match_colour():
    size = 64
    left, right = np.zeros((size, size)), np.zeros((size, size))
    left[:, :36], right[:, 28:] = 1.0, 1.0
    a = np.full((size, size, 3), 120, np.uint8)
    b = np.full((size, size, 3), 150, np.uint8)  # the same skin under a brighter light
    b[:, 48:] = (150, 60, 60)  # something only the right photo shows
    skin = np.ones((size, size), bool)
    texture, confidence = combine_textures([a, b], [left, right], skin, ranks=np.array([2.0, 1.0]))
    assert np.abs(texture[:, 5].astype(int) - 120).max() <= 1  # the top photo where it sees
    assert np.abs(texture[:, 40].astype(int) - 120).max() <= 2  # the other, its colour matched to the top one's
    assert texture[:, 60, 0].mean() > 110 and texture[:, 60, 1].mean() < 60  # what only it shows, kept
    assert confidence.min() == pytest.approx(1.0)


def test_unique_names():
    assert unique_names(["a", "b", "A", "", "a"]) == ["a", "b", "A_2", "photo", "a_3"]


def test_person_from_photos_api_and_npz(reconstructor, photos, tmp_path):
    from facerecon_core.export import write_npz

    files = [photos / "image00050.jpg", photos / "image00050.jpg", tmp_path / "missing.jpg"]
    person = reconstructor.reconstruct_person(files, name="me")
    assert person.names == ["image00050", "image00050_2"] and person.skipped[0][0] == "missing"
    assert person.weights == pytest.approx([0.5, 0.5])
    for rec in person.photos:
        np.testing.assert_array_equal(rec.identity_vertices, person.identity_vertices)
        np.testing.assert_array_equal(rec.albedo, person.photos[0].albedo)
    merged = person.reconstruction()
    assert not merged.expression_offsets.any() and set(merged.photo_expressions) == set(person.names)
    loaded = FaceReconstruction.load(write_npz(merged, tmp_path / "me.npz"))
    np.testing.assert_allclose(loaded.photo_expressions["image00050_2"], person.photos[1].expression_offsets)
    if merged.arkit_weights is not None:
        assert loaded.photo_arkit["image00050"] == pytest.approx(person.photos[0].arkit_weights, abs=1e-6)
    with pytest.raises(Exception, match="missing"):
        reconstructor.reconstruct_person([tmp_path / "missing.jpg"])


@pytest.mark.slow
def test_cli_same_person_writes_one_head_with_a_target_per_photo(recon_bundle, recon_facemodel, photos,
                                                                 tmp_path, capsys):
    from facerecon_core.export import gltf

    out = tmp_path / "out"
    second = tmp_path / "again.jpg"
    second.write_bytes((photos / "image00050.jpg").read_bytes())
    rc = cli(["reconstruct", "--same-person", str(photos / "image00050.jpg"), str(second), "-o", str(out),
              "--name", "person", "--model", str(recon_bundle), "--facemodel", str(recon_facemodel.path),
              "--texture-size", "128", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert listing(out) == ["person.glb", "person.mtl", "person.npz", "person.obj", "person.ply", "person_again_overlay.png",
                            "person_albedo.png", "person_image00050_overlay.png"]
    assert "one person from 2 of 2 input(s)" in capsys.readouterr().out
    doc, data = gltf.read_glb_json(out / "person.glb")
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"][-2:] == ["image00050", "again"] and mesh["weights"][-2:] == [0.0, 0.0]
    rec = FaceReconstruction.load(out / "person.npz")
    target = gltf.accessor_array(doc, data, mesh["primitives"][0]["targets"][-1]["POSITION"])
    assert np.abs(target - rec.photo_expressions["again"] * 1e-3).max() < 1e-4
    assert cli(["reconstruct", "--same-person", "--all-faces", str(second), "-o", str(out)]) == 2


def test_person_shape_keys_in_blender_mesh_data(facemodel):
    from facerecon_core.export.blender import face_mesh_data, sample_reconstruction, to_blender

    rec = sample_reconstruction(facemodel, texture_size=16)
    rec = dataclasses.replace(rec, photo_expressions={"a": np.ones_like(rec.expression_offsets)})
    data = face_mesh_data(rec)
    np.testing.assert_allclose(data.photo_keys["a"] - data.basis, to_blender(rec.photo_expressions["a"]), atol=1e-6)
