"""The head's textures (numpy only): the face texture carried into ICT's UV layout, the rest of the head a skin
tone continuing it (no hair is reconstructed), and eyes whose iris takes its colour from the photo.

Colours are the face texture's own values (uint8, as ``FaceReconstruction.albedo``).
"""

from __future__ import annotations

import functools

import numpy as np

from facerecon_core.head.rig import HeadRig

PART_FACE, PART_HEAD, PART_MOUTH, PART_EYE_SOCKET = 1, 2, 3, 4
MOUTH_COLOUR = (0.42, 0.16, 0.15)  # the mouth socket's inside, × the skin tone's brightness
EYE_SOCKET_SHADE = 0.8  # the eye sockets (hidden behind the eyeballs): the skin tone, darker
SCLERA = (0.90, 0.87, 0.84)
DEFAULT_IRIS = (0.33, 0.22, 0.14)  # brown, when the photo's eyes are closed or too small to read
PUPIL_DEG, IRIS_DEG, LIMBUS_DEG = 9.0, 24.0, 3.0  # angles from the gaze axis (ICT's eyeball)
FLAT_COLOURS = {"gums": (0.66, 0.30, 0.30), "teeth": (0.90, 0.87, 0.78), "eyelashes": (0.10, 0.07, 0.05)}
OPACITY = {"eyelashes": 0.55}  # ICT's eyelashes are cards meant for an alpha texture: half-transparent instead
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)  # iBUG-68 landmarks (the subject's right, left)


def skin_texture(rig: HeadRig, face_albedo: np.ndarray) -> np.ndarray:
    """(H, 2H, 3) uint8: ``face_albedo`` (our UV layout, (T, T, 3) uint8) where the head shows the face, a skin
    tone taken from the face's own skin elsewhere, fading between the two over the face area's rim. H is the
    rig's texture height, halved while it is at least twice T (the face then has about T's texels)."""
    face_albedo = np.asarray(face_albedo)
    step = 1
    while rig.skin_part.shape[0] // (2 * step) >= face_albedo.shape[0]:
        step *= 2
    shows, alpha, taps, weights, part = _face_texels(rig, face_albedo.shape[:2], step)
    flat = face_albedo.reshape(-1, 3).astype(np.float32) * np.float32(1.0 / 255.0)
    face = weights[:, :1] * flat[taps[:, 0]]
    for k in range(1, 4):
        face += weights[:, k:k + 1] * flat[taps[:, k]]
    tone = skin_tone(face, (alpha == 1.0) & (part[shows] == PART_FACE))
    palette = np.empty((max(PART_EYE_SOCKET, int(part.max(initial=0))) + 1, 3), np.float32)
    palette[:] = tone
    palette[PART_MOUTH] = np.float32(MOUTH_COLOUR) * min(float(tone.mean()) / 0.6, 1.3)
    palette[PART_EYE_SOCKET] = tone * EYE_SOCKET_SHADE
    palette = np.clip(palette * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = palette[part]
    rest = palette[part[shows]].astype(np.float32)
    alpha = alpha * (1.0 - _darker(face, tone) * np.sqrt(1.0 - alpha))  # hair at the rim fades sooner
    out[shows] = np.clip(rest + alpha[:, None] * (face * 255.0 - rest) + 0.5, 0, 255).astype(np.uint8)
    return out.reshape(rig.skin_part[::step, ::step].shape + (3,))


@functools.lru_cache(maxsize=4)
def _face_texels(rig: HeadRig, size: tuple[int, int], step: int):
    """Of the skin texture at every ``step``-th texel: the texels that show some of the face texture (flat
    indices), the face's share there, the four bilinear taps (flat indices (n, 4), weights (n, 4)) of our UV
    there into a face texture of ``size``, and every texel's part (flat)."""
    alpha_map = rig.skin_alpha[::step, ::step].reshape(-1)
    shows = np.flatnonzero(alpha_map > 0)
    uv = rig.skin_face_uv[::step, ::step].reshape(-1, 2)[shows].astype(np.float64) / 65535.0
    h, w = size
    x = np.clip(uv[:, 0] * w - 0.5, 0.0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0.0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    taps = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], 1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1).astype(np.float32)
    alpha = alpha_map[shows].astype(np.float32) * np.float32(1.0 / 255.0)
    return shows, alpha, taps, weights, np.ascontiguousarray(rig.skin_part[::step, ::step]).reshape(-1)


