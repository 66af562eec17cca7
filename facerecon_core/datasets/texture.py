"""``texture`` samples (the paper's FTD): photo crop, 3DMM albedo map I_u, real albedo map I_a.

Sample ``i`` uses photo fit ``i % n``: the first round shows the photo as it was taken, later rounds
a ``profiled`` new view of it. The UV targets are the same for every view of a photo: ``uv_albedo``
is the albedo model's map for the fitted coefficients (I_u), ``uv_texture`` the photo's unwrapped,
de-lit texture (I_a, 0 where unseen) and ``uv_visibility`` where it was seen. Geometry labels as
for the other kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.datasets.asm import render_face
from facerecon_core.datasets.profiled import ProfiledGenerator
from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting.photos import PhotoFit
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.texture.unwrap import unwrap_photo

GENERATOR = "texture-2"


@dataclass
class TextureGenerator:
    model: FaceModel
    fits: list[PhotoFit]
    seed: int
    res: int = 256

    def __post_init__(self) -> None:
        self.profiled = ProfiledGenerator(self.model, self.fits, self.seed, self.res)

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        fit = self.fits[i % len(self.fits)]
        sample = self.profiled(i) if i >= len(self.fits) else self._as_taken(fit)
        return sample | self._uv_targets(fit)

    def _as_taken(self, fit: PhotoFit) -> dict[str, np.ndarray]:
        """The photo's own crop with the fit's labels."""
        import cv2

        model, camera = self.model, CropCamera(self.res)
        scale = self.res / fit.image.shape[0]
        image = cv2.resize(fit.image, (self.res, self.res), interpolation=cv2.INTER_AREA) if scale != 1 else fit.image
        identity = fit.identity(model)
        expression = fit.expression(model)
        # the crop camera scales with the crop, so the same pose frames the face in the resized crop
        verts_cam = to_camera(identity + expression, fit.angles, fit.translation)
        _, mask = render_face(verts_cam, model.triangles, model.albedo_mean, fit.sh, image, camera)
        landmarks_3d = verts_cam[model.landmark_indices]
        return {
            "image": image, "face_mask": mask,
            "asm_id": model.to_uv_map(identity, self.res).astype(np.float16),
            "asm_exp": model.to_uv_map(expression, self.res).astype(np.float16),
            "id_coeff": fit.id_coeff.astype(np.float32), "exp_coeff": fit.exp_coeff.astype(np.float32),
            "albedo_coeff": fit.albedo_coeff.astype(np.float32),
            "angles": fit.angles.astype(np.float32), "translation": fit.translation.astype(np.float32),
            "focal": np.float32(camera.focal), "sh": fit.sh.astype(np.float32),
            "landmarks_2d": camera.project(landmarks_3d).astype(np.float32),
            "landmarks_3d": landmarks_3d.astype(np.float32),
        }

    def _uv_targets(self, fit: PhotoFit) -> dict[str, np.ndarray]:
        model = self.model
        verts_cam = to_camera(fit.shape(model), fit.angles, fit.translation)
        texture = unwrap_photo(fit.image, verts_cam, model, fit.sh, self.res)
        to_uint8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
        return {
            "uv_albedo": to_uint8(model.to_uv_map(model.albedo(fit.albedo_coeff), self.res)),
            "uv_texture": to_uint8(texture.albedo()),
            "uv_visibility": texture.visibility,
        }
