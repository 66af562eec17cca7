"""The held-out synthetic test distribution of ``facerecon eval --suite synthetic``.

Faces are drawn like the ``asm`` training data (identity from the prior, the heavy-tailed
expression prior, SH light, real-photo backgrounds, camera degradations, the face framed as the
3DDFA_V2 landmark crop with detection jitter, :data:`EVAL_JITTER` unless given) but from a disjoint
seed stream: face ``i`` of seed ``S`` uses ``numpy.random.default_rng([EVAL_STREAM, S, i])``
(training samples use ``[seed, i]``, two words, so no test face repeats a training draw, whatever the
seeds), with large expressions favoured (archetype probability 0.85 instead of 0.6), yaw uniform in
±60°, pitch ±20°, roll ±15°.
The background photos are the ``taiwan_expr_faces`` / ``jaffe``-free sources listed in
:data:`BACKGROUND_SOURCES`. With a :class:`~facerecon_core.facemodel.head.HeadModel` (``eval --head``)
the whole head (ears, neck) is rendered around each face, the same faces otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facerecon_core.datasets.expressions import ArkitPrior, ExpressionPrior
from facerecon_core.datasets.scene import BackgroundBank, CropJitter, PoseRange, degrade, place_in_crop, sample_sh
from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.head import HeadModel
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.render.numpy_render import render_mesh_numpy

EVAL_STREAM = 0xE7A1_5EED  # first word of every test face's seed: disjoint from the 2-word training seeds
EVAL_POSES = PoseRange(yaw=60.0, pitch=20.0, roll=15.0)
EVAL_JITTER = CropJitter(scale=0.08, shift=0.03)
"""The test faces' crop jitter: a good detector's. A larger one (``eval --crop-jitter``) measures how the
methods bear a detector's misses (crops too large, too small or off-centre)."""
BACKGROUND_SOURCES = ("deepface", "insightface", "codeformer", "face_recognition_ex", "facenet_pytorch")


@dataclass
class SyntheticFace:
    image: np.ndarray  # (S, S, 3) uint8: the network crop
    shape: np.ndarray  # (V, 3) mm, model frame: the ground truth
    neutral: np.ndarray  # (V, 3) the same identity without expression
    landmarks_2d: np.ndarray  # (68, 2) crop pixels (projected landmark vertices, occluded or not)
    angles: np.ndarray  # (3,) rad
    translation: np.ndarray  # (3,) mm
    expression_mm: float  # mean expression displacement over the face (mm)

    @property
    def yaw_deg(self) -> float:
        return float(np.degrees(self.angles[1]))


def background_photos(shared: Path, per_source: int = 30) -> list[Path]:
    photos: list[Path] = []
    for name in BACKGROUND_SOURCES:
        files = sorted(p for p in (shared / "faces" / name).rglob("*")
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        photos += files[:per_source]
    return photos


class SyntheticFaces:
    """``faces[i]`` → :class:`SyntheticFace` (deterministic in (seed, i))."""

    def __init__(self, model: FaceModel, seed: int, count: int, res: int = 256,
                 backgrounds: BackgroundBank | None = None, poses: PoseRange = EVAL_POSES,
                 jitter: CropJitter = EVAL_JITTER, head: HeadModel | None = None, same_identity: int = 1,
                 arkit: float = 0.0):
        """``same_identity``: faces ``i`` with the same ``i // same_identity`` share their identity (several photos
        of one person: each with its own expression, pose, light and background). ``arkit``: the share of faces
        whose expression adds the face model's ARKit keys (as ``data synth --arkit`` draws them), for expressions
        beyond the 10 components."""
        self.model, self.seed, self.count, self.res, self.poses = model, int(seed), int(count), res, poses
        self.same_identity = max(1, int(same_identity))
        self.jitter, self.head, self.arkit = jitter, head, float(arkit)
        self.expressions = replace(ExpressionPrior.from_model(model), archetype_probability=0.85)
        if self.arkit:
            self.arkit_prior = ArkitPrior.from_names(model.arkit_names)
        self.camera = CropCamera(res)
        self.render_camera = self.camera.render_camera()
        self.backgrounds = backgrounds
        if self.backgrounds is None:
            from facerecon_core import paths

            photos = background_photos(paths.shared_dir())
            self.backgrounds = BackgroundBank(photos, max_photos=60, seed=EVAL_STREAM % 1000) if photos else None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> SyntheticFace:
        if not 0 <= i < self.count:
            raise IndexError(i)
        rng = np.random.default_rng([EVAL_STREAM, self.seed, i])
        m = self.model
        id_coeff = rng.standard_normal(m.n_id)
        if self.same_identity > 1:
            id_coeff = np.random.default_rng([EVAL_STREAM, self.seed, 1 << 20, i // self.same_identity]
                                             ).standard_normal(m.n_id)
        exp_coeff = self.expressions.sample(rng)
        keys = None
        if self.arkit and rng.random() < self.arkit:  # drawn only then: the suite's faces stay as they were
            keys = self.arkit_prior.sample(rng)
            exp_coeff = exp_coeff * 0.5
        neutral = m.vertices(id_coeff).astype(np.float64)
        offsets = m.expression_offsets(exp_coeff).astype(np.float64)
        if keys is not None:
            offsets = offsets + m.arkit_offsets(keys)
        shape = neutral + offsets
        angles = self.poses.sample(rng)
        scale, shift = self.jitter.sample(rng, self.res)
        translation = place_in_crop(shape[m.landmark_indices], angles, self.res, scale=scale, shift=shift)
        sh = sample_sh(rng)
        albedo = m.albedo(0.8 * rng.standard_normal(m.n_albedo)) if m.n_albedo else m.albedo_mean
        tone, tint = rng.uniform(0.8, 1.15), rng.uniform(0.93, 1.07, 3)
        albedo = albedo * tone * tint
        if self.backgrounds is not None:
            background = self.backgrounds.sample(rng, self.res)
        else:
            background = np.full((self.res, self.res, 3), rng.integers(40, 200, 3), np.uint8)
        verts_cam = to_camera(shape, angles, translation)
        verts, triangles, colours = verts_cam, m.triangles, albedo
        if self.head is not None:
            verts = to_camera(self.head.around(shape, id_coeff, exp_coeff), angles, translation)
            colours = self.head.albedo_around(albedo, tone * tint)
            triangles = self.head.triangles
        image, _ = render_mesh_numpy(verts, triangles, self.render_camera, vertex_colors=colours, sh=sh,
                                     background=background)
        image = (np.clip(image[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return SyntheticFace(
            image=degrade(image, rng), shape=shape, neutral=neutral,
            landmarks_2d=self.camera.project(verts_cam[m.landmark_indices]), angles=angles, translation=translation,
            expression_mm=float(np.linalg.norm(offsets, axis=1).mean()),
        )
