"""The whole head (``mesh="head"``): the rig built from the ICT Face Model, the head around a face, its keys,
textures, writers, the CLI, the API and the Blender glue."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facerecon_core.head import shape
from facerecon_core.head.build import RESIDUAL_KEY, build_head
from facerecon_core.head.register import build_head_rig, load_ict_head

PHOTO = "image00050.jpg"  # in the photos fixture's folder


@pytest.fixture(scope="session")
def head_rig(facemodel, shared_dir):
    return build_head_rig(facemodel, load_ict_head(shared_dir / "ict_facekit"))


@pytest.fixture(scope="session")
def recon_head_rig(head_rig, recon_facemodel, tmp_path_factory):
    """The rig for the test reconstructor's face model (the same mean face, another content hash), saved."""
    rig = dataclasses.replace(head_rig, face_model_hash=recon_facemodel.content_hash)
    path = rig.save(tmp_path_factory.mktemp("head") / "head.npz")
    return dataclasses.replace(rig, path=path)


def _face(facemodel, seed: int) -> np.ndarray:
    return facemodel.vertices(np.random.default_rng(seed).standard_normal(facemodel.n_id).astype(np.float32))


def _rec(facemodel, identity=None, exp_coeff=None):
    from facerecon_core.export.blender import sample_reconstruction

    rec = sample_reconstruction(facemodel, exp_coeff=exp_coeff)
    if identity is not None:
        rec.identity_vertices = identity.astype(np.float32)
    return rec


def test_mean_face_gives_ict_head_outside_the_face(head_rig, facemodel):
    head = shape.head_vertices(head_rig, facemodel.mean_shape)
    np.testing.assert_allclose(head, shape.seat(head_rig, head_rig.base), atol=1e-3)
    region = head_rig.base[np.flatnonzero(head_rig.face_region)]
    skin = head_rig.base[: head_rig.skin_count].astype(np.float64)
    # beyond 8 cm of the face area (the back of the head, the neck), the mean face's own shape has faded out
    far = np.array([np.linalg.norm(region - p, axis=1).min() for p in skin[::7]]) > 80.0
    moved = np.linalg.norm(head[: head_rig.skin_count:7] - head_rig.ict_head[: head_rig.skin_count:7], axis=1)
    assert far.sum() > 100 and np.median(moved[far]) < 0.5 and moved[far].max() < 2.5, moved[far].max()


def test_head_reproduces_a_known_face_in_its_face_area(head_rig, facemodel):
    from facerecon_core.eval.head import face_area_distance

    for seed in (1, 2):
        face = _face(facemodel, seed)
        head = shape.head_vertices(head_rig, face)
        mean, p95 = face_area_distance(head, head_rig, face, facemodel.triangles)
        assert mean < 0.5 and p95 < 1.5, (mean, p95)
        # the rest of the head follows the face's identity (ICT's components): not the mean head
        assert np.abs(head - head_rig.base).max() > 2.0


def test_head_mesh_is_manifold_where_ict_is_and_unfolded(head_rig, facemodel, shared_dir):
    from facerecon_core.head.rig import triangulate

    def bad_edges(sizes, corners):
        tris = triangulate(sizes, corners).astype(np.int64)
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        _, counts = np.unique(edges[:, 0] * 10**6 + edges[:, 1], return_counts=True)
        return int((counts > 2).sum()), int((counts == 1).sum())

    ict = load_ict_head(shared_dir / "ict_facekit")
    keep = np.zeros(len(ict["neutral"]), bool)
    keep[head_rig.source_vertices] = True
    sizes, corners = ict["face_sizes"].astype(np.int64), ict["face_vertices"].astype(np.int64)
    poly = np.repeat(np.arange(len(sizes)), sizes)
    kept = np.ones(len(sizes), bool)
    np.logical_and.at(kept, poly, keep[corners])
    assert bad_edges(head_rig.poly_sizes, head_rig.poly_vertices) == bad_edges(sizes[kept], corners[kept[poly]])
    head = build_head(head_rig, _rec(facemodel, _face(facemodel, 3)))
    assert np.isfinite(head.vertices).all() and np.isfinite(head.key_deltas).all()
    tris = head.triangles[(head.triangles < head_rig.skin_count).all(1)]

    def normals(v):
        v = np.asarray(v, np.float64)
        return np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])

    cos = (normals(head.vertices) * normals(head_rig.ict_head)).sum(1)
    assert (cos < 0).mean() < 1e-3  # skin triangles turned over against ICT's own head: a few small ones at most


