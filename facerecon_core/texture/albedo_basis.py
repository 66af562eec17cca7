"""An albedo basis (the paper's p_t space) learned from real photos, in UV space.

The BFM albedo PCA is not available (only its mean), so: fit each photo, unwrap its visible
texture into UV, divide out the fitted SH shading, fill occluded texels by left-right symmetry and
then the (colour-matched) mean albedo, and take a PCA over the face-region texels. Components are
scaled to one standard deviation, sampled at the vertex UVs, and stored in the face-model asset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting.photos import PhotoFit
from facerecon_core.pose import to_camera
from facerecon_core.texture.unwrap import fill_occluded, unwrap_photo

MIN_VISIBLE = 0.3  # least fraction of face-region texels a photo must show


@dataclass(frozen=True)
class AlbedoBasis:
    mean: np.ndarray  # (V, 3) per-vertex mean albedo in [0, 1]
    components: np.ndarray  # (K, V, 3), each one standard deviation
    scale: np.ndarray  # (K,) standard deviations (in UV-map units)
    explained: np.ndarray  # (K,) fraction of the variance each explains
    n_photos: int

    def apply_to(self, model: FaceModel) -> FaceModel:
        """A copy of ``model`` whose albedo model is this basis."""
        from facerecon_core.facemodel.build import content_hash

        arrays = model.arrays()
        arrays.update(albedo_mean=self.mean.astype(np.float32), albedo_basis=self.components.astype(np.float32),
                      albedo_scale=self.scale.astype(np.float64))
        arrays.pop("content_hash")
        return FaceModel(**arrays, content_hash=content_hash(arrays), path=model.path)


def photo_albedo_maps(fits: list[PhotoFit], model: FaceModel, size: int) -> tuple[np.ndarray, list[str]]:
    """De-lit, filled UV albedo maps (N, T, T, 3) of the usable fits, and the sources left out (with why)."""
    fallback = model.to_uv_map(model.albedo_mean, size)
    face = model.face_mask(size)
    maps, skipped = [], []
    for fit in fits:
        if not fit.usable():
            skipped.append(f"{fit.source}: landmark error {fit.landmark_error:.1f} px")
            continue
        texture = unwrap_photo(fit.image, to_camera(fit.shape(model), fit.angles, fit.translation), model, fit.sh, size)
        if texture.visibility[face].mean() < MIN_VISIBLE:
            skipped.append(f"{fit.source}: only {texture.visibility[face].mean():.0%} of the face visible")
            continue
        maps.append(fill_occluded(texture.albedo(), texture.visibility, fallback))
    return np.array(maps, np.float32), skipped


def albedo_pca(maps: np.ndarray, model: FaceModel, n_components: int) -> AlbedoBasis:
    """PCA of UV albedo maps over the face-region texels; components sampled at the vertices."""
    if len(maps) < 2:
        raise ValueError(f"an albedo basis needs at least 2 usable photos, got {len(maps)}")
    size = maps.shape[1]
    face = model.face_mask(size)
    data = maps[:, face].reshape(len(maps), -1).astype(np.float64)  # (N, texels × 3)
    mean = data.mean(axis=0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    k = min(n_components, len(maps) - 1)
    variance = singular**2 / (len(maps) - 1)
    scale = np.sqrt(variance[:k])
    _, (iy, ix) = ndimage.distance_transform_edt(~face, return_indices=True)

    def to_vertices(flat: np.ndarray) -> np.ndarray:
        uv_map = np.zeros((size, size, 3), np.float32)
        uv_map[face] = flat.reshape(-1, 3)
        return model.from_uv_map(uv_map[iy, ix])  # values outside the face from the nearest face texel

    return AlbedoBasis(
        mean=np.clip(to_vertices(mean), 0.0, 1.0),
        components=np.array([to_vertices(vt[i] * scale[i]) for i in range(k)]).reshape(k, model.n_vertices, 3),
        scale=scale, explained=variance[:k] / variance.sum(), n_photos=len(maps),
    )


def select_photos(photos: list, per_source: int, total: int, seed: int, root) -> list:
    """A diverse, deterministic subset: at most ``per_source`` photos from each top-level folder."""
    rng = np.random.default_rng(seed)
    by_source: dict[str, list] = {}
    for path in photos:
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        by_source.setdefault(rel.parts[0] if len(rel.parts) > 1 else "", []).append(path)
    chosen = []
    for source in sorted(by_source):
        group = by_source[source]
        picks = rng.choice(len(group), size=min(per_source, len(group)), replace=False)
        chosen += [group[i] for i in sorted(picks)]
    if len(chosen) > total:
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), size=total, replace=False))]
    return chosen
