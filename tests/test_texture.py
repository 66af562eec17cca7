"""Unwrapping a photo into UV recovers the texture it was rendered with; the albedo basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon_core.cli import main
from facerecon_core.facemodel import FaceModel
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.render import render_mesh
from facerecon_core.texture import fill_occluded, unwrap_photo


def test_unwrap_recovers_the_rendered_texture(facemodel: FaceModel):
    size, uv_size = 256, 128
    rng = np.random.default_rng(0)
    texture = facemodel.to_uv_map(facemodel.albedo_mean, uv_size) * rng.uniform(0.8, 1.2, 3)
    camera = CropCamera(size)
    angles = np.radians([5.0, 30.0, 0.0])
    verts_cam = to_camera(facemodel.mean_shape, angles, np.array([0.0, 0.0, -camera.focal * 200 / size]))
    sh = np.zeros((3, 9), np.float32)
    sh[:, 0] = 0.9
    with torch.no_grad():
        out = render_mesh(torch.as_tensor(verts_cam, dtype=torch.float32)[None], torch.as_tensor(facemodel.triangles),
                          camera.render_camera(), uv=torch.as_tensor(facemodel.uv),
                          texture=torch.as_tensor(texture, dtype=torch.float32).permute(2, 0, 1)[None],
                          sh=torch.as_tensor(sh)[None])
    image = (out.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    unwrapped = unwrap_photo(image, verts_cam, facemodel, sh, uv_size)
    face = facemodel.face_mask(uv_size)
    seen = unwrapped.visibility
    assert 0.4 < seen[face].mean() < 0.95  # turned 30°: the far cheek is hidden
    assert not seen[~face].any()
    np.testing.assert_allclose(unwrapped.shading[face], 0.9, atol=1e-4)
    error = np.abs(unwrapped.albedo()[seen] - np.clip(texture[seen], 0, 1))
    assert np.median(error) < 0.02 and error.mean() < 0.04
    # the hidden half is filled from its mirror image: the left-right symmetric texture comes back
    filled = fill_occluded(unwrapped.albedo(), seen, np.zeros_like(texture))
    hidden = face & ~seen & seen[:, ::-1]
    assert np.abs(filled[hidden] - np.clip(texture[hidden], 0, 1)).mean() < 0.06


@pytest.mark.slow
def test_albedo_basis_cli_adds_components(facemodel_path, shared_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("image00050.jpg", "image00081.jpg", "image00251.jpg", "image00430.jpg"):
        (photos / name).symlink_to(shared_dir / "faces" / "prnet_aflw2000" / name)
    (photos / "a.jpg").symlink_to(shared_dir / "faces" / "taiwan_expr_faces" / "0101a02.jpg")
    out = tmp_path / "with_basis.npz"
    assert main(["assets", "albedo-basis", "--model", str(facemodel_path), "--out", str(out), "--photos", str(photos),
                 "--components", "3", "--uv-size", "64", "--cache", str(tmp_path / "fits")]) == 0
    printed = capsys.readouterr().out
    assert "3 components explain" in printed
    model = FaceModel.load(out)
    assert model.n_albedo == 3 and model.albedo_basis.shape == (3, model.n_vertices, 3)
    assert 0 <= model.albedo_mean.min() and model.albedo_mean.max() <= 1
    assert np.all(np.diff(model.albedo_scale) <= 0)  # components by decreasing variance
    original = FaceModel.load(facemodel_path)
    assert model.content_hash != original.content_hash
    np.testing.assert_array_equal(model.mean_shape, original.mean_shape)