def test_keys_neutral_eyes_and_jaw(head_rig, facemodel):
    from facerecon_core.eval.head import intersections

    head = build_head(head_rig, _rec(facemodel))
    names = head.key_names
    assert names[:51] == [str(n) for n in head_rig.arkit_names] and names[51] == RESIDUAL_KEY
    np.testing.assert_allclose(head.expressive(np.zeros(len(names))), head.vertices)
    left = head.part("eyeball_left")
    for key in ("eyeLookUpLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookDownLeft"):
        weights = np.zeros(len(names))
        weights[names.index(key)] = 1.0
        turned = head.expressive(weights)
        centre = shape.sphere_centre(head.vertices[left])
        radius = np.linalg.norm(head.vertices[left] - centre, axis=1)
        np.testing.assert_allclose(np.linalg.norm(turned[left] - centre, axis=1), radius, rtol=1e-3)
        assert np.abs(turned[left] - head.vertices[left]).max() > 3.0  # the eyeball turns
        assert np.abs(turned[head.part("eyeball_right")] - head.vertices[head.part("eyeball_right")]).max() < 1e-4
    weights = np.zeros(len(names))
    weights[names.index("jawOpen")] = 1.0
    jaw = head.expressive(weights) - head.vertices
    groups = np.full(head.n_vertices, -1)
    groups[head_rig.interior_vertices] = head_rig.rigid_group
    assert np.linalg.norm(jaw[groups == 3], axis=1).min() > 5.0  # the lower teeth and tongue come down
    assert np.linalg.norm(jaw[groups == 2], axis=1).max() < 1.0  # the upper teeth stay
    for face in (_face(facemodel, 4), facemodel.mean_shape):  # no eyeball through a lid, no tooth through a lip
        crossings = intersections(build_head(head_rig, _rec(facemodel, face)), head_rig)
        assert {v for k, v in crossings.items() if not k.endswith("ICT")} == {0}, crossings


