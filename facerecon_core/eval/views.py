"""Renders for looking at results: a reconstruction (or its whole head) from the front, three-quarter and profile,
textured or grey clay, with or without the expression; and the README's figures (``docs/images/``: the texture
modes, the heads, every ARKit key on the mean face, the ICT registration's distances)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerecon_core.facemodel.preview import frontal_light
from facerecon_core.reconstruction import FaceReconstruction

VIEWS = {"front": 0.0, "three-quarter": 35.0, "profile": 80.0}
CLAY = (0.72, 0.70, 0.68)


def render_view(rec: FaceReconstruction, yaw_deg: float = 0.0, size: int = 256, textured: bool = True,
                expression: bool = True, background=(0.16, 0.16, 0.18)) -> np.ndarray:
    """(size, size, 3) float in [0, 1]: the face turned by ``yaw_deg`` (its own pose removed), under a soft
    frontal light, textured with its albedo or in grey clay, with its expression or neutral."""
    from facerecon_core.pose import CropCamera, euler_to_matrix
    from facerecon_core.render.numpy_render import render_mesh_numpy

    verts = (rec.vertices() if expression else rec.identity_vertices).astype(np.float64)
    verts = (verts - verts.mean(0)) @ euler_to_matrix(np.radians([0.0, yaw_deg, 0.0])).T
    camera = CropCamera(size)
    verts = (verts + [0.0, 0.0, -camera.focal * 200.0 / size]).astype(np.float32)
    sh = frontal_light(ambient=0.85, diffuse=0.3, direction=(-0.3, 0.4, 1.0)).astype(np.float32)
    shading = {"uv": rec.uvs, "texture": rec.albedo} if textured else \
        {"vertex_colors": np.tile(np.float32(CLAY), (rec.n_vertices, 1))}
    image, _ = render_mesh_numpy(verts, rec.triangles, camera.render_camera(), sh=sh,
                                 background=np.broadcast_to(np.float32(background), (size, size, 3)), **shading)
    return np.clip(image[0], 0.0, 1.0)


def texture_modes_figure(photos: list[str | Path], out: Path, size: int = 160, texture_size: int = 1024,
                         model=None) -> Path:
    """One row per photo: the photo's face, then front and three-quarter renders with the photo texture and with
    the network's texture (PNG, atomically)."""
    from facerecon_core.io import save_image
    from facerecon_core.pipeline import Reconstructor

    readers = {mode: Reconstructor(model, texture=mode, texture_size=texture_size) for mode in ("photo", "network")}
    rows = []
    for photo in photos:
        faces = {mode: reader.reconstruct(str(photo))[0] for mode, reader in readers.items()}
        rec = faces["photo"]
        crop = _photo_crop(photo, rec, size)
        row = [crop] + [render_view(faces[mode], yaw, size) for mode in ("photo", "network") for yaw in (0.0, 35.0)]
        rows.append(np.concatenate(row, axis=1))
    grid = np.concatenate(rows, axis=0)
    header = _labels(["photo", "photo texture", "(three-quarter)", "network texture", "(three-quarter)"], size)
    image = (np.concatenate([header, grid], axis=0) * 255 + 0.5).astype(np.uint8)
    return save_image(out, image)


def render_head(head, yaw_deg: float = 0.0, size: int = 256, expression: bool = True, textured: bool = True,
                background=(0.16, 0.16, 0.18)) -> np.ndarray:
    """(size, size, 3) float in [0, 1]: a :class:`~facerecon_core.head.mesh.HeadMesh` turned by ``yaw_deg``, under
    the soft frontal light of :func:`render_view`, textured (its materials' textures and colours, laid into one
    atlas for the renderer) or in grey clay, with the photo's expression (its keys at their weights) or neutral."""
    from facerecon_core.pose import CropCamera, euler_to_matrix
    from facerecon_core.render.numpy_render import render_mesh_numpy

    verts = (head.expressive() if expression else head.vertices).astype(np.float64)
    skin = head.part("face")
    verts = (verts - verts[skin].mean(0)) @ euler_to_matrix(np.radians([0.0, yaw_deg, 0.0])).T
    camera = CropCamera(size)
    verts = (verts + [0.0, 20.0, -camera.focal * 330.0 / size]).astype(np.float32)
    vertex_of, uv_of, triangles = head.split
    sh = frontal_light(ambient=0.85, diffuse=0.3, direction=(-0.3, 0.4, 1.0)).astype(np.float32)
    if textured:
        atlas, uv = _head_atlas(head)
        shading = {"uv": uv[uv_of], "texture": atlas}
    else:
        shading = {"vertex_colors": np.tile(np.float32(CLAY), (len(vertex_of), 1))}
    image, _ = render_mesh_numpy(verts[vertex_of], triangles, camera.render_camera(), sh=sh,
                                 background=np.broadcast_to(np.float32(background), (size, size, 3)), **shading)
    return np.clip(image[0], 0.0, 1.0)


