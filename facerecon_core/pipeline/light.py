"""Stage 5b: the SH light fitted to the photo (numpy; after the texture, before the optional refine).

The PSN predicts the light from the crop; once the face's shape, pose and albedo map are known, the
light that best re-renders the photo is a small linear problem. Each visible vertex of the face
region gives, per colour channel, ``photo colour ≈ albedo · (Y(n) · sh)``: 9 unknowns per channel.
It is solved robustly (least absolute deviations by iteratively reweighted least squares, so hair,
glasses, cast shadows and the silhouette's misaligned edge do not drag it), each vertex weighted
by the area it covers in the crop, with a weak ridge toward the network's light, which is kept as it
is when too little of the face is visible to fit. No rasterizer: visibility is a depth test
against the vertices splatted into the crop's pixels, so this runs in the Blender add-on too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.export._common import vertex_normals
from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.uvmap import BilinearTaps
from facerecon_core.lighting import sh_basis
from facerecon_core.pose import CropCamera

LIGHT_MODES = ("fit", "network")
"""``fit``: the light fitted here (default); ``network``: the PSN's prediction as it is."""


@dataclass(frozen=True)
class LightFitConfig:
    iterations: int = 8  # reweighting rounds after the first (plain least-squares) solve
    ridge: float = 1e-4  # pull toward the network's light, per unit of total weight
    residual_floor: float = 0.01  # residuals below this (colour units in [0, 1]) weigh as this
    depth_tolerance: float = 6.0  # mm behind the front-most surface at a pixel that still counts as seen
    min_facing: float = 0.2  # cosine between normal and view direction below which a vertex is skipped
    min_vertices: int = 500  # fewer visible face-region vertices: keep the network's light


@dataclass
class LightFit:
    sh: np.ndarray  # (3, 9) the light used (fitted, or the network's when ``fitted`` is False)
    fitted: bool
    vertices: int  # visible face-region vertices the fit used


def visible_vertices(verts_cam: np.ndarray, normals: np.ndarray, size: int,
                     config: LightFitConfig = LightFitConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Which vertices (V,) a ``CropCamera(size)`` sees, and their pixel positions (V, 2).

    A vertex is seen when it projects inside the crop, faces the camera (cosine above
    ``min_facing``) and is within ``depth_tolerance`` of the nearest vertex splatted to the same pixel
    (the mesh has several vertices per pixel at network crop sizes, so the splats cover the face)."""
    camera = CropCamera(size)
    pixels = camera.project(verts_cam)
    depth = -verts_cam[:, 2]
    cell = np.round(pixels).astype(np.int64)
    inside = (depth > 0) & (cell >= 0).all(1) & (cell < size).all(1)
    zbuf = np.full((size, size), np.inf)
    np.minimum.at(zbuf, (cell[inside, 1], cell[inside, 0]), depth[inside])
    facing = _facing(verts_cam, normals) > config.min_facing
    seen = np.zeros(len(verts_cam), bool)
    seen[inside] = depth[inside] <= zbuf[cell[inside, 1], cell[inside, 0]] + config.depth_tolerance
    return seen & facing, pixels


def fit_light(crop: np.ndarray, valid: np.ndarray | None, verts_cam: np.ndarray, albedo: np.ndarray,
              model: FaceModel, prior: np.ndarray, config: LightFitConfig = LightFitConfig()) -> LightFit:
    """Fit the SH light (3, 9) to ``crop`` ((S, S, 3) uint8, seen by ``CropCamera(S)``).

    ``valid``: (S, S) bool, the crop's pixels that are photo (False where it was padded), or None
    for all. ``verts_cam``: (V, 3) camera-space vertices (mm); ``albedo``: (V, 3) in [0, 1] (the
    albedo map sampled at the vertices); ``prior``: the network's light (3, 9)."""
    size = crop.shape[0]
    verts = np.asarray(verts_cam, np.float64)
    normals = vertex_normals(verts, model.triangles).astype(np.float64)
    seen, pixels = visible_vertices(verts, normals, size, config)
    seen &= model.face_vertices()
    if valid is not None:
        cell = np.clip(np.round(pixels).astype(np.int64), 0, size - 1)
        seen &= np.asarray(valid, bool)[cell[:, 1], cell[:, 0]]
    prior = np.asarray(prior, np.float64)
    count = int(seen.sum())
    if count < config.min_vertices:
        return LightFit(prior.copy(), False, count)
    # area each vertex covers in the crop: its share of the mesh area, foreshortened, over depth²
    weight = _vertex_areas(verts, model.triangles)[seen] * _facing(verts[seen], normals[seen]) / verts[seen, 2] ** 2
    weight /= weight.mean()
    basis = sh_basis(normals[seen])
    photo = np.asarray(crop, np.float64).reshape(-1, 3) / 255.0
    colour = BilinearTaps.at_pixels(pixels[seen], (size, size)).sample(photo)
    albedo = np.asarray(albedo, np.float64)[seen]
    sh = np.empty((3, 9))
    for c in range(3):
        sh[c] = solve_light_channel(albedo[:, c:c + 1] * basis, colour[:, c], weight, prior[c], config)
    return LightFit(sh, True, count)


def solve_light_channel(design: np.ndarray, target: np.ndarray, weight: np.ndarray, prior: np.ndarray,
                        config: LightFitConfig = LightFitConfig()) -> np.ndarray:
    """One channel's SH coefficients (9,): argmin_x Σ wᵢ |dᵢ·x − tᵢ| + ridge · Σw · ‖x − prior‖² by
    reweighted least squares (``design`` (N, 9) = albedo × SH basis, ``target`` (N,) the photo's colour);
    with ``config.iterations == 0`` plain ridge least squares."""
    w = weight
    for _ in range(config.iterations + 1):
        pull = config.ridge * w.sum()
        weighted = (design * w[:, None]).T
        x = np.linalg.solve(weighted @ design + pull * np.eye(design.shape[1]), weighted @ target + pull * prior)
        w = weight / np.maximum(np.abs(design @ x - target), config.residual_floor)
    return x


def _facing(verts_cam: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Cosine (N,) between each unit normal and the direction from its vertex to the camera."""
    view = -verts_cam / np.maximum(np.linalg.norm(verts_cam, axis=1, keepdims=True), 1e-9)
    return (normals * view).sum(1)


def _vertex_areas(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """A third of the area of each vertex's triangles (V,)."""
    tri = np.asarray(triangles, np.int64)
    area = 0.5 * np.linalg.norm(np.cross(verts[tri[:, 1]] - verts[tri[:, 0]], verts[tri[:, 2]] - verts[tri[:, 0]]),
                                axis=1)
    return np.bincount(tri.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(verts))
