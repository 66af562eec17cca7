"""``asm`` samples: random faces with exact identity / expression ASM ground truth.

Identity from the standard normal prior, expressions from :class:`ExpressionPrior` (heavy-tailed,
toward open mouth, smile, pout, raised brows; with ``arkit`` > 0 that share of them adds the ARKit keys of
:class:`ArkitPrior`: emotions up to their extremes, wide eyes, furrowed brows, snarls), pose over ±75° yaw,
±30° pitch, ±20° roll (``PoseRange``), the crop's detection jitter (``CropJitter``), random
SH light, albedo from the face model's albedo basis (or the mean albedo with a skin-tone tint when
it has none), a real-photo background, and blur / noise / JPEG degradations. With a
:class:`~facerecon_core.facemodel.head.HeadModel` the whole BFM head (ears, neck) is rendered around
the face, as photos show it; labels and ``face_mask`` stay the face's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.datasets.expressions import ArkitPrior, ExpressionPrior
from facerecon_core.datasets.scene import BackgroundBank, CropJitter, PoseRange, degrade, place_in_crop, sample_sh
from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.head import HeadModel
from facerecon_core.pose import CropCamera, to_camera

GENERATOR = "asm-1"


@dataclass
class AsmGenerator:
    """Callable ``sample(i)`` for :func:`storage.write_dataset` (sample ``i`` seeded by ``(seed, i)``)."""

    model: FaceModel
    backgrounds: BackgroundBank
    seed: int
    res: int = 256
    poses: PoseRange = PoseRange()
    jitter: CropJitter = CropJitter()
    head: HeadModel | None = None  # render the whole head around the face (None: the face alone)
    arkit: float = 0.0  # the share of samples whose expression adds ARKit keys (the face model's rig)

    def __post_init__(self) -> None:
        self.expressions = ExpressionPrior.from_model(self.model)
        self.camera = CropCamera(self.res)
        if self.arkit:
            if not self.model.has_arkit:
                raise ValueError("ARKit expressions need a face model with the ARKit keys (facerecon assets build)")
            self.arkit_prior = ArkitPrior.from_names(self.model.arkit_names)

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, i])
        model = self.model
        id_coeff = rng.standard_normal(model.n_id).astype(np.float32)
        exp_coeff = self.expressions.sample(rng).astype(np.float32)
        keys = None
        if self.arkit and rng.random() < self.arkit:  # ARKit keys on top of half the components' expression
            keys = self.arkit_prior.sample(rng).astype(np.float32)
            exp_coeff *= 0.5
        albedo_coeff = (0.8 * rng.standard_normal(model.n_albedo)).astype(np.float32)
        identity = model.vertices(id_coeff)
        expression = model.expression_offsets(exp_coeff)
        if keys is not None:
            expression = expression + model.arkit_offsets(keys)
        angles = self.poses.sample(rng)
        shape = identity + expression
        scale, shift = self.jitter.sample(rng, self.res)
        translation = place_in_crop(shape[model.landmark_indices], angles, self.res, scale=scale, shift=shift)
        sh = sample_sh(rng)
        albedo = model.albedo(albedo_coeff)
        tone, tint = 1.0, np.ones(3)
        if model.n_albedo == 0:
            tone, tint = rng.uniform(0.8, 1.15), rng.uniform(0.93, 1.07, 3)
            albedo = albedo * tone * tint
        verts_cam = to_camera(shape, angles, translation)
        background = self.backgrounds.sample(rng, self.res)
        if self.head is None:
            image, mask = render_face(verts_cam, model.triangles, albedo, sh, background, self.camera)
        else:
            head = self.head
            image, mask = render_face(to_camera(head.around(shape, id_coeff, exp_coeff), angles, translation),
                                      head.triangles, head.albedo_around(albedo, tone * tint), sh, background,
                                      self.camera, face_triangles=head.n_face_triangles)
        landmarks_3d = verts_cam[model.landmark_indices]
        return {
            "image": degrade(image, rng),
            "face_mask": mask,
            "asm_id": model.to_uv_map(identity, self.res).astype(np.float16),
            "asm_exp": model.to_uv_map(expression, self.res).astype(np.float16),
            "id_coeff": id_coeff, "exp_coeff": exp_coeff, "albedo_coeff": albedo_coeff,
            "angles": angles.astype(np.float32), "translation": translation.astype(np.float32),
            "focal": np.float32(self.camera.focal), "sh": sh,
            "landmarks_2d": self.camera.project(landmarks_3d).astype(np.float32),
            "landmarks_3d": landmarks_3d.astype(np.float32),
        }


def render_face(verts_cam, triangles, albedo, sh, background, camera: CropCamera,
                face_triangles: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shade per-vertex ``albedo`` under ``sh`` over a uint8 background: (uint8 image, bool mask).

    The mask covers the pixels of the first ``face_triangles`` triangles (None: of all)."""
    import torch

    from facerecon_core.render import render_mesh

    bg = torch.as_tensor(background, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        out = render_mesh(torch.as_tensor(verts_cam, dtype=torch.float32)[None], torch.as_tensor(triangles),
                          camera.render_camera(), vertex_colors=torch.as_tensor(albedo, dtype=torch.float32)[None],
                          sh=torch.as_tensor(sh)[None], background=bg, backend="cpu")
    image = (out.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
    if face_triangles is None:
        return image, out.mask[0, 0].numpy() > 0.5
    ids = out.rast[0, :, :, 3].flip(0).numpy()  # triangle id + 1 (0: empty), bottom-up like the mask buffer
    return image, (ids > 0) & (ids <= face_triangles)


def render_textured(verts_cam, model: FaceModel, texture: np.ndarray, background: np.ndarray,
                    camera: CropCamera) -> tuple[np.ndarray, np.ndarray]:
    """Render a UV colour map (T, T, 3) in [0, 1] unlit over a uint8 background: (uint8 image, bool mask)."""
    import torch

    from facerecon_core.render import render_mesh

    bg = torch.as_tensor(background, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        out = render_mesh(torch.as_tensor(verts_cam, dtype=torch.float32)[None], torch.as_tensor(model.triangles),
                          camera.render_camera(), uv=torch.as_tensor(model.uv),
                          texture=torch.as_tensor(texture, dtype=torch.float32).permute(2, 0, 1)[None],
                          background=bg, backend="cpu")
    image = (out.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
    return image, out.mask[0, 0].numpy() > 0.5