def _darker(face: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(n,) in [0, 1]: how much darker than the skin tone each face texel is (0 down to 75 % of its luminance, 1
    at 35 %): hair over the forehead and temples, which the face texture may hold near its rim."""
    weights = np.float32([0.299, 0.587, 0.114])
    ratio = (face @ weights) / max(float(tone @ weights), 1e-3)
    return np.clip((0.75 - ratio) / 0.4, 0.0, 1.0)


def skin_tone(face: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3,) float: the median colour of the face texels (n, 3) chosen by ``skin``, leaving out the darkest 35 %
    (brows, lashes, shadows) and the brightest 10 % (highlights) by luminance."""
    texels = face[skin] if skin.sum() >= 16 else face.reshape(-1, 3)
    texels = texels[:: max(len(texels) // 20000, 1)]  # a sample is enough for a median
    luminance = texels @ np.float32([0.299, 0.587, 0.114])
    lo, hi = np.percentile(luminance, [35, 90])
    keep = (luminance >= lo) & (luminance <= hi)
    return np.median(texels[keep] if keep.sum() >= 8 else texels, axis=0).astype(np.float32)


def iris_colour(photo: np.ndarray | None, landmarks: np.ndarray | None) -> tuple[float, float, float]:
    """The iris colour (sRGB 0–1) read from the photo inside the eye contours of the 68 ``landmarks`` (photo
    pixels): the median of the eye's darker pixels, less the darkest (pupil, lashes); :data:`DEFAULT_IRIS` when
    the eyes are too small or closed to read."""
    if photo is None or landmarks is None or len(landmarks) < 48:
        return DEFAULT_IRIS
    photo = np.asarray(photo)
    pixels = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        polygon = np.asarray(landmarks[eye], np.float64)
        x0, y0 = np.floor(polygon.min(0)).astype(int)
        x1, y1 = np.ceil(polygon.max(0)).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, photo.shape[1] - 1), min(y1, photo.shape[0] - 1)
        if x1 - x0 < 4 or y1 - y0 < 2:
            continue
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        inside = _inside(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64), polygon)
        pixels.append(photo[yy.ravel()[inside], xx.ravel()[inside]].reshape(-1, photo.shape[2] if photo.ndim == 3 else 1))
    if not pixels or sum(len(p) for p in pixels) < 12:
        return DEFAULT_IRIS
    rgb = np.concatenate(pixels).astype(np.float64)
    rgb = np.repeat(rgb, 3, axis=1) if rgb.shape[1] == 1 else rgb[:, :3]
    rgb /= 255.0 if np.asarray(photo).dtype == np.uint8 else 1.0
    luminance = rgb @ [0.299, 0.587, 0.114]
    lo, hi = np.percentile(luminance, [5, 30])
    chosen = rgb[(luminance >= lo) & (luminance <= hi)]
    if len(chosen) < 4:
        return DEFAULT_IRIS
    return tuple(float(c) for c in np.clip(np.median(chosen, axis=0), 0.02, 0.9))


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points (M, 2) lie inside the closed polygon (P, 2)."""
    inside = np.zeros(len(points), bool)
    x, y = points[:, 0], points[:, 1]
    for (xa, ya), (xb, yb) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (ya > y) != (yb > y)
        at = xa + (y - ya) * (xb - xa) / np.where(yb == ya, 1e-12, yb - ya)
        inside ^= crosses & (x < at)
    return inside


def eye_texture(rig: HeadRig, iris: tuple[float, float, float]) -> np.ndarray:
    """(S, S, 3) uint8: sclera, the iris in ``iris`` (a little radial variation and a darker limbal ring), a
    black pupil, laid out by each texel's angle from the gaze axis."""
    angle = rig.eye_angle.astype(np.float32)
    iris_rgb = np.float32(iris)
    radial = np.clip((angle - PUPIL_DEG) / (IRIS_DEG - PUPIL_DEG), 0.0, 1.0)[..., None]
    iris_shade = iris_rgb * (1.15 - 0.35 * radial)  # lighter near the pupil
    limbus = np.clip((angle - (IRIS_DEG - LIMBUS_DEG)) / LIMBUS_DEG, 0.0, 1.0)[..., None]
    iris_shade = iris_shade * (1.0 - 0.45 * limbus)
    sclera = np.float32(SCLERA) * (1.0 - 0.12 * np.clip((angle - 60.0) / 60.0, 0.0, 1.0))[..., None]
    out = np.where((angle < IRIS_DEG)[..., None], iris_shade, sclera)
    pupil = np.clip((PUPIL_DEG - angle) / 1.0, 0.0, 1.0)[..., None]
    out = out * (1.0 - pupil) + np.float32(0.02) * pupil
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
