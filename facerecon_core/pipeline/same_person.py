"""Several photos of one person → one head: one identity, each photo's expression, one texture (numpy only).

- **Identity**: a robust, confidence-weighted mean of the photos' identities. Each photo's prior weight is its
  landmark confidence times how frontal it is (cos² of the yaw, not below ``min_frontal``); with three photos or
  more, for a few rounds, it is multiplied by a Cauchy weight of the photo's RMS distance over the face region from
  the consensus (first the per-vertex median), so one bad photo (a wrong fit, another person) loses its say.
- **Expression and pose**: each photo keeps its own expression (offsets and ARKit weights) and is re-posed rigidly
  (least squares over the face region) so the shared identity sits where its own identity sat in the photo.
- **Texture**: each photo's photo-detail texture, made on the shared identity, its colour matched per channel to
  the top photo's over the skin both show, joined best-first (ranked by how much of the face the photo shows and
  how neutral its expression is, since wrinkles and furrows are baked into a texture; the top photo over the next,
  …, over the last, whose texture is complete) in a multi-band blend.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facerecon_core.facemodel import FaceModel
from facerecon_core.pipeline.photo_texture import (PhotoTextureConfig, colour_gain, over_weights, pyramid_blend,
                                                   texture_masks)
from facerecon_core.pose import matrix_to_euler, to_camera, umeyama
from facerecon_core.head.mesh import HeadMesh
from facerecon_core.reconstruction import FaceReconstruction


@dataclass(frozen=True)
class SamePersonConfig:
    min_frontal: float = 0.25  # a profile photo's prior weight relative to a frontal one's
    robust_scale_mm: float = 1.5  # RMS distance from the consensus at which a photo's weight halves
    rounds: int = 6  # reweighting rounds
    neutral_mm: float = 1.0  # RMS expression at which a photo's texture ranks half as high (wrinkles, an open mouth
    # and furrowed brows are baked into a texture: the neutral photos go on top)


@dataclass
class PhotoInput:
    """What the combination needs of one photo's single-photo reconstruction."""

    name: str  # unique among the photos: the morph target's and shape key's name
    photo: np.ndarray  # (H, W, 3) uint8
    rec: FaceReconstruction
    albedo_map: np.ndarray  # (A, A, 3) the texture stream's map in [0, 1]
    mouth: np.ndarray | None  # (8, 2) the detected inner-lip outline, photo pixels


@dataclass
class PersonReconstruction:
    name: str
    identity_vertices: np.ndarray  # (V, 3) float32 mm: the shared identity
    photos: list[FaceReconstruction]  # per photo: the shared identity, its own expression and pose, the shared texture
    names: list[str]  # the photos' names, in order
    weights: np.ndarray  # (P,) each photo's share of the identity (sums to 1)
    skipped: list[tuple[str, str]]  # (photo, reason) of the photos left out (no face, unreadable)
    head: HeadMesh | None = None  # the whole head (``mesh="head"``): the shared identity, a key per photo

    def reconstruction(self) -> FaceReconstruction:
        """One :class:`FaceReconstruction` for the writers and Blender: the shared identity, neutral (the ARKit keys
        at 0), each photo's expression as a morph target / shape key named after the photo; the source, pose, crop,
        light and landmarks of the first photo."""
        first = self.photos[0]
        zero = np.zeros_like(first.identity_vertices)
        return replace(
            first, expression_offsets=zero,
            arkit_weights={k: 0.0 for k in first.arkit_weights} if first.arkit_weights is not None else None,
            arkit_residual=zero if first.arkit_weights is not None else None,
            photo_expressions={n: p.expression_offsets for n, p in zip(self.names, self.photos)},
            photo_arkit=({n: dict(p.arkit_weights) for n, p in zip(self.names, self.photos)}
                         if first.arkit_weights is not None else None), head=self.head)


