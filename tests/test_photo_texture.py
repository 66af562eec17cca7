"""The photo-detail texture on scenes with a known answer: a face rendered with a known albedo texture under a
known light is recovered; hidden texels take their mirror's colour; a hair band and a greyscale photo; a face
that reaches past the photo's border."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon_core.facemodel.preview import frontal_light
from facerecon_core.pipeline.photo_texture import photo_texture, texture_masks
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.render.numpy_render import render_mesh_numpy

SIZE = 512  # the "photo"
T = 256  # the texture


def _true_texture() -> np.ndarray:
    """A skin-like albedo with detail, symmetric about u = 0.5 (so a mirrored texel has the same colour)."""
    y, x = np.mgrid[0:T, 0:T] / T
    x = np.abs(x - 0.5)
    base = np.stack([0.78 - 0.1 * y, 0.58 - 0.08 * y, 0.48 - 0.05 * y], -1)
    detail = 0.06 * np.sin(2 * np.pi * 14 * x)[..., None] * np.cos(2 * np.pi * 9 * y)[..., None]
    return np.clip(base + detail, 0, 1).astype(np.float32)


def _scene(facemodel, yaw_deg=0.0, shift=(0.0, 0.0)):
    camera = CropCamera(SIZE)
    verts = to_camera(facemodel.mean_shape.astype(np.float64), np.radians([0.0, yaw_deg, 0.0]),
                      np.array([shift[0], shift[1], -camera.focal * 300.0 / SIZE]))
    sh = frontal_light(ambient=0.8, diffuse=0.35).astype(np.float32)
    texture = _true_texture()
    image, _ = render_mesh_numpy(verts.astype(np.float32), facemodel.triangles, camera.render_camera(), uv=facemodel.uv,
                                 texture=texture, sh=sh, background=np.full((SIZE, SIZE, 3), 0.2, np.float32))
    photo = (np.clip(image[0], 0, 1) * 255 + 0.5).astype(np.uint8)
    return photo, verts, camera.project, sh, texture


def _run(facemodel, photo, verts, project, sh, network=(128, 128, 128)):
    albedo_map = np.empty((64, 64, 3), np.float32)
    albedo_map[:] = np.float32(network) / 255
    return photo_texture(photo, verts, project, sh, albedo_map, facemodel, T)


def test_a_known_albedo_under_a_known_light_is_recovered(facemodel):
    photo, verts, project, sh, truth = _scene(facemodel)
    result = _run(facemodel, photo, verts, project, sh)
    face, skin, _ = texture_masks(facemodel, T)
    seen = (result.confidence > 0.9) & face
    assert ((result.confidence > 0.5) & face).sum() > 0.5 * face.sum()  # frontal: all but the sides that turn away
    error = np.abs(result.albedo.astype(np.float32) / 255 - truth)[seen].mean()
    assert error < 0.02, error  # de-lit by the known light: the albedo, within resampling
    network_error = np.abs(128 / 255 - truth)[seen].mean()
    assert error < 0.2 * network_error
    assert not result.greyscale


def test_a_turned_head_fills_hidden_texels_from_their_mirror(facemodel):
    photo, verts, project, sh, truth = _scene(facemodel, yaw_deg=55.0)
    result = _run(facemodel, photo, verts, project, sh)
    face = texture_masks(facemodel, T)[0]
    hidden = face & (result.photo_albedo.max(-1) == 0) & (result.confidence > 0.5)  # seen only through the mirror
    assert hidden.sum() > 500
    error = np.abs(result.albedo.astype(np.float32) / 255 - truth)[hidden].mean()
    assert error < 0.05, error  # the mirror's colour (the truth is symmetric), not the network's grey


def test_a_hair_band_over_the_forehead_is_refused(facemodel):
    photo, verts, project, sh, truth = _scene(facemodel)
    lm = project(verts[facemodel.landmark_indices])
    brow_y, top_y = lm[17:27, 1].min(), project(verts)[:, 1].min()
    band = slice(int(top_y), int(0.5 * (top_y + brow_y)))
    photo = photo.copy()
    photo[band] = (58, 40, 28)  # dark brown hair across the upper forehead
    result = _run(facemodel, photo, verts, project, sh)
    texel_y = _texel_photo_y(facemodel, verts, project)
    under = texture_masks(facemodel, T)[1] & (texel_y > band.start + 3) & (texel_y < band.stop - 3)
    assert under.sum() > 200
    assert np.median(result.confidence[under]) < 0.3
    colour = result.albedo.astype(np.float32)[under] / 255
    assert np.abs(colour - truth[under]).mean() < 0.12  # skin from around and the network, never the hair
    assert colour.mean() > 2 * 40 / 255


def test_a_greyscale_photo_gives_a_grey_texture(facemodel):
    photo, verts, project, sh, _ = _scene(facemodel)
    grey = np.repeat(photo.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    result = _run(facemodel, grey, verts, project, sh, network=(190, 120, 100))
    assert result.greyscale
    assert np.ptp(result.albedo.astype(int), axis=-1).max() <= 1  # no colour anywhere, blotches or not


def test_a_face_past_the_photo_border_takes_no_sample_outside(facemodel):
    photo, verts, project, sh, _ = _scene(facemodel, shift=(110.0, 0.0))  # the face's left part leaves the photo
    result = _run(facemodel, photo, verts, project, sh)
    texel_x = _texel_photo_x(facemodel, verts, project)
    outside = texture_masks(facemodel, T)[0] & (texel_x > SIZE + 2)
    assert outside.sum() > 100
    assert result.confidence[outside].max() < 0.05 or (result.photo_albedo[outside].max(-1) == 0).all()


def _texel_photo(facemodel, verts, project) -> np.ndarray:
    from facerecon_core.pipeline.photo_texture import uv_layout

    layout = uv_layout(facemodel, T)
    return layout.interpolate(project(verts))


def _texel_photo_x(facemodel, verts, project):
    return _texel_photo(facemodel, verts, project)[..., 0]


def _texel_photo_y(facemodel, verts, project):
    return _texel_photo(facemodel, verts, project)[..., 1]


def test_texture_modes_of_the_pipeline(shared_dir, facemodel_path, tmp_path):
    """`texture="photo"` (default) carries the confidence map through the API and the .npz; "network" does not;
    an unknown mode is refused."""
    from facerecon_core.export import write_npz
    from facerecon_core.reconstruction import FaceReconstruction
    from facerecon_core.pipeline import Reconstructor

    photo = shared_dir / "faces" / "prnet_aflw2000" / "image00050.jpg"
    rec = Reconstructor(facemodel=facemodel_path, texture_size=256)
    assert rec.texture == "photo"
    face = rec.reconstruct(photo)[0]
    assert face.texture_confidence.shape == (256, 256) and face.texture_confidence.max() > 0.9
    again = FaceReconstruction.load(write_npz(face, tmp_path / "face.npz"))
    np.testing.assert_allclose(again.texture_confidence, face.texture_confidence, atol=1 / 255)
    rec.texture = "network"
    plain = rec.reconstruct(photo)[0]
    assert plain.texture_confidence is None and not np.array_equal(plain.albedo, face.albedo)
    with pytest.raises(ValueError, match="texture 'detail'"):
        Reconstructor(facemodel=facemodel_path, texture="detail")


def test_samples_inside_the_mouth_opening_never_land_on_the_lips(facemodel):
    """The photo's mouth opening (here drawn around the lips) is refused: no texel takes a sample from inside it."""
    photo, verts, project, sh, _ = _scene(facemodel)
    lips = project(verts[facemodel.landmark_indices[48:60]])
    centre = lips.mean(0)
    opening = centre + (lips[::-1][:8] - centre) * [1.0, 2.5]  # an outline around the mouth, 8 points
    albedo_map = np.full((64, 64, 3), 0.5, np.float32)
    result = photo_texture(photo, verts, project, sh, albedo_map, facemodel, T, mouth=opening)
    from facerecon_core.facemodel.uvmap import inside_polygon

    texel_xy = _texel_photo(facemodel, verts, project)
    inside = inside_polygon(texel_xy, opening) & texture_masks(facemodel, T)[0]
    assert inside.sum() > 50
    assert (result.photo_albedo[inside].max(-1) == 0).mean() > 0.95  # own photo refused there


