"""``profiled`` samples: new views of real photos, as 300W-LP was made from 300W.

From a photo's fit (identity + per-vertex offsets, expression, pose, SH), the head is turned to a
new yaw (steps of 15° from the photo's, out to ±75°; or, with ``yaw_range``, uniform within
±``yaw_range`` whatever the photo's, so that near-profiles are as common as frontal views),
optionally tilted to a new pitch (uniform within ±``pitch_turn`` of the photo's, out to ±45°; 300W-LP
turns the yaw only, and photos are seldom taken from above or below) and, half of the time, given a
new expression.
The face is re-rendered with the photo's own texture (unwrapped, occluded texels filled by
symmetry), and the rest of the image is warped consistently: the original face is first inpainted
away, then control points on the face outline and on two rings around it (3D points that turn
with the head) move to their new projections while the image corners stay. Labels are exact
relative to the fit. With ``pairs``, each sample also holds a view of another photo of the same person
(:mod:`facerecon_core.datasets.people`), for the same-person identity term of the geometry stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.datasets.expressions import ExpressionPrior
from facerecon_core.datasets.scene import CropJitter, degrade, place_in_crop
from facerecon_core.datasets.warp import warp_image
from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.topology import boundary_vertices
from facerecon_core.fitting.photos import PhotoFit
from facerecon_core.pose import CropCamera, euler_to_matrix, to_camera
from facerecon_core.texture.unwrap import fill_occluded, unwrap_photo

GENERATOR = "profiled-2"
YAW_STEP = np.radians(15.0)
STEP_WEIGHTS = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # turns of 1–5 steps (15°–75°); large turns (more
# mirrored texture, more warping) are drawn less often
MAX_YAW = np.radians(75.0)
MAX_PITCH = np.radians(45.0)
HEAD_CENTRE = np.array([0.0, 0.0, -70.0])  # mm in the model frame: the head turns about a point behind the face
RINGS = (1.3, 1.7)  # outer control rings: scale of the face outline about the head centre
PROFILED_JITTER = CropJitter(scale=0.08, shift=0.03)  # the views' default framing: a good detector's


def rotate_sh(sh: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """SH coefficients (3, 9) of the same lighting after the lit object turned by ``rotation``.

    Shading that was E(n) becomes E(Rᵀn); SH bands are closed under rotation, so a least-squares
    fit on sample normals is exact.
    """
    import torch

    from facerecon_core.render import sh_basis

    normals = np.random.default_rng(0).standard_normal((256, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    basis = sh_basis(torch.as_tensor(normals)).numpy()
    turned = sh_basis(torch.as_tensor(normals @ rotation)).numpy()  # rows: basis at Rᵀn
    coeff, *_ = np.linalg.lstsq(basis, turned @ np.asarray(sh, np.float64).T, rcond=None)
    return coeff.T.astype(np.float32)


@dataclass
class ProfiledGenerator:
    """Callable ``sample(i)``: view ``i // len(fits)`` of photo fit ``i % len(fits)``."""

    model: FaceModel
    fits: list[PhotoFit]
    seed: int
    res: int = 256
    pitch_turn: float = 0.0  # degrees (±): a uniform pitch tilt per view; 0 keeps the photo's pitch
    yaw_range: float = 0.0  # degrees (±): each view's yaw uniform within it; 0: turns in steps from the photo's
    jitter: CropJitter = PROFILED_JITTER  # the crop's detection jitter
    pairs: bool = False  # also a view of another photo of the same person (``image_pair``, ``pair_valid``)

    def __post_init__(self) -> None:
        if not self.fits:
            raise ValueError("profiled data needs at least one usable photo fit")
        self.expressions = ExpressionPrior.from_model(self.model)
        self.outline = boundary_vertices(self.model.triangles)
        self.camera = CropCamera(self.res)
        if self.pairs:
            from facerecon_core.datasets.people import person_of

            persons = [person_of(f.source) for f in self.fits]
            self.partners = [[j for j, q in enumerate(persons) if q is not None and q == p and j != k]
                             for k, p in enumerate(persons)]

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, i])
        sample = self._view(self.fits[i % len(self.fits)], rng)
        if self.pairs:  # drawn only then, so that the samples without pairs stay as they were
            partners = self.partners[i % len(self.fits)]
            if partners:
                sample["image_pair"] = self._view(self.fits[partners[rng.integers(len(partners))]], rng)["image"]
            else:
                sample["image_pair"] = np.zeros_like(sample["image"])
            sample["pair_valid"] = np.float32(len(partners) > 0)
        return sample

    def _view(self, fit: PhotoFit, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A new view of ``fit``'s photo with its labels."""
        model = self.model
        identity = fit.identity(model)
        angles = fit.angles.astype(np.float64).copy()
        if self.yaw_range > 0:
            angles[1] = rng.uniform(-1.0, 1.0) * np.radians(self.yaw_range)
        else:
            steps = (1 + rng.choice(len(STEP_WEIGHTS), p=STEP_WEIGHTS / STEP_WEIGHTS.sum())) * rng.choice([-1, 1])
            angles[1] = np.clip(angles[1] + steps * YAW_STEP, -MAX_YAW, MAX_YAW)
        if self.pitch_turn > 0:  # drawn only then, so that pitch_turn=0 gives the yaw-only samples unchanged
            tilt = rng.uniform(-1.0, 1.0) * np.radians(self.pitch_turn)
            angles[0] = np.clip(angles[0] + tilt, -MAX_PITCH, MAX_PITCH)
        new_expression = rng.random() < 0.5
        exp_coeff = self.expressions.sample(rng) if new_expression else fit.exp_coeff
        expression = (model.expression_offsets(np.asarray(exp_coeff, np.float32)) if new_expression
                      else fit.expression(model))  # the photo's own, with its ARKit keys when they were fitted
        shape = identity + expression
        scale, shift = self.jitter.sample(rng, self.res)
        translation = place_in_crop(shape[model.landmark_indices], angles, self.res, scale=scale, shift=shift)
        image, mask, verts_cam = self._render(fit, shape, angles, translation)
        rotation = euler_to_matrix(angles) @ euler_to_matrix(fit.angles).T
        landmarks_3d = verts_cam[model.landmark_indices]
        return {
            "image": degrade(image, rng), "face_mask": mask,
            "asm_id": model.to_uv_map(identity, self.res).astype(np.float16),
            "asm_exp": model.to_uv_map(expression, self.res).astype(np.float16),
            "id_coeff": fit.id_coeff.astype(np.float32), "exp_coeff": np.asarray(exp_coeff, np.float32),
            "albedo_coeff": fit.albedo_coeff.astype(np.float32),
            "angles": angles.astype(np.float32), "translation": translation.astype(np.float32),
            "focal": np.float32(self.camera.focal), "sh": rotate_sh(fit.sh, rotation),
            "landmarks_2d": self.camera.project(landmarks_3d).astype(np.float32),
            "landmarks_3d": landmarks_3d.astype(np.float32),
        }

    def _render(self, fit: PhotoFit, shape: np.ndarray, angles, translation):
        """Re-render the photo's face at the new pose over the consistently warped photo."""
        from facerecon_core.datasets.asm import render_textured

        model, crop = self.model, fit.image.shape[0]
        old_cam = to_camera(fit.shape(model), fit.angles, fit.translation)
        texture = unwrap_photo(fit.image, old_cam, model, fit.sh, self.res)
        fallback = model.to_uv_map(model.albedo(fit.albedo_coeff), self.res) * texture.shading
        colour = fill_occluded(texture.colour, texture.visibility, fallback)
        old_points, new_points = self._control_points(fit, shape, angles, translation, crop)
        background = warp_image(_resize(self._without_face(fit, old_cam), self.res), old_points * self.res / crop,
                                new_points)
        verts_cam = to_camera(shape, angles, translation)
        image, mask = render_textured(verts_cam, model, colour, background, self.camera)
        return image, mask, verts_cam

    def _without_face(self, fit: PhotoFit, old_cam: np.ndarray) -> np.ndarray:
        """The photo with its fitted face region inpainted, so a turned head leaves no ghost behind."""
        import cv2
        import torch

        from facerecon_core.render.kernels import rasterize_numpy

        camera = CropCamera(fit.image.shape[0])
        clip = camera.render_camera().to_clip(torch.as_tensor(old_cam, dtype=torch.float64)).numpy()
        rast = rasterize_numpy(clip[None], self.model.triangles, (camera.size, camera.size))
        mask = (rast[0, ::-1, :, 3] > 0).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        return cv2.inpaint(fit.image, mask, 5, cv2.INPAINT_TELEA)

    def _control_points(self, fit: PhotoFit, shape, angles, translation, crop: int):
        """Outline vertices and outer rings, projected before (crop pixels) and after (output pixels)."""
        outline = fit.shape(self.model)[self.outline]
        new_outline = shape[self.outline]
        rings_old = [HEAD_CENTRE + (outline - HEAD_CENTRE) * s for s in RINGS]
        rings_new = [HEAD_CENTRE + (new_outline - HEAD_CENTRE) * s for s in RINGS]
        old = CropCamera(crop).project(to_camera(np.concatenate([outline, *rings_old]), fit.angles, fit.translation))
        new = self.camera.project(to_camera(np.concatenate([new_outline, *rings_new]), angles, translation))
        return old, new


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.shape[0] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
