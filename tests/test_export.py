"""Export writers (OBJ, GLB, PLY, NPZ, overlay) and the FaceReconstruction container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facerecon_core import export
from facerecon_core.export import gltf, obj, ply
from facerecon_core.io.images import to_uint8
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.reconstruction import FaceReconstruction

PHOTO_H, PHOTO_W = 360, 480
CROP_BOX = (150.0, 60.5, 250.0)
CROP_SIZE = 224


@pytest.fixture(scope="module")
def rec(facemodel) -> FaceReconstruction:
    exp = np.zeros(facemodel.n_exp, np.float32)
    exp[:3] = (2.0, -1.5, 1.0)
    offsets = facemodel.expression_offsets(exp).astype(np.float32)
    identity = facemodel.mean_shape.astype(np.float32)
    angles = np.array([0.1, -0.3, 0.05])
    translation = np.array([5.0, -8.0, -1100.0])
    lm3d = (identity + offsets)[facemodel.landmark_indices]
    left, top, side = CROP_BOX
    lm2d = CropCamera(CROP_SIZE).project(to_camera(lm3d.astype(np.float64), angles, translation)) * side / CROP_SIZE
    sh = np.zeros((3, 9))
    sh[:, 0] = 0.9
    sh[:, 1:4] = (0.1, 0.25, 0.2)  # light from above, front and image right
    return FaceReconstruction(
        identity_vertices=identity, expression_offsets=offsets, triangles=facemodel.triangles, uvs=facemodel.uv,
        albedo=to_uint8(facemodel.to_uv_map(facemodel.albedo_mean, 256)), angles=angles, translation=translation,
        sh=sh, landmarks_2d=lm2d + (left, top), landmarks_3d=lm3d, crop_box=np.array(CROP_BOX), crop_size=CROP_SIZE,
        confidence=0.93, timings={"detect": 12.5, "network": 80.0}, source="photos/p.jpg",
    )


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    yy, xx = np.mgrid[0:PHOTO_H, 0:PHOTO_W]
    img = np.stack([xx / PHOTO_W, yy / PHOTO_H, 0.5 + 0.0 * xx], -1) * 200 + 20
    return img.astype(np.uint8)


def _trimesh_geometry(path: Path):
    import trimesh

    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        (loaded,) = loaded.geometry.values()
    return loaded


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_reconstruction_helpers_and_npz_round_trip(rec, tmp_path):
    assert rec.n_vertices == 38365 and len(rec.triangles) == 76073
    np.testing.assert_array_equal(rec.vertices(), rec.identity_vertices + rec.expression_offsets)
    cam = rec.camera_vertices()
    assert cam.shape == (38365, 3) and cam[:, 2].max() < -900
    # The photo camera agrees with the crop camera + crop box mapping (render pixels are corner-based).
    for window in (None, (100, 50, 400, 300)):
        camera = rec.photo_camera(window)
        x0, y0 = (int(np.floor(CROP_BOX[0])), int(np.floor(CROP_BOX[1]))) if window is None else window[:2]
        np.testing.assert_allclose(camera.to_pixels(cam) - 0.5 + (x0, y0), rec.project_to_photo(cam), atol=1e-9)
    path = export.write_npz(rec, tmp_path / "face.npz")
    with np.load(path, allow_pickle=False) as data:
        assert "identity_vertices" in data.files
    back = FaceReconstruction.load(path)
    for name in ("identity_vertices", "expression_offsets", "triangles", "uvs", "albedo", "angles", "translation",
                 "sh", "landmarks_2d", "landmarks_3d", "crop_box"):
        a, b = getattr(rec, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert (back.crop_size, back.confidence, back.timings, back.source) == (
        rec.crop_size, rec.confidence, rec.timings, rec.source)
    no_timings = FaceReconstruction(**{**rec.__dict__, "timings": {}, "source": ""})
    back = FaceReconstruction.from_arrays(no_timings.to_arrays())
    assert back.timings == {} and back.source == ""


def test_reconstruction_validates_shapes(rec):
    with pytest.raises(ValueError, match="expression_offsets"):
        FaceReconstruction(**{**rec.__dict__, "expression_offsets": rec.expression_offsets[:-1]})


def test_obj_loads_back(rec, tmp_path):
    paths = export.write_obj(rec, tmp_path / "face.obj")
    assert [p.name for p in paths] == ["face.obj", "face.mtl", "face_albedo.png"]
    assert _listing(tmp_path) == ["face.mtl", "face.obj", "face_albedo.png"]
    text = paths[0].read_text()
    assert "# units: metres" in text and "mtllib face.mtl" in text
    assert "map_Kd face_albedo.png" in paths[1].read_text()
    mesh = _trimesh_geometry(paths[0])
    assert mesh.vertices.shape == (38365, 3) and mesh.faces.shape == (76073, 3)
    np.testing.assert_allclose(mesh.vertices, rec.vertices() * 1e-3, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, rec.triangles)
    np.testing.assert_allclose(mesh.visual.uv, rec.uvs, atol=1e-5)
    image = np.asarray(mesh.visual.material.image.convert("RGB"))
    np.testing.assert_array_equal(image, rec.albedo)
    # Outward normals: the face looks toward +z.
    assert mesh.vertex_normals[rec.vertices()[:, 2] > np.percentile(rec.vertices()[:, 2], 90)][:, 2].mean() > 0.5


def test_glb_morph_target_and_texture(rec, tmp_path):
    path = export.write_glb(rec, tmp_path / "face.glb", texture_size=128)
    mesh = _trimesh_geometry(path)
    assert mesh.vertices.shape == (38365, 3) and mesh.faces.shape == (76073, 3)
    np.testing.assert_allclose(mesh.vertices, rec.identity_vertices * 1e-3, atol=1e-6)
    np.testing.assert_allclose(mesh.visual.uv, rec.uvs, atol=1e-6)
    assert mesh.visual.material.baseColorTexture.size == (128, 128)

    doc, data = gltf.read_glb_json(path)
    (m,) = doc["meshes"]
    assert m["extras"]["targetNames"] == ["Expression"] and m["weights"] == [1.0]
    (prim,) = m["primitives"]
    (target,) = prim["targets"]
    offsets = gltf.accessor_array(doc, data, target["POSITION"])
    np.testing.assert_allclose(offsets, rec.expression_offsets * 1e-3, rtol=1e-6, atol=1e-9)
    assert np.abs(offsets).max() > 1e-3  # the expression moves vertices by millimetres
    acc = doc["accessors"][target["POSITION"]]
    np.testing.assert_allclose(acc["min"], offsets.min(0)) and np.testing.assert_allclose(acc["max"], offsets.max(0))
    normals = gltf.accessor_array(doc, data, prim["attributes"]["NORMAL"])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    morphed = normals + gltf.accessor_array(doc, data, target["NORMAL"])
    np.testing.assert_allclose(np.linalg.norm(morphed, axis=1), 1.0, atol=1e-5)
    material = doc["materials"][prim["material"]]
    image = doc["images"][doc["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]["source"]]
    assert image["mimeType"] == "image/png"
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["byteOffset"] + view["byteLength"] <= len(data)
    json.dumps(doc)


def test_ply_round_trip(rec, tmp_path):
    path = export.write_ply(rec, tmp_path / "face.ply")
    back = ply.read_ply(path)
    np.testing.assert_allclose(back["vertices"], rec.vertices() * 1e-3, atol=1e-7)
    np.testing.assert_array_equal(back["faces"], rec.triangles)
    mesh = _trimesh_geometry(path)
    assert mesh.vertices.shape == (38365, 3) and mesh.faces.shape == (76073, 3)
    colors = mesh.visual.vertex_colors[:, :3]
    np.testing.assert_array_equal(colors, back["colors"])
    # Vertex colours are the texture at the UVs ≈ the per-vertex mean albedo the texture came from.
    assert 60 < colors.mean() < 230 and colors.std() > 5


def test_overlay(rec, photo, tmp_path):
    path = export.write_overlay(rec, photo, tmp_path / "face_overlay.png")
    import cv2

    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert image.shape == photo.shape
    _, mask = export.overlay.render_face(rec, PHOTO_H, PHOTO_W)
    assert mask.sum() > 5000
    diff = np.abs(image.astype(int) - photo.astype(int)).sum(-1)
    assert (diff[mask] > 10).mean() > 0.9
    far = np.ones_like(mask)
    far[40:340, 120:440] = False
    assert (diff[far] == 0).all()  # nothing drawn far from the face
    # The face lies where the landmarks are: the nose tip (30) projects inside the rendered face.
    x, y = np.round(rec.landmarks_2d[30]).astype(int)
    assert mask[y, x]


def test_overlay_partly_outside_photo(rec, photo):
    moved = FaceReconstruction(**{**rec.__dict__, "crop_box": np.array([-120.0, 200.0, 250.0]),
                                  "landmarks_2d": rec.landmarks_2d + (-270.0, 139.5)})
    out = export.overlay_image(moved, photo)
    assert out.shape == photo.shape and (out != photo).any()


def test_write_all(rec, photo, tmp_path):
    paths = export.write_all(rec, photo, tmp_path / "out", "p1", texture_size=64)
    names = [p.name for p in paths]
    assert names == ["p1.obj", "p1.mtl", "p1_albedo.png", "p1.glb", "p1.ply", "p1.npz", "p1_overlay.png"]
    assert _listing(tmp_path / "out") == sorted(names)
    assert _trimesh_geometry(paths[0]).visual.material.image.size == (64, 64)
    assert FaceReconstruction.load(paths[5]).albedo.shape == (256, 256, 3)  # the NPZ keeps the original
    only = export.write_all(rec, None, tmp_path / "only", "p2", formats=("npz",))
    assert [p.name for p in only] == ["p2.npz"]
    with pytest.raises(ValueError, match="unknown export format"):
        export.write_all(rec, photo, tmp_path / "bad", "p3", formats=("obj", "fbx"))
    assert not (tmp_path / "bad").exists() or _listing(tmp_path / "bad") == []


def test_failing_writer_leaves_nothing(rec, photo, tmp_path, monkeypatch):
    (tmp_path / "face.mtl").write_text("old")

    def boom(triangles):
        raise RuntimeError("disk full")

    monkeypatch.setattr(obj, "_face_lines", boom)  # fails after v/vt/vn were written
    with pytest.raises(RuntimeError, match="disk full"):
        export.write_obj(rec, tmp_path / "face.obj")
    assert _listing(tmp_path) == ["face.mtl"] and (tmp_path / "face.mtl").read_text() == "old"
    # write_all removes what it already wrote for the face (glb, ply) when a later format fails.
    monkeypatch.undo()
    monkeypatch.setattr(export, "write_npz", lambda rec, path: (_ for _ in ()).throw(RuntimeError("npz failed")))
    out = tmp_path / "all"
    with pytest.raises(RuntimeError, match="npz failed"):
        export.write_all(rec, photo, out, "face", formats=("glb", "ply", "npz"))
    assert _listing(out) == []


def test_export_imports_without_torch():
    code = ("import sys, facerecon_core.export, facerecon_core.reconstruction, facerecon_core.render.numpy_render; "
            "assert 'torch' not in sys.modules")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)
