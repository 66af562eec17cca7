"""Albedo recovery on synthetic faces whose albedo texture is known (``facerecon eval --suite photometric``).

Each face: a random identity and mild expression from the face model's priors, turned within ±45° of yaw,
with a known albedo texture (the face model's mean albedo in UV with a random skin tone, random colours of
lips, brows and eyes, and detail: a broad tint, blotches, mottling, pores and freckles), rendered under a
random SH light (the training data's light prior) into a crop. Our pipeline reconstructs it (network, the
light fitted to the crop, both texture modes); the recovered UV albedo is compared with the truth over the
texels the crop shows (seen with the true geometry) and over the whole UV face region, as it is and after
one gain per channel (one photo cannot tell a brighter albedo from a brighter light). The linear baseline
is the face model's mean albedo.
"""

from __future__ import annotations

import numpy as np

from facerecon_core.eval.synthetic import EVAL_STREAM
from facerecon_core.facemodel import FaceModel

CROP = 256  # the rendered "photo"
TEXTURE = 256  # the compared textures' side
METHODS = ("ours_photo", "ours", "linear")


def known_albedo(model: FaceModel, rng: np.random.Generator, size: int = TEXTURE) -> np.ndarray:
    """(size, size, 3) float32: the mean albedo in UV with a random skin tone and detail."""
    from facerecon_core import imageops

    from facerecon_core.pipeline.photo_texture import texture_masks

    base = model.to_uv_map(model.albedo_mean, size)
    tone = rng.uniform(0.75, 1.15) * rng.uniform(0.92, 1.08, 3)
    face, skin, _ = texture_masks(model, size)
    features = (face & ~skin)[..., None]  # lips, brows, eyes, nostrils: a colour of their own
    base = np.where(features, base * rng.uniform(0.55, 1.1, 3), base)
    detail = np.zeros((size, size), np.float32)
    for cells, amplitude in ((4, 0.15), (8, 0.08), (32, 0.05), (size // 2, 0.04)):  # tint, blotches, mottling, pores
        noise = rng.standard_normal((cells, cells)).astype(np.float32)
        detail += amplitude * imageops.resize(noise, size, size, "cubic")
    spots = rng.random((size, size)) < 0.002  # freckles: darker, browner
    freckles = imageops.resize(spots.astype(np.float32), size // 2, size // 2, "area")
    freckles = imageops.resize(freckles, size, size, "linear")[..., None] * np.float32([0.6, 0.8, 1.0])
    albedo = base * tone * (1.0 + detail[..., None]) * (1.0 - 2.0 * freckles)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def albedo_recovery(ours, model: FaceModel, count: int = 12, seed: int = 0) -> dict:
    """Mean absolute albedo error (per channel, [0, 1]) of each method, over the seen texels and the whole face."""
    from facerecon_core.datasets.scene import sample_sh
    from facerecon_core.detect.crop import Crop
    from facerecon_core.pipeline.light import fit_light
    from facerecon_core.pipeline.photo_texture import photo_texture, texture_masks
    from facerecon_core.pipeline.texture import albedo_texture
    from facerecon_core.pose import CropCamera, euler_to_matrix, to_camera
    from facerecon_core.render.numpy_render import render_mesh_numpy

    camera = CropCamera(CROP)
    face = texture_masks(model, TEXTURE)[0]
    rows = []
    for i in range(count):
        rng = np.random.default_rng([EVAL_STREAM, seed, i, 0xA1BE])
        shape = model.vertices(0.8 * rng.standard_normal(model.n_id), 0.6 * rng.standard_normal(model.n_exp))
        angles = np.radians([rng.uniform(-10, 10), rng.uniform(-45, 45), rng.uniform(-8, 8)])
        centre = (shape.astype(np.float64) @ euler_to_matrix(angles).T).mean(0)
        translation = -centre + [0.0, 0.0, -camera.focal * 260.0 / CROP]
        verts = to_camera(shape.astype(np.float64), angles, translation)
        truth, sh = known_albedo(model, rng), sample_sh(rng).astype(np.float32)
        background = np.clip(rng.normal(0.45, 0.15, (CROP, CROP, 3)), 0, 1).astype(np.float32)
        image, _ = render_mesh_numpy(verts.astype(np.float32), model.triangles, camera.render_camera(), uv=model.uv,
                                     texture=truth, sh=sh, background=background)
        photo = (np.clip(image[0], 0, 1) * 255 + 0.5).astype(np.uint8)
        seen = photo_texture(photo, verts, camera.project, sh, np.full((8, 8, 3), 0.5, np.float32), model,
                             TEXTURE).confidence > 0.5  # with the true geometry and light
        seen &= face

        landmarks = camera.project(verts[model.landmark_indices])
        out = ours.reconstruct_batch(photo[None], landmarks[None])[0]
        size = int(out.extras["crop_size"])
        pred = to_camera(out.shape.astype(np.float64), out.extras["angles"], out.extras["translation"])
        small = Crop(0.0, 0.0, float(CROP), size)
        light = fit_light(small.apply(photo), None, pred, model.from_uv_map(out.extras["albedo_map"]), model,
                          out.extras["sh"]).sh
        to_photo = lambda p: small.to_image(CropCamera(size).project(p))  # noqa: E731
        textures = {
            "ours_photo": photo_texture(photo, pred, to_photo, light, out.extras["albedo_map"], model, TEXTURE).albedo,
            "ours": albedo_texture(out.extras["albedo_map"], model, TEXTURE),
            "linear": (np.clip(model.to_uv_map(model.albedo_mean, TEXTURE), 0, 1) * 255 + 0.5).astype(np.uint8),
        }
        row = {}
        for name, texture in textures.items():
            albedo = texture.astype(np.float32) / 255.0
            # one photo cannot tell a brighter albedo from a brighter light: also the error after one gain per channel
            gain = np.median(truth[seen], axis=0) / np.maximum(np.median(albedo[seen], axis=0), 1e-3)
            error, scaled = (np.abs(a - truth).mean(-1) for a in (albedo, np.clip(albedo * gain, 0, 1)))
            row[name] = {"seen_mae": float(error[seen].mean()), "face_mae": float(error[face].mean()),
                         "seen_mae_gain": float(scaled[seen].mean()), "face_mae_gain": float(scaled[face].mean())}
        rows.append(row)
    summary = {name: {key: float(np.mean([r[name][key] for r in rows])) for key in rows[0][name]}
               for name in METHODS}
    return {"n": count, "seed": seed, "summary": summary, "faces": rows}