def test_layers_pass_to_the_one_below_without_a_line():
    """Where the photo's weight falls across its outline, the texture goes from the photo's colour to the layer
    below's without dipping below or rising above both (a switch at one threshold left a thin line there)."""
    from facerecon_core.pipeline.photo_texture import compose_layers

    size = 64
    columns = np.clip((np.arange(size) - 20) / 24.0, 0.0, 1.0)  # the photo's weight: 0 on the left, 1 on the right
    confidence = np.tile(columns, (size, 1)).astype(np.float32)
    albedo = np.full((size, size, 3), 0.6, np.float32)
    albedo[:, :, 0] = 0.7
    albedo[:, :28] = 0.25  # what the photo shows beyond the face's outline (dark), where its weight is low
    network = np.full((size, size, 3), 0.5, np.float32)
    blended = compose_layers(albedo, network, confidence, np.zeros_like(confidence))
    row = blended[size // 2, :, 1]
    assert np.abs(blended[:, :8] - 0.5).max() < 0.02 and np.abs(blended[:, -8:, 1] - 0.6).max() < 0.02
    assert row.min() > 0.45, row  # the dark pixels at weight < 0.3 stay out of every band
    assert np.abs(np.diff(row)).max() < 0.02, np.diff(row)  # no step from one texel to the next
