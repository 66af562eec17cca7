"""``Reconstructor`` (load once, reconstruct many photos) and ``reconstruct`` (one call).

The data flow, one module per stage: :mod:`.detect` (photo → faces + 68 landmarks) →
:mod:`.crop` (3DDFA_V2 crop from the landmarks) → network (:class:`ModelBundle`; with ``recrop``, a
geometry-only pass 1, a re-crop from its landmarks, then pass 2) →
:mod:`.decode` (UV maps → identity mesh, expression offsets, landmarks) → :mod:`.texture` (UV
albedo texture) → :mod:`.light` (the SH light fitted to the photo) → optionally :mod:`.refine`
(torch). Without refinement and with the ONNX runtime nothing here imports torch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facerecon_core import paths
from facerecon_core.detect import Crop, DetectedFace, FaceDetector, LandmarkDetector, NoFaceError
from facerecon_core.facemodel import FaceModel
from facerecon_core.head.build import build_head
from facerecon_core.inference import BundleError, ModelBundle
from facerecon_core.pipeline import crop as crop_stage
from facerecon_core.pipeline import light as light_stage
from facerecon_core.pipeline import texture as texture_stage
from facerecon_core.pipeline.decode import DecodedFace, Decoder
from facerecon_core.pipeline.detect import find_faces, load_image
from facerecon_core.pipeline.photo_texture import TEXTURE_MODES, photo_texture
from facerecon_core.pipeline.same_person import PersonReconstruction, PhotoInput, SamePersonConfig, unique_names
from facerecon_core.pipeline.same_person import combine as combine_photos
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.reconstruction import FaceReconstruction

Progress = Callable[[str, float], Any]
"""``progress(stage, fraction)``: ``stage`` names the stage starting (or ``"refine"`` per step, then
``"done"``), ``fraction`` in [0, 1] is how far the photo is. Returning ``False`` cancels."""

# share of a photo's run each stage starts at (refinement takes the part after "texture")
_STAGES = {"load": 0.0, "detect": 0.02, "crop": 0.25, "network": 0.3, "recrop": 0.5, "decode": 0.75,
           "texture": 0.85, "light": 0.9, "head": 0.95, "done": 1.0}
MESHES = ("face", "head")
_REFINE_SHARE = 0.8  # with refinement, the stages before it are squeezed into the first 20 %

DETECTION_SCORE_HALF = 0.5
"""Detector score at which the detection part of the confidence is one half (HOG margins ~0–3)."""

LANDMARK_AGREEMENT_SIGMA = 0.08
"""Mean distance between detected and predicted landmarks, in face-box sides, at which the agreement
part of the confidence falls to exp(−½)."""


class ModelMissingError(BundleError):
    """No model bundle at the default location (and none given)."""


class ReconstructionCancelled(Exception):
    """The progress callback returned False, or :meth:`Reconstructor.cancel` was called."""


def default_model_dir() -> Path:
    """Where the shipped bundle lives: ``facerecon_core/data/model/`` (or ``$FACERECON_MODEL``)."""
    return paths.default_model_dir()


def resolve_bundle(model: str | os.PathLike | ModelBundle | None, facemodel: FaceModel, runtime: str = "onnx",
                   device: str = "cpu") -> ModelBundle:
    """A loaded bundle from a folder, an already loaded bundle, or None (the default location)."""
    if isinstance(model, ModelBundle):
        if model.facemodel_hash != facemodel.content_hash:
            raise BundleError(f"{model.model_dir}: the bundle was trained on face model {model.facemodel_hash[:12]}…, "
                              f"the given face model is {facemodel.content_hash[:12]}…")
        return model
    if model is None:
        model_dir = default_model_dir()
        if not (model_dir / "manifest.json").is_file():
            raise ModelMissingError(f"no model at {model_dir}; train and export one with `facerecon train` / "
                                    "`facerecon export` or pass --model")
        model = model_dir
    return ModelBundle.load(model, facemodel=facemodel, runtime=runtime, device=device)


def resolve_device(device: str, runtime: str = "onnx") -> str:
    """``auto`` → ``cuda`` when the chosen runtime can use it, else ``cpu``."""
    if device in ("cpu", "cuda"):
        return device
    if device != "auto":
        raise ValueError(f"device {device!r}: expected auto, cpu or cuda")
    if runtime == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import onnxruntime as ort

    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def confidence(face: DetectedFace, predicted: np.ndarray) -> float:
    """In [0, 1]: detector score s → s / (s + 0.5), times the agreement of the predicted landmarks
    (photo px) with the detected ones: exp(−½ (NME / 0.08)²), NME = mean distance / face-box side."""
    score = max(float(face.box.score), 0.0)
    detection = score / (score + DETECTION_SCORE_HALF)
    if not np.all(np.isfinite(predicted)):
        return 0.0
    side = max(np.sqrt(max(face.box.area, 1.0)), 1.0)
    nme = float(np.linalg.norm(predicted - face.landmarks, axis=-1).mean()) / side
    return float(detection * np.exp(-0.5 * (nme / LANDMARK_AGREEMENT_SIGMA) ** 2))


@dataclass
class RunDetails:
    """Per face of the last :meth:`Reconstructor.reconstruct` call: what the pipeline saw."""

    detection: DetectedFace  # detector box and 68 landmarks (photo px)
    first_crop: Crop  # pass 1: from the detected landmarks
    second_crop: Crop  # pass 2 (``recrop``): from the predicted landmarks (= first_crop when off or not accepted)
    recropped: bool  # whether the predicted landmarks were used for the second crop
    refine_losses: dict[str, float] = field(default_factory=dict)
    albedo_map: np.ndarray | None = None  # (A, A, 3) the texture stream's UV albedo map in [0, 1] (after refinement)


class Reconstructor:
    """Loads the face detector, the model bundle and the face model once; reconstructs photos.

    ``model``: bundle folder, loaded :class:`ModelBundle`, or None (:func:`default_model_dir`).
    ``facemodel``: :class:`FaceModel` or asset path (None: the default asset). ``runtime``: ``onnx``
    (torch-free) or ``torch``; ``device``: ``auto``, ``cpu`` or ``cuda``. ``texture_size``: side of the
    albedo texture. ``refine``: default number of photometric refinement steps (torch). ``mirror``:
    average each geometry prediction with the one for the mirrored crop (:mod:`facerecon_core.inference.mirror`).
    ``shifts``: and with those for four copies of the crop shifted by 1/64 of its size
    (:mod:`facerecon_core.inference.shift`).
    ``recrop``: a second network pass on the crop around the landmarks the first pass predicted (3DDFA_V2's
    scheme; off by default: on held-out synthetic faces it made the bundled model's landmarks worse, 2.44 →
    2.48 % NME, MODEL_CARD.md).
    ``light``: ``fit`` (the SH light fitted to the photo, :mod:`.light`) or ``network`` (the PSN's).
    ``texture``: ``photo`` (the photo's own detail, de-lit, blended with the texture stream's map,
    :mod:`.photo_texture`; its confidence in :attr:`FaceReconstruction.texture_confidence`) or ``network``
    (the texture stream's map alone, :mod:`.texture`).
    ``mesh``: ``face`` (the face model's topology) or ``head`` (also the whole ICT head around it, with eyes,
    teeth and its ARKit keys, in :attr:`FaceReconstruction.head`; :mod:`facerecon_core.head`); ``head_rig``: the
    rig (default: the built one, ``facerecon assets head``).
    ``progress``: default progress callback (see :data:`Progress`).
    """

    def __init__(self, model: str | os.PathLike | ModelBundle | None = None, *,
                 facemodel: FaceModel | str | os.PathLike | None = None, runtime: str = "onnx",
                 device: str = "auto", texture_size: int = 512, refine: int = 0, mirror: bool = True,
                 shifts: bool = True, recrop: bool = False, light: str = "fit", texture: str = "photo",
                 detector: FaceDetector | None = None, landmarker: LandmarkDetector | None = None,
                 progress: Progress | None = None, mesh: str = "face", head_rig=None) -> None:
        if texture_size < 8:
            raise ValueError(f"texture_size must be at least 8, got {texture_size}")
        if refine < 0:
            raise ValueError(f"refine must be >= 0 steps, got {refine}")
        if light not in light_stage.LIGHT_MODES:
            raise ValueError(f"light {light!r}: expected one of {', '.join(light_stage.LIGHT_MODES)}")
        if texture not in TEXTURE_MODES:
            raise ValueError(f"texture {texture!r}: expected one of {', '.join(TEXTURE_MODES)}")
        if mesh not in MESHES:
            raise ValueError(f"mesh {mesh!r}: expected one of {', '.join(MESHES)}")
        self.facemodel = facemodel if isinstance(facemodel, FaceModel) else FaceModel.load(facemodel)
        self.head_rig = head_rig_for(head_rig, self.facemodel) if mesh == "head" else None
        self.device = resolve_device(device, runtime)
        self.bundle = resolve_bundle(model, self.facemodel, runtime=runtime, device=self.device)
        self.detector = detector or FaceDetector()
        self.landmarker = landmarker or LandmarkDetector()
        _warm_up_dlib(self.detector, self.landmarker)  # load the dlib models now, not in the first photo's timing
        self.decoder = Decoder(self.facemodel, self.bundle.rest)
        self.texture_size = int(texture_size)
        self.refine_steps = int(refine)
        self.mirror = bool(mirror)
        self.shifts = bool(shifts)
        self.recrop = bool(recrop)
        self.light = light
        self.texture = texture
        self.progress = progress
        self._fitters: dict[int, Any] = {}
        self._cancel = threading.Event()
        self._faces_only = False  # reconstruct_person builds one head from all the photos, not one per photo
        self.last_run: list[RunDetails] = []

    @property
    def input_size(self) -> int:
        return self.bundle.input_size

    def cancel(self) -> None:
        """Ask a running :meth:`reconstruct` (e.g. in another thread) to stop at the next stage."""
        self._cancel.set()

    # --------------------------------------------------------------------------------- API
    def reconstruct(self, image: np.ndarray | str | os.PathLike, *, all_faces: bool = False,
                    refine: int | None = None, progress: Progress | None = None,
                    source: str | None = None,
                    on_refine_step: Callable[[int, int, dict[str, float]], Any] | None = None
                    ) -> list[FaceReconstruction]:
        """Reconstruct the largest face of ``image`` (a path or an H×W×3 uint8 RGB array), or every
        face with ``all_faces`` (largest first). Raises ``PhotoError`` subclasses for bad files,
        ``NoFaceError`` when there is no face, :class:`ReconstructionCancelled` when cancelled.

        ``refine``: photometric refinement steps (None: the constructor's); ``on_refine_step(step,
        steps, terms)`` gets the per-term losses after each step. Details that do not belong in a
        :class:`FaceReconstruction` (detections, both crops, whether the re-crop was accepted, the
        final refinement losses) are in :attr:`last_run` afterwards. ``timings`` (ms) are per photo:
        with several faces they are batched through the network together and share the stage times."""
        steps = self.refine_steps if refine is None else int(refine)
        report = progress or self.progress
        self._cancel.clear()
        timings: dict[str, float] = {}
        squeeze = 1.0 - _REFINE_SHARE if steps > 0 else 1.0

        def stage(name: str) -> float:
            self._check(report, name, _STAGES[name] * squeeze)
            return time.perf_counter()

        start = t0 = stage("load")
        photo, name = load_image(image)
        name = source if source is not None else name
        timings["load"] = _ms(t0)

        t0 = stage("detect")
        faces = find_faces(photo, name, self.detector, self.landmarker, all_faces)
        timings["detect"] = _ms(t0)

        size = self.input_size
        t0 = stage("crop")
        crops1 = [crop_stage.first_crop(face, size) for face in faces]
        images1 = np.stack([c.apply(photo) for c in crops1])
        timings["crop"] = _ms(t0)

        t0 = stage("network")
        timings["network"] = 0.0
        crops2, recropped, images2 = crops1, [False] * len(faces), images1
        if self.recrop:
            out1 = self.bundle.run(images1, texture=False, mirror=self.mirror, shifts=self.shifts)
            timings["network"] = _ms(t0)
            t0 = stage("recrop")
            lm1 = self.decoder.project(self.decoder.landmarks_3d(out1), out1.angles, out1.translation, size)
            pairs = [crop_stage.second_crop(c1.to_image(lm), face, c1) for face, c1, lm in zip(faces, crops1, lm1)]
            crops2, recropped = [c for c, _ in pairs], [ok for _, ok in pairs]
            images2 = np.stack([c.apply(photo) for c in crops2])
            timings["crop"] += _ms(t0)
            t0 = time.perf_counter()
        target = np.stack([c.to_crop(f.landmarks) for c, f in zip(crops2, faces)]).astype(np.float32)
        out2 = self.bundle.run(images2, target, texture=True, mirror=self.mirror, shifts=self.shifts)
        timings["network"] += _ms(t0)

        t0 = stage("decode")
        decoded = self.decoder.decode(out2, size)
        timings["decode"] = _ms(t0)

        t0 = stage("texture")
        albedo_maps = out2.albedo_map
        timings["texture"] = _ms(t0)  # textures are finished after the optional refinement

        angles, translation, sh = out2.angles.astype(np.float64), out2.translation.astype(np.float64), \
            out2.sh.astype(np.float64)
        if self.light == "fit":
            t0 = stage("light")
            sh = self._fit_light(photo, crops2, images2, decoded, angles, translation, sh, albedo_maps)
            timings["light"] = _ms(t0)
        refine_losses: dict[str, float] = {}
        if steps > 0:
            t0 = time.perf_counter()
            decoded, angles, translation, sh, albedo_maps, refine_losses = self._refine(
                steps, images2, target, decoded, angles, translation, sh, albedo_maps, report, on_refine_step)
            timings["refine"] = _ms(t0)

        t0 = time.perf_counter()
        confidences: list[np.ndarray | None] = [None] * len(faces)
        if self.texture == "photo":
            textures = []
            for i, (face, crop, dec) in enumerate(zip(faces, crops2, decoded)):
                verts = to_camera((dec.identity + dec.expression).astype(np.float64), angles[i], translation[i])
                result = photo_texture(photo, verts, _photo_projection(crop, size), sh[i], albedo_maps[i],
                                       self.facemodel, self.texture_size, mouth=face.landmarks[MOUTH_OPENING])
                textures.append(result.albedo)
                confidences[i] = result.confidence
        else:
            textures = [texture_stage.albedo_texture(m, self.facemodel, self.texture_size) for m in albedo_maps]
        timings["texture"] += _ms(t0)
        t0 = time.perf_counter()  # the expression as ARKit weights (when the face model has the rig)
        solver = self.decoder.solver
        arkit = [None if solver is None else dec.arkit if dec.arkit is not None else solver.weights(dec.expression)
                 for dec in decoded]  # measured from the rest in the decode when the bundle holds one
        timings["arkit"] = _ms(t0)
        shared = {k: v for k, v in timings.items()}
        shared["total"] = _ms(start)

        results = []
        for i, (face, c2, dec) in enumerate(zip(faces, crops2, decoded)):
            lm_photo = c2.to_image(self.decoder.project(dec.landmarks_3d[None], angles[i:i + 1],
                                                        translation[i:i + 1], size)[0])
            results.append(FaceReconstruction(
                identity_vertices=dec.identity, expression_offsets=dec.expression,
                triangles=self.facemodel.triangles, uvs=self.facemodel.uv, albedo=textures[i],
                angles=angles[i], translation=translation[i], sh=sh[i], landmarks_2d=lm_photo,
                landmarks_3d=dec.landmarks_3d, crop_box=np.array([c2.left, c2.top, c2.side]), crop_size=size,
                confidence=confidence(face, lm_photo), timings=dict(shared), source=name,
                texture_confidence=confidences[i],
                arkit_weights=dict(zip(solver.names, arkit[i].tolist())) if solver else None,
                arkit_residual=dec.expression - solver.keys(arkit[i]) if solver else None,
                arkit_keys=solver.deltas if solver else None,
            ))
        if self.head_rig is not None and not self._faces_only:
            t0 = stage("head")
            for rec in results:
                rec.head = build_head(self.head_rig, rec, photo)
            for rec in results:
                rec.timings["head"] = _ms(t0)
                rec.timings["total"] = _ms(start)
        self._check(report, "done", 1.0)
        self.last_run = [RunDetails(face, c1, c2, ok, refine_losses, albedo_maps[i])
                         for i, (face, c1, c2, ok) in enumerate(zip(faces, crops1, crops2, recropped))]
        return results

    __call__ = reconstruct

    def reconstruct_person(self, images: list, *, name: str | None = None, sources: list[str] | None = None,
                           progress: Progress | None = None, config: SamePersonConfig = SamePersonConfig()
                           ) -> PersonReconstruction:
        """Several photos of one person (paths or H×W×3 uint8 RGB arrays; the largest face of each) → one identity,
        each photo's expression and pose, one texture (see :mod:`facerecon_core.pipeline.same_person`).

        A photo that cannot be read or shows no face is left out (listed in ``skipped``); when none is left the
        first photo's error is raised. ``name``: the person's name (default: the first photo's); ``sources``: the
        photos' names (default: their file names, for arrays ``photoN``)."""
        if not images:
            raise ValueError("reconstruct_person needs at least one photo")
        report = progress or self.progress
        stems = [Path(s).stem for s in sources] if sources else [
            Path(str(im)).stem if isinstance(im, (str, os.PathLike)) else f"photo{k + 1}"
            for k, im in enumerate(images)]
        self._faces_only = True
        try:
            inputs, skipped, errors = self._person_photos(images, stems, sources, report)
        finally:
            self._faces_only = False
        if not inputs:
            raise errors[0]
        self._check(report, "combine", 0.9)
        person = combine_photos(inputs, self.facemodel, name or inputs[0].name, self.texture, config, skipped)
        if self.head_rig is not None:
            self._check(report, "head", 0.95)
            person.head = build_head(self.head_rig, person.reconstruction(), inputs[0].photo)
        self._check(report, "done", 1.0)
        return person

    def _person_photos(self, images: list, stems: list[str], sources: list[str] | None, report):
        """Each photo's reconstruction for :meth:`reconstruct_person`: (inputs, skipped, errors)."""
        from facerecon_core.io.photo import PhotoError

        count = len(images)
        inputs, skipped, errors = [], [], []
        for k, (image, stem) in enumerate(zip(images, unique_names(stems))):
            def scaled(stage: str, fraction: float, k=k):
                return None if report is None else report(stage, 0.9 * (k + fraction) / count)

            try:
                photo, source = load_image(image)
                rec = self.reconstruct(photo, source=source if sources is None else sources[k], progress=scaled)[0]
            except (PhotoError, NoFaceError) as exc:
                skipped.append((stem, str(exc).splitlines()[0]))
                errors.append(exc)
                continue
            details = self.last_run[0]
            inputs.append(PhotoInput(stem, photo, rec, details.albedo_map, details.detection.landmarks[MOUTH_OPENING]))
        return inputs, skipped, errors

    # ----------------------------------------------------------------------------- helpers
    def _check(self, report: Progress | None, stage: str, fraction: float) -> None:
        if self._cancel.is_set():
            raise ReconstructionCancelled(f"cancelled before {stage}")
        if report is not None and report(stage, float(min(max(fraction, 0.0), 1.0))) is False:
            raise ReconstructionCancelled(f"cancelled before {stage}")

    def _fit_light(self, photo: np.ndarray, crops: list[Crop], images: np.ndarray, decoded: list[DecodedFace],
                   angles: np.ndarray, translation: np.ndarray, sh: np.ndarray, albedo_maps: np.ndarray) -> np.ndarray:
        albedo = self.facemodel.from_uv_map(albedo_maps)
        fitted = sh.copy()
        for i, (crop, dec) in enumerate(zip(crops, decoded)):
            valid = crop.photo_mask(*photo.shape[:2])
            verts = to_camera((dec.identity + dec.expression).astype(np.float64), angles[i], translation[i])
            fitted[i] = light_stage.fit_light(images[i], valid, verts, albedo[i], self.facemodel, sh[i]).sh
        return fitted

    def _refine(self, steps: int, images: np.ndarray, target: np.ndarray, decoded: list[DecodedFace],
                angles: np.ndarray, translation: np.ndarray, sh: np.ndarray, albedo_maps: np.ndarray,
                report: Progress | None, on_refine_step=None):
        from facerecon_core.pipeline.refine import make_fitter, refine

        fitter = self._fitters.get(steps)
        if fitter is None:
            self._fitters = {steps: make_fitter(self.facemodel, steps, "cuda" if self.device == "cuda" else "cpu")}
            fitter = self._fitters[steps]
        start = 1.0 - _REFINE_SHARE

        def on_step(step: int, terms: dict[str, float]) -> None:
            self._check(report, "refine", start + _REFINE_SHARE * (step + 1) / (steps + 1))
            if on_refine_step is not None:
                on_refine_step(step, steps, terms)

        identity = np.stack([d.identity for d in decoded])
        expression = np.stack([d.expression for d in decoded])
        albedo = self.facemodel.from_uv_map(albedo_maps).astype(np.float32)
        result = refine(fitter, images, target, identity, expression, angles, translation, sh, albedo, on_step)
        if result.albedo_delta is not None:
            albedo_maps = albedo_maps + self.facemodel.to_uv_map(result.albedo_delta, albedo_maps.shape[1])
        lm_idx = self.facemodel.landmark_indices
        new = []
        for i in range(len(decoded)):
            lm3d = (result.identity[i, lm_idx] + result.expression[i, lm_idx]).astype(np.float64)
            new.append(DecodedFace(result.identity[i], result.expression[i], lm3d,
                                   self.decoder.project(lm3d[None], result.angles[i:i + 1],
                                                        result.translation[i:i + 1], images.shape[1])[0]))
        return new, result.angles, result.translation, result.sh, albedo_maps, result.losses


MOUTH_OPENING = slice(60, 68)  # the inner-lip landmarks: the photo's mouth opening


def _photo_projection(crop: Crop, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """Crop-camera-space points (..., 3) → photo pixels (..., 2)."""
    camera = CropCamera(size)
    return lambda points: crop.to_image(camera.project(points))


def head_rig_for(rig, facemodel: FaceModel):
    """The head rig for ``mesh="head"`` (a :class:`HeadRig`, a path, or None: the built one), checked against the
    face model."""
    from facerecon_core.head.rig import HeadError, HeadRig

    rig = rig if isinstance(rig, HeadRig) else HeadRig.load(rig)
    if rig.face_model_hash != facemodel.content_hash:
        raise HeadError(f"{rig.path or 'the head rig'} was built for another face-model asset; rebuild it with "
                        f"`facerecon assets head`")
    return rig


def _warm_up_dlib(detector: FaceDetector, landmarker: LandmarkDetector) -> None:
    from facerecon_core.detect import models

    if detector.method in ("auto", "hog"):
        models.hog_detector()
    if landmarker.backend == "dlib":
        models.shape_predictor()


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def reconstruct(image: np.ndarray | str | os.PathLike, *, model: str | os.PathLike | ModelBundle | None = None,
                refine: int = 0, all_faces: bool = False, texture: str = "photo",
                texture_size: int = 512, mesh: str = "face") -> list[FaceReconstruction]:
    """Reconstruct the largest face of a photo (path or H×W×3 uint8 RGB array), or all faces.

    ``model``: bundle folder, loaded :class:`ModelBundle`, or None for the default location
    (``facerecon_core/data/model/``). ``refine``: photometric refinement steps (needs torch).
    ``texture``: ``photo`` (default) or ``network``, see :class:`Reconstructor`. ``mesh``: ``face`` (default) or
    ``head`` (the whole head too, in each result's ``head``).
    For many photos, build one :class:`Reconstructor` and call it repeatedly.
    """
    return Reconstructor(model, refine=refine, texture=texture, texture_size=texture_size,
                         mesh=mesh).reconstruct(image, all_faces=all_faces)


def reconstruct_person(images: list, *, model: str | os.PathLike | ModelBundle | None = None, name: str | None = None,
                       texture: str = "photo", texture_size: int = 512, mesh: str = "face") -> PersonReconstruction:
    """Several photos of one person → one identity, each photo's expression, one texture (see
    :meth:`Reconstructor.reconstruct_person`); ``.reconstruction()`` of the result goes to the writers."""
    return Reconstructor(model, texture=texture, texture_size=texture_size, mesh=mesh).reconstruct_person(images,
                                                                                                       name=name)