def _head_atlas(head) -> tuple[np.ndarray, np.ndarray]:
    """One texture for the renderer (the skin's H × 2H on top; the eyes' and the flat colours below it) and each UV
    index's place in it."""
    from facerecon_core import imageops

    height = head.skin_texture.shape[0]
    below = np.zeros((height, 2 * height, 3), np.float32)
    below[:, :height] = imageops.resize(head.eye_texture, height, height).astype(np.float32) / 255.0
    flat = [m for m in head.materials if m in head.colours]
    from facerecon_core.head.texture import OPACITY

    tone = np.median(head.skin_texture.reshape(-1, 3), axis=0).astype(np.float32) / 255.0
    for i, name in enumerate(flat):  # half-transparent ones over the skin tone (the renderer has no alpha)
        alpha = OPACITY.get(name, 1.0)
        below[:, height + i * height // len(flat):height + (i + 1) * height // len(flat)] = \
            alpha * np.float32(head.colours[name]) + (1 - alpha) * tone
    atlas = np.concatenate([head.skin_texture.astype(np.float32) / 255.0, below], axis=0)
    material = np.zeros(len(head.uvs), np.int64)
    material[head.poly_uvs] = np.repeat(head.poly_material, head.poly_sizes)
    uv = head.uvs.astype(np.float64)
    out = np.empty_like(uv)
    for index, name in enumerate(head.materials):
        mine = material == index
        if name == "skin":
            out[mine] = np.c_[uv[mine, 0], 0.5 + 0.5 * uv[mine, 1]]
        elif name == "eyes":
            out[mine] = 0.5 * uv[mine]
        else:
            out[mine] = [0.5 + (flat.index(name) + 0.5) / (2 * len(flat)), 0.25]
    return atlas, out.astype(np.float32)


def head_figure(photos: list[str | Path], out: Path, size: int = 192, model=None) -> Path:
    """One row per photo (``--mesh head``): the photo's face, the head front and three-quarter neutral, then front
    and three-quarter with the photo's expression, and a grey-clay three-quarter with it (PNG, atomically)."""
    from facerecon_core.io import save_image
    from facerecon_core.pipeline import Reconstructor

    reader = Reconstructor(model, mesh="head", texture_size=1024)
    rows = []
    for photo in photos:
        rec = reader.reconstruct(str(photo))[0]
        row = [_photo_crop(photo, rec, size)]
        row += [render_head(rec.head, yaw, size, expression=e) for e in (False, True) for yaw in (0.0, 35.0)]
        row.append(render_head(rec.head, 35.0, size, textured=False))
        rows.append(np.concatenate(row, axis=1))
    header = _labels(["photo", "neutral", "(three-quarter)", "photo's expression", "(three-quarter)", "clay"], size)
    image = (np.concatenate([header, *rows], axis=0) * 255 + 0.5).astype(np.uint8)
    return save_image(out, image)


def video_figure(video: str | Path, out: Path, count: int = 6, size: int = 192, model=None, mesh: str = "head") -> Path:
    """Two rows: ``count`` frames of the video (cropped around the face) above the tracked head (or face) with that
    frame's smoothed ARKit weights and head rotation (PNG, atomically)."""
    import dataclasses

    from facerecon_core.detect.crop import Crop
    from facerecon_core.io import save_image
    from facerecon_core.pipeline import Reconstructor
    from facerecon_core.pose import euler_to_matrix
    from facerecon_core.video.reader import read_frame
    from facerecon_core.video.track import track_video

    track = track_video(Reconstructor(model, mesh=mesh, texture_size=1024), video)
    rec = track.reference
    names = rec.head.key_names if rec.head is not None else list(rec.arkit_weights)
    top, bottom = [], []
    for t in np.linspace(0, track.n_frames - 1, count).astype(int):
        frame = read_frame(video, int(track.frame_index[t]))
        crop = Crop.from_landmarks(np.nan_to_num(track.landmarks[t]), size) if track.has_face[t] else \
            Crop(0.0, 0.0, float(min(frame.shape[:2])), size)
        top.append(crop.apply(frame).astype(np.float32) / 255.0)
        weights = np.zeros(len(names), np.float32)
        for i, key in enumerate(track.arkit_names):
            if key in names:
                weights[names.index(key)] = track.weights[t, i]
        rotation = euler_to_matrix(track.angles[t])
        if rec.head is not None:
            head = dataclasses.replace(rec.head, vertices=rec.head.vertices @ rotation.T.astype(np.float32),
                                       key_deltas=rec.head.key_deltas @ rotation.T.astype(np.float32),
                                       key_weights=weights)
            bottom.append(render_head(head, 0.0, size))
        else:
            offsets = np.tensordot(weights[:len(rec.arkit_keys)], rec.arkit_keys, axes=(0, 0))
            posed = dataclasses.replace(rec, identity_vertices=rec.identity_vertices @ rotation.T.astype(np.float32),
                                        expression_offsets=offsets @ rotation.T.astype(np.float32))
            bottom.append(render_view(posed, 0.0, size))
    image = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    return save_image(out, (image * 255 + 0.5).astype(np.uint8))


def _photo_crop(photo: str | Path, rec: FaceReconstruction, size: int) -> np.ndarray:
    from facerecon_core.detect.crop import Crop
    from facerecon_core.io.photo import load_photo

    left, top, side = rec.crop_box
    return Crop(float(left), float(top), float(side), size).apply(load_photo(photo)).astype(np.float32) / 255.0


def _labels(texts: list[str], size: int) -> np.ndarray:
    import cv2

    strip = np.full((24, size * len(texts), 3), 0.1, np.float32)
    for i, text in enumerate(texts):
        cv2.putText(strip, text, (i * size + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0.95, 0.95, 0.95), 1,
                    cv2.LINE_AA)
    return strip


def arkit_keys_figure(model, out: Path, size: int = 112, columns: int = 9) -> Path:
    """Every ARKit key at 1 on the mean face (front, slightly turned), labelled; PNG, atomically."""
    import cv2

    from facerecon_core.io import save_image
    from facerecon_core.pose import CropCamera, euler_to_matrix
    from facerecon_core.render.numpy_render import render_mesh_numpy

    camera = CropCamera(size)
    turn = euler_to_matrix(np.radians([0.0, 20.0, 0.0])).T
    sh = frontal_light(ambient=0.8, diffuse=0.35, direction=(-0.3, 0.4, 1.0)).astype(np.float32)
    colours = np.tile(np.float32(CLAY), (model.n_vertices, 1))
    tiles = []
    for name, delta in zip(["neutral", *model.arkit_names], [np.zeros_like(model.mean_shape), *model.arkit_deltas]):
        verts = (model.mean_shape + delta.astype(np.float32)).astype(np.float64) @ turn
        verts = (verts + [0.0, -5.0, -camera.focal * 230.0 / size]).astype(np.float32)
        image, _ = render_mesh_numpy(verts, model.triangles, camera.render_camera(), vertex_colors=colours, sh=sh,
                                     background=np.full((size, size, 3), 0.16, np.float32))
        tile = np.concatenate([np.clip(image[0], 0, 1), np.full((16, size, 3), 0.1, np.float32)])
        cv2.putText(tile, str(name), (3, size + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0.95, 0.95, 0.95), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.full_like(tiles[0], 0.1)] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return save_image(out, (np.concatenate(rows) * 255 + 0.5).astype(np.uint8))


def registration_figure(model, distance_mm: np.ndarray, out: Path, size: int = 256) -> Path:
    """Our mean face coloured by each vertex's distance to the registered ICT face (0–2 mm, blue to red), front
    and side; PNG, atomically."""
    from facerecon_core.eval.report import render_heat
    from facerecon_core.io import save_image

    views = [render_heat(model, distance_mm, yaw, size, vmax=2.0) for yaw in (0.0, 60.0)]
    return save_image(out, (np.concatenate(views, axis=1) * 255 + 0.5).astype(np.uint8))
