"""The model fitter: pose, identity, expression, SH light, albedo and optional per-vertex offsets.

Fits the face model to square face crops in two stages, batched on the CPU (or GPU):
1. landmarks: the 68 projected landmark vertices against detected 2D landmarks (from a
   PnP initialisation), with standard normal coefficient priors;
2. photometric: the shaded render against the crop inside the rendered face, plus the landmark
   term, the priors and, with per-vertex offsets, Laplacian smoothness.
Every crop is seen through :class:`facerecon_core.pose.CropCamera`. Crops of one person can share one identity
(coefficients and offsets; ``Fitter.fit(..., groups=...)``): a joint solve over their photos; crops known to show a
neutral face (``neutral=...``) hold their expression near zero, so the shared identity is the person's rest face.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting.losses import Laplacian, gaussian_prior, landmark_error, landmark_loss, photometric_loss
from facerecon_core.pose import CropCamera, opencv_to_pose
from facerecon_core.render import euler_to_matrix, render_mesh

JAW = slice(0, 17)


@dataclass(frozen=True)
class FitConfig:
    """Steps, weights and learning rates of the two fitting stages."""

    landmark_steps: int = 300
    photometric_steps: int = 100
    render_size: int = 128  # resolution of the photometric term's renders
    landmark_sigma: float = 0.008  # landmark noise as a fraction of the crop size (2 px at 256)
    jaw_weight: float = 0.5  # the jaw-line landmarks slide with the silhouette: trust them less
    photometric_weight: float = 400.0
    id_prior: float = 1.0
    exp_prior: float = 1.0
    albedo_prior: float = 1.0
    sh_prior: float = 1.0  # on the non-ambient SH coefficients
    fit_offsets: bool = False
    offset_laplacian: float = 1e4  # on the mean squared Laplacian of the offsets (mm²): only smooth offsets
    offset_l2: float = 0.05  # mean squared offset, mm²
    lr: float = 0.02  # Adam step for coefficients, angles (rad) and SH
    lr_translation: float = 2.0  # Adam step for the translation, mm
    lr_offsets: float = 0.05  # mm
    arkit: bool = False  # also fit the face model's 51 ARKit weights, each in [0, 1], beside the components
    arkit_prior: float = 6.0  # L1 on the ARKit weights: a key moves only when the photo asks for it (chosen on labelled
    # photos: lower lets the keys fit the identity too, e.g. cheekPuff and browDown on neutral faces)
    arkit_unused: tuple[str, ...] = ("cheekPuff",)  # keys held at 0: puffed cheeks widen the face as a wide face
    # does, and the landmarks cannot tell them apart, so the fit spent cheekPuff on identity (mean weight 0.42 on
    # taiwan_expr_faces' neutral photos; without it their fitted expression falls 2.18 → 1.48 mm RMS, the
    # landmark error unchanged: docs/training-history.md, "Where the identity goes")
    neutral_prior: float = 25.0  # both expression priors × this on crops known to show a neutral face (Fitter.fit's
    # ``neutral``): a person's rest face is their identity, and their other crops' expressions are measured from it


@dataclass
class FitResult:
    """Fitted parameters per crop (numpy, batch first) and how well they fit."""

    id_coeff: np.ndarray  # (B, K_id)
    exp_coeff: np.ndarray  # (B, K_exp)
    albedo_coeff: np.ndarray  # (B, K_alb)
    angles: np.ndarray  # (B, 3) pitch, yaw, roll in radians
    translation: np.ndarray  # (B, 3) mm, camera space
    sh: np.ndarray  # (B, 3, 9)
    offsets: np.ndarray | None  # (B, V, 3) mm in the model frame, or None
    landmarks: np.ndarray  # (B, 68, 2) fitted landmarks in crop pixels
    landmark_error: np.ndarray  # (B,) mean landmark error in crop pixels
    crop_size: int
    losses: dict[str, dict[str, float]] = field(default_factory=dict)  # stage → term → final value
    arkit_weights: np.ndarray | None = None  # (B, K) in [0, 1], the face model's ARKit keys (FitConfig.arkit)

    def shape(self, model: FaceModel) -> np.ndarray:
        """Fitted shapes in the model frame (B, V, 3): identity + expression (+ ARKit keys) (+ offsets)."""
        verts = model.vertices(self.id_coeff, self.exp_coeff)
        if self.arkit_weights is not None:
            verts = verts + model.arkit_offsets(self.arkit_weights)
        return verts if self.offsets is None else verts + self.offsets


class _Params(torch.nn.Module):
    def __init__(self, model: FaceModel, angles, translation, fit_offsets: bool, fit_arkit: bool = False,
                 groups: torch.Tensor | None = None, exp_scale: torch.Tensor | None = None):
        super().__init__()
        b = len(angles)
        self.groups = groups  # (B,) index of each crop's identity, or None: one identity per crop
        # (B,) factor on each crop's expression priors (a buffer: it moves with the parameters)
        self.register_buffer("exp_scale", torch.ones(b) if exp_scale is None else exp_scale)
        n_identities = b if groups is None else int(groups.max()) + 1
        self.id = torch.nn.Parameter(torch.zeros(n_identities, model.n_id))
        self.exp = torch.nn.Parameter(torch.zeros(b, model.n_exp))
        self.arkit = torch.nn.Parameter(torch.zeros(b, len(model.arkit_names))) if fit_arkit else None
        self.albedo = torch.nn.Parameter(torch.zeros(b, model.n_albedo))
        self.angles = torch.nn.Parameter(torch.as_tensor(angles, dtype=torch.float32))
        self.translation = torch.nn.Parameter(torch.as_tensor(translation, dtype=torch.float32))
        sh = torch.zeros(b, 3, 9)
        sh[:, :, 0] = 1.0
        self.sh = torch.nn.Parameter(sh)
        self.offsets = torch.nn.Parameter(torch.zeros(n_identities, model.n_vertices, 3)) if fit_offsets else None
        self.base: torch.Tensor | None = None  # (B, V, 3) start shape replacing the mean (Fitter.refine)
        self.base_albedo: torch.Tensor | None = None  # (B, V, 3) start albedo replacing the mean

    def per_crop(self, identity: torch.Tensor | None) -> torch.Tensor | None:
        """An identity parameter (coefficients or offsets) per crop: its group's, or the crop's own."""
        return identity if identity is None or self.groups is None else identity[self.groups]


class Fitter:
    """Fits a :class:`FaceModel` to batches of face crops."""

    def __init__(self, model: FaceModel, config: FitConfig = FitConfig(), device: str = "cpu"):
        self.model, self.config, self.device = model, config, torch.device(device)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.mean, self.id_basis, self.exp_basis = t(model.mean_shape), t(model.id_basis), t(model.exp_basis)
        self.albedo_mean, self.albedo_basis = t(model.albedo_mean), t(model.albedo_basis)
        self.triangles = torch.as_tensor(model.triangles, device=self.device)
        self.lm_index = torch.as_tensor(model.landmark_indices, device=self.device)
        self.lm_mean, self.lm_id, self.lm_exp = (self.mean[self.lm_index], self.id_basis[:, self.lm_index],
                                                 self.exp_basis[:, self.lm_index])
        self.laplacian = Laplacian(*model.neighbours)
        weights = torch.ones(68, device=self.device)
        weights[JAW] = config.jaw_weight
        self.lm_weights = weights
        self.arkit_basis = self.lm_arkit = self.arkit_free = None
        if config.arkit:
            if not model.has_arkit:
                raise ValueError("FitConfig.arkit needs a face model with the ARKit keys (facerecon assets build)")
            unknown = set(config.arkit_unused) - set(model.arkit_names)
            if unknown:
                raise ValueError(f"FitConfig.arkit_unused: no ARKit key {', '.join(sorted(unknown))}")
            self.arkit_basis = t(model.arkit_basis)
            self.lm_arkit = self.arkit_basis[:, self.lm_index]
            self.arkit_free = t([name not in config.arkit_unused for name in model.arkit_names])

    # ------------------------------------------------------------------------------ API
    def fit(self, crops: np.ndarray, landmarks: np.ndarray, progress: bool = True,
            groups: np.ndarray | None = None, neutral: np.ndarray | None = None) -> FitResult:
        """Fit crops (B, S, S, 3) uint8 RGB with their 68 landmarks (B, 68, 2) in crop pixels.

        ``groups`` (B,) labels the crops of one person (any hashable labels): crops with the same label share one
        identity (coefficients and offsets), each keeps its own pose, expression, albedo and light. The priors
        count per crop, as in separate fits. ``neutral`` (B,) bool marks crops known to show a neutral face: their
        expression priors weigh ``config.neutral_prior`` times more.
        """
        crops, landmarks = np.asarray(crops), np.ascontiguousarray(landmarks, np.float64)
        if crops.ndim != 4 or crops.shape[1] != crops.shape[2] or crops.shape[3] != 3:
            raise ValueError(f"expected square RGB crops (B, S, S, 3), got {crops.shape}")
        if landmarks.shape != (len(crops), 68, 2):
            raise ValueError(f"expected landmarks of shape ({len(crops)}, 68, 2), got {landmarks.shape}")
        index = None
        if groups is not None:
            if len(groups) != len(crops):
                raise ValueError(f"expected one group label per crop ({len(crops)}), got {len(groups)}")
            index = torch.as_tensor(np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1),
                                    device=self.device)
        exp_scale = None
        if neutral is not None:
            neutral = np.asarray(neutral, bool)
            if neutral.shape != (len(crops),):
                raise ValueError(f"expected one neutral flag per crop ({len(crops)}), got shape {neutral.shape}")
            exp_scale = torch.as_tensor(np.where(neutral, self.config.neutral_prior, 1.0), dtype=torch.float32)
        size = crops.shape[1]
        angles, translation = self._initial_pose(landmarks, size)
        params = _Params(self.model, angles, translation, self.config.fit_offsets, self.config.arkit,
                         index, exp_scale).to(self.device)
        target = torch.as_tensor(landmarks, dtype=torch.float32, device=self.device)
        losses = {"landmarks": self._run(params, target, size, None, progress)}
        if self.config.photometric_steps > 0:
            image = self._photo_tensor(crops)
            losses["photometric"] = self._run(params, target, size, image, progress)
        return self._result(params, target, size, losses)

    def refine(self, crops: np.ndarray, landmarks: np.ndarray, shape: np.ndarray, angles: np.ndarray,
               translation: np.ndarray, sh: np.ndarray, albedo: np.ndarray | None = None, progress: bool = False,
               callback: Callable[[int, dict[str, float]], None] | None = None) -> FitResult:
        """The photometric stage only, started from a given face instead of the mean face.

        ``shape`` (B, V, 3) mm (model frame) and ``albedo`` (B, V, 3) (default: the model's mean) take
        the place of the model's means; ``angles``, ``translation`` (crop camera of the crops' size)
        and ``sh`` (B, 3, 9) start the pose and light (the light is not re-initialised). The fitted
        coefficients and offsets are *changes* to the given face (so the priors and the offsets'
        Laplacian act on the changes). Runs ``config.photometric_steps`` steps; ``callback(step,
        terms)`` is called after each with the per-term losses (batch means).
        """
        crops, landmarks = np.asarray(crops), np.ascontiguousarray(landmarks, np.float64)
        size = crops.shape[1]
        params = _Params(self.model, np.asarray(angles, np.float32), np.asarray(translation, np.float32),
                         self.config.fit_offsets).to(self.device)
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        params.base = t(shape)
        params.base_albedo = None if albedo is None else t(albedo)
        with torch.no_grad():
            params.sh.copy_(t(sh))
        target = t(landmarks)
        losses = {"photometric": self._run(params, target, size, self._photo_tensor(crops), progress,
                                           init_light=False, callback=callback)}
        return self._result(params, target, size, losses)

    @torch.no_grad()
    def _result(self, params: _Params, target: torch.Tensor, size: int, losses: dict) -> FitResult:
        projected = self._project_landmarks(params, size)
        cpu = lambda p: p.detach().cpu().numpy()  # noqa: E731
        return FitResult(
            id_coeff=cpu(params.per_crop(params.id)), exp_coeff=cpu(params.exp), albedo_coeff=cpu(params.albedo),
            angles=cpu(params.angles), translation=cpu(params.translation), sh=cpu(params.sh),
            offsets=None if params.offsets is None else cpu(params.per_crop(params.offsets)),
            landmarks=cpu(projected), landmark_error=cpu(landmark_error(projected, target)), crop_size=size,
            losses=losses, arkit_weights=None if params.arkit is None else cpu(params.arkit),
        )

    # ------------------------------------------------------------------------ stages
    def _run(self, params: _Params, target, size: int, image: torch.Tensor | None, progress: bool,
             init_light: bool = True, callback: Callable[[int, dict[str, float]], None] | None = None
             ) -> dict[str, float]:
        cfg = self.config
        photometric = image is not None
        groups = [
            {"params": [params.id, params.exp, params.angles, *([params.arkit] if params.arkit is not None else [])],
             "lr": cfg.lr},
            {"params": [params.translation], "lr": cfg.lr_translation},
        ]
        if photometric:
            groups.append({"params": [params.albedo, params.sh], "lr": cfg.lr})
            if params.offsets is not None:
                groups.append({"params": [params.offsets], "lr": cfg.lr_offsets})
            if init_light:
                self._init_light(params, image)
        optimiser = torch.optim.Adam(groups)
        steps = cfg.photometric_steps if photometric else cfg.landmark_steps
        bar = tqdm(range(steps), desc="fit " + ("photometric" if photometric else "landmarks"),
                   disable=not progress, leave=False)
        terms: dict[str, torch.Tensor] = {}
        for step in bar:
            optimiser.zero_grad(set_to_none=True)
            terms = self._terms(params, target, size, image)
            total = sum(terms.values())
            total.mean().backward()
            optimiser.step()
            if params.arkit is not None:  # projected back into [0, 1], the unused keys to 0
                with torch.no_grad():
                    params.arkit.clamp_(0.0, 1.0).mul_(self.arkit_free)
            bar.set_postfix({k: f"{v.mean().item():.3g}" for k, v in terms.items()})
            if callback is not None:
                callback(step, {k: float(v.detach().mean()) for k, v in terms.items()})
        return {k: float(v.detach().mean()) for k, v in terms.items()}

    def _terms(self, params: _Params, target, size: int, image) -> dict[str, torch.Tensor]:
        cfg = self.config
        sigma = cfg.landmark_sigma * size
        terms = {
            "landmarks": landmark_loss(self._project_landmarks(params, size), target, self.lm_weights, sigma),
            "id_prior": cfg.id_prior * gaussian_prior(params.per_crop(params.id)),
            "exp_prior": cfg.exp_prior * params.exp_scale * gaussian_prior(params.exp),
        }
        if params.arkit is not None:  # the weights are ≥ 0: their sum is their L1 norm
            terms["arkit_prior"] = cfg.arkit_prior * params.exp_scale * params.arkit.sum(-1)
        if image is None:
            return terms
        render, mask = self._render(params)
        terms["photometric"] = cfg.photometric_weight * photometric_loss(image, render, mask)
        terms["albedo_prior"] = cfg.albedo_prior * gaussian_prior(params.albedo)
        terms["sh_prior"] = cfg.sh_prior * params.sh[:, :, 1:].square().flatten(1).sum(-1)
        if params.offsets is not None:
            offsets = params.per_crop(params.offsets)
            terms["offset_smooth"] = cfg.offset_laplacian * self.laplacian.energy(offsets)
            terms["offset_l2"] = cfg.offset_l2 * offsets.square().sum(-1).mean(-1)
        return terms

    # ----------------------------------------------------------------------- geometry
    def shape(self, params: _Params) -> torch.Tensor:
        base = self.mean if params.base is None else params.base
        verts = base + torch.einsum("bk,kvc->bvc", params.per_crop(params.id), self.id_basis) \
            + torch.einsum("bk,kvc->bvc", params.exp, self.exp_basis)
        if params.arkit is not None:
            verts = verts + torch.einsum("bk,kvc->bvc", params.arkit, self.arkit_basis)
        return verts if params.offsets is None else verts + params.per_crop(params.offsets)

    def _to_camera(self, verts: torch.Tensor, params: _Params) -> torch.Tensor:
        return verts @ euler_to_matrix(params.angles).transpose(1, 2) + params.translation[:, None]

    def _project_landmarks(self, params: _Params, size: int) -> torch.Tensor:
        base = self.lm_mean if params.base is None else params.base[:, self.lm_index]
        verts = base + torch.einsum("bk,kvc->bvc", params.per_crop(params.id), self.lm_id) \
            + torch.einsum("bk,kvc->bvc", params.exp, self.lm_exp)
        if params.arkit is not None:
            verts = verts + torch.einsum("bk,kvc->bvc", params.arkit, self.lm_arkit)
        if params.offsets is not None:
            verts = verts + params.per_crop(params.offsets)[:, self.lm_index]
        # the render camera counts pixels from the image corner; facerecon's points from pixel centres
        return CropCamera(size).render_camera().to_pixels(self._to_camera(verts, params)) - 0.5

    def _render(self, params: _Params) -> tuple[torch.Tensor, torch.Tensor]:
        camera = CropCamera(self.config.render_size).render_camera()
        verts_cam = self._to_camera(self.shape(params), params)
        base = self.albedo_mean if params.base_albedo is None else params.base_albedo
        albedo = base + torch.einsum("bk,kvc->bvc", params.albedo, self.albedo_basis)
        out = render_mesh(verts_cam, self.triangles, camera, vertex_colors=albedo, sh=params.sh)
        return out.image, out.mask

    # ------------------------------------------------------------------ initialisation
    def _initial_pose(self, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-crop PnP of the mean face's landmark vertices (EPnP, then iterative refinement)."""
        object_points = self.model.mean_shape[self.model.landmark_indices].astype(np.float64)
        matrix = CropCamera(size).matrix()
        angles, translation = [], []
        for lm in landmarks:
            ok, rvec, tvec = cv2.solvePnP(object_points, lm, matrix, None, flags=cv2.SOLVEPNP_EPNP)
            if ok:
                ok, rvec, tvec = cv2.solvePnP(object_points, lm, matrix, None, rvec, tvec, True,
                                              flags=cv2.SOLVEPNP_ITERATIVE)
            a, t = opencv_to_pose(rvec, tvec) if ok else (np.zeros(3), np.zeros(3))
            if not ok or t[2] >= -100.0:  # PnP failed or put the face behind / at the camera
                a, t = np.zeros(3), self._frontal_translation(lm, size)
            angles.append(a)
            translation.append(t)
        return np.array(angles), np.array(translation)

    def _frontal_translation(self, landmarks: np.ndarray, size: int) -> np.ndarray:
        model_lm = self.model.mean_shape[self.model.landmark_indices]
        spread_mm = np.ptp(model_lm[:, :2], axis=0).mean()
        spread_px = max(np.ptp(landmarks, axis=0).mean(), 1.0)
        cam = CropCamera(size)
        depth = cam.focal * spread_mm / spread_px
        centre = landmarks.mean(axis=0)
        return np.array([(centre[0] - cam.centre) * depth / cam.focal,
                         (cam.centre - centre[1]) * depth / cam.focal, -depth])

    def _photo_tensor(self, crops: np.ndarray) -> torch.Tensor:
        image = torch.as_tensor(crops, device=self.device).permute(0, 3, 1, 2).float() / 255.0
        return F.interpolate(image, size=(self.config.render_size,) * 2, mode="area")

    @torch.no_grad()
    def _init_light(self, params: _Params, image: torch.Tensor) -> None:
        """Start the ambient SH term at the photo's colour over the albedo's, per channel."""
        render, mask = self._render(params)
        area = mask.flatten(1).sum(-1).clamp_min(1.0)[:, None]
        photo_mean = (image * mask).flatten(2).sum(-1) / area
        render_mean = (render * mask).flatten(2).sum(-1) / area
        params.sh[:, :, 0] = (photo_mean / render_mean.clamp_min(1e-3)).clamp(0.2, 3.0)