def test_head_textures(head_rig, facemodel):
    rec = _rec(facemodel)
    rec.albedo = np.zeros_like(rec.albedo)
    rec.albedo[..., 0] = 200  # a red face: the skin tone of the rest of the head continues it
    head = build_head(head_rig, rec, photo=None)
    skin = head.skin_texture
    assert skin.shape[1] == 2 * skin.shape[0] and skin.shape[0] >= rec.albedo.shape[0]
    part = head_rig.skin_part[:: head_rig.skin_part.shape[0] // skin.shape[0], :: head_rig.skin_part.shape[1] // skin.shape[1]]
    back = skin[part == 2]  # head and neck: the skin tone
    assert np.abs(back.astype(int) - [200, 0, 0]).max() <= 2
    assert head.eye_texture.shape[0] == head.eye_texture.shape[1]
    # the iris colour comes from the photo: a blue iris inside the eye contours
    photo = np.full((200, 200, 3), 230, np.uint8)
    landmarks = np.zeros((68, 2))
    for eye, x0 in ((slice(36, 42), 40), (slice(42, 48), 120)):
        landmarks[eye] = [[x0, 100], [x0 + 10, 92], [x0 + 30, 92], [x0 + 40, 100], [x0 + 30, 108], [x0 + 10, 108]]
        photo[94:107, x0 + 12:x0 + 28] = (40, 70, 160)
    rec.landmarks_2d = landmarks
    iris = np.asarray(build_head(head_rig, rec, photo=photo).eye_texture, int)
    angle = head_rig.eye_angle.astype(float)
    ring = iris[(angle > 12) & (angle < 20)].mean(0)
    assert ring[2] > ring[0] + 40  # blue


def test_missing_ict_and_rig_give_clear_errors(tmp_path, recon_bundle, recon_facemodel):
    from facerecon_core.facemodel.arkit import RigError
    from facerecon_core.head.rig import HeadError, HeadRig
    from facerecon_core.pipeline import Reconstructor

    with pytest.raises(RigError, match="ICT Face Model data not found"):
        load_ict_head(tmp_path)
    with pytest.raises(HeadError, match="facerecon assets"):
        HeadRig.load(tmp_path / "none.npz")
    with pytest.raises(HeadError, match="facerecon assets"):
        Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", mesh="head", head_rig=tmp_path / "x.npz")
    with pytest.raises(ValueError, match="mesh"):
        Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", mesh="skull")
    assert Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", mesh="face").head_rig is None


@pytest.mark.slow
def test_cli_mesh_head_writes_every_format(recon_bundle, recon_facemodel, recon_head_rig, photos, tmp_path, capsys,
                                           monkeypatch):
    import trimesh

    from facerecon_core.cli import main as cli
    from facerecon_core.export import gltf
    from facerecon_core.export.ply import read_ply
    from facerecon_core.reconstruction import FaceReconstruction

    monkeypatch.setenv("FACERECON_HEAD", str(recon_head_rig.path))
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(photos / PHOTO), "-o", str(out), "--model", str(recon_bundle), "--facemodel",
              str(recon_facemodel.path), "--texture-size", "128", "--device", "cpu", "--mesh", "head"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["image00050.glb", "image00050.mtl", "image00050.npz", "image00050.obj", "image00050.ply",
                     "image00050_albedo.png", "image00050_eyes.png", "image00050_overlay.png"]
    rec = FaceReconstruction.load(out / "image00050.npz")
    head = rec.head
    assert head is not None and head.n_vertices == recon_head_rig.n_vertices and "head" in rec.timings
    obj = (out / "image00050.obj").read_text()
    assert "usemtl eyes" in obj and "usemtl teeth" in obj
    assert any(line.count("/") == 8 for line in obj.splitlines() if line.startswith("f "))  # quads kept
    loaded = trimesh.load(out / "image00050.obj", process=False)
    assert sum(len(g.vertices) for g in loaded.geometry.values()) >= head.n_vertices
    doc, data = gltf.read_glb_json(out / "image00050.glb")
    mesh = doc["meshes"][0]
    assert [doc["materials"][p["material"]]["name"] for p in mesh["primitives"]] == list(head.materials)
    assert mesh["extras"]["targetNames"] == head.key_names and len(mesh["weights"]) == len(head.key_names)
    assert "ICT" in doc["extras"]["licence"]
    skin = mesh["primitives"][0]
    positions = gltf.accessor_array(doc, data, skin["attributes"]["POSITION"])
    jaw = gltf.accessor_array(doc, data, skin["targets"][head.key_names.index("jawOpen")]["POSITION"])
    assert positions.shape == jaw.shape and np.abs(jaw).max() > 5e-3  # metres
    ply = read_ply(out / "image00050.ply")
    assert len(ply["vertices"]) == head.n_vertices


def test_api_and_blender_head(recon_bundle, recon_facemodel, recon_head_rig, photos):
    bpy = pytest.importorskip("bpy")
    from facerecon_core.pipeline import Reconstructor

    reconstructor = Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", texture_size=128,
                                  mesh="head", head_rig=recon_head_rig)
    rec = reconstructor.reconstruct(str(photos / PHOTO))[0]
    assert rec.head is not None
    from blender_addon.services import scene

    bpy.ops.wm.read_homefile(use_empty=True)
    obj, _ = scene.build_face(rec, name="image00050")
    assert obj.name == "image00050" and len(obj.data.vertices) == rec.head.n_vertices
    assert [m.name.split(".")[0] for m in obj.data.materials] == [scene.HEAD_MATERIALS[m] for m in rec.head.materials]
    keys = obj.data.shape_keys.key_blocks
    assert [k.name for k in keys][1:] == rec.head.key_names
    assert keys["jawOpen"].value == pytest.approx(rec.arkit_weights["jawOpen"], abs=1e-6)
    assert {g.name for g in obj.vertex_groups} >= {"eyeball_left", "teeth", "eyelashes_left"}
    assert any(len(p.vertices) == 4 for p in obj.data.polygons)
    assert "ICT" in obj["facerecon_licence"]


@pytest.mark.slow
def test_same_person_head_has_a_key_per_photo(recon_bundle, recon_facemodel, recon_head_rig, shared_dir):
    from facerecon_core.pipeline import Reconstructor

    photos = [shared_dir / "faces" / "jaffe" / name for name in ("KA.HA2.30.tiff", "KA.SU1.36.tiff")]
    reconstructor = Reconstructor(recon_bundle, facemodel=recon_facemodel, device="cpu", texture_size=128,
                                  mesh="head", head_rig=recon_head_rig)
    person = reconstructor.reconstruct_person([str(p) for p in photos])
    rec = person.reconstruction()
    assert rec.head is person.head and rec.head.key_names[-2:] == ["KA.HA2.30", "KA.SU1.36"]
    assert rec.head.key_weights[-2:].tolist() == [0.0, 0.0] and not rec.head.key_weights[:51].any()
    assert np.abs(rec.head.key_deltas[-1]).max() > 0.5  # the surprised photo's expression, carried onto the head