def combine_identities(identities: np.ndarray, yaws: np.ndarray, confidences: np.ndarray, region: np.ndarray,
                       config: SamePersonConfig = SamePersonConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The shared identity (V, 3) of P photos' identities (P, V, 3) and each photo's weight (P,), summing to 1.
    ``yaws`` in radians, ``confidences`` the landmark confidences in [0, 1], ``region`` the face region's vertex
    ids, over which the distances are measured."""
    identities = np.asarray(identities, np.float64)
    frontal = np.maximum(np.cos(np.asarray(yaws, np.float64)) ** 2, config.min_frontal)
    prior = frontal * np.clip(np.asarray(confidences, np.float64), 0.05, 1.0)
    weights = prior / prior.sum()
    if len(identities) > 2:  # two photos cannot outvote each other
        consensus = np.median(identities[:, region], axis=0)  # a start no single photo can drag away
        for _ in range(config.rounds):
            rms = np.sqrt(((identities[:, region] - consensus) ** 2).sum(-1).mean(-1))
            weights = prior / (1.0 + (rms / config.robust_scale_mm) ** 2)
            weights /= weights.sum()
            consensus = np.tensordot(weights, identities[:, region], axes=1)
    return np.tensordot(weights, identities, axes=1).astype(np.float32), weights


def repose(rec: FaceReconstruction, identity: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(angles, translation) placing ``identity`` + the photo's expression where the photo's own face sat."""
    own = rec.camera_vertices()
    shared = (np.asarray(identity, np.float64) + rec.expression_offsets)
    fit = umeyama(shared[region], own[region], with_scale=False)
    return matrix_to_euler(fit.rotation), fit.translation


def combine_textures(textures: list[np.ndarray], confidences: list[np.ndarray], skin: np.ndarray,
                     ranks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (T, T, 3) uint8 texture and its photo confidence (T, T) of several photos' textures and confidences:
    best-first (by ``ranks``, default the mean confidence) over one another, each photo's colour matched to the
    best photo's over the skin both show confidently."""
    ranks = [float(np.mean(c)) for c in confidences] if ranks is None else ranks
    order = np.argsort(-np.asarray(ranks, np.float64), kind="stable")
    layers = [np.asarray(textures[i], np.float32) / 255.0 for i in order]
    weights = [np.clip(np.asarray(confidences[i], np.float32), 0.0, 1.0) for i in order]
    for k in range(1, len(layers)):  # over the skin both show: 1 where too little of it is
        layers[k] = np.clip(layers[k] * colour_gain(layers[k], layers[0], np.minimum(weights[0], weights[k]), skin),
                            0.0, 1.0)
    base = layers[-1]
    if len(layers) > 1:
        differences = [a - b for a, b in zip(layers[:-1], layers[1:])]
        base = base + pyramid_blend(differences, over_weights(weights[:-1]), PhotoTextureConfig())
    texture = (np.clip(base, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return texture, 1.0 - np.prod([1.0 - w for w in weights], axis=0)


def combine(inputs: list[PhotoInput], model: FaceModel, name: str, texture: str = "photo",
            config: SamePersonConfig = SamePersonConfig(), skipped: list[tuple[str, str]] | None = None
            ) -> PersonReconstruction:
    """The person of ``inputs`` (their single-photo reconstructions): see the module's docstring. ``texture``:
    ``photo`` (the photo-detail textures combined) or ``network`` (the texture stream's maps averaged by the
    identity weights)."""
    from facerecon_core.pipeline.photo_texture import photo_texture
    from facerecon_core.pipeline.texture import albedo_texture

    if not inputs:
        raise ValueError("no photos to combine")
    region = model.face_vertices()
    recs = [i.rec for i in inputs]
    identity, weights = combine_identities(np.stack([r.identity_vertices for r in recs]),
                                           np.array([r.angles[1] for r in recs]),
                                           np.array([r.confidence for r in recs]), region, config)
    size = recs[0].albedo.shape[0]
    posed, textures, confidences = [], [], []
    for item in inputs:
        rec = item.rec
        angles, translation = repose(rec, identity, region)
        shape = identity + rec.expression_offsets
        lm3d = shape[model.landmark_indices].astype(np.float64)
        landmarks = rec.project_to_photo(to_camera(lm3d, angles, translation))
        new = replace(rec, identity_vertices=identity, angles=angles, translation=translation,
                      landmarks_3d=lm3d, landmarks_2d=landmarks)
        if texture == "photo":
            result = photo_texture(item.photo, new.camera_vertices(), rec.project_to_photo, rec.sh, item.albedo_map,
                                   model, size, mouth=item.mouth)
            textures.append(result.albedo)
            confidences.append(result.confidence)
        posed.append(new)
    if texture == "photo":
        expression = np.array([np.sqrt((p.expression_offsets[region] ** 2).sum(-1).mean()) for p in posed])
        ranks = np.array([c.mean() for c in confidences]) / (1.0 + (expression / config.neutral_mm) ** 2)
        albedo, confidence = combine_textures(textures, confidences, texture_masks(model, size)[1], ranks)
    else:
        mean_map = np.tensordot(weights, np.stack([i.albedo_map for i in inputs]), axes=1)
        albedo, confidence = albedo_texture(mean_map, model, size), None
    posed = [replace(p, albedo=albedo, texture_confidence=confidence) for p in posed]
    return PersonReconstruction(name, identity, posed, [i.name for i in inputs], weights, list(skipped or []))


def unique_names(stems: list[str]) -> list[str]:
    """The photos' names as morph-target names: their stems, repeated ones with ``_2``, ``_3``, … in order."""
    used: dict[str, int] = {}
    out = []
    for stem in stems:
        stem = stem or "photo"
        used[stem.lower()] = used.get(stem.lower(), 0) + 1
        out.append(stem if used[stem.lower()] == 1 else f"{stem}_{used[stem.lower()]}")
    return out
