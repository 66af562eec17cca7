"""Reconstruction methods compared by ``facerecon eval``: ours and the peers.

Every method is a small class with ``name`` and ``reconstruct_batch(crops, landmarks)`` (and
``reconstruct(crop, landmarks)`` for one face): square RGB uint8 crops (B, S, S, 3), taken from
the photo as 3DDFA_V2 crops (:class:`facerecon_core.detect.Crop`), and their 68 landmarks in crop
pixels (B, 68, 2) (detected, or ground truth where a suite says so). Every method gets the same
crops and landmarks; each resamples the crop to its own input size itself. A method returns a
:class:`PeerOutput` per face: the shape in the face model's frame (mm, BFM no-neck topology), its
neutral (expression removed), and 68 landmarks in the crop's pixels (2D, and 3D with depth toward
the viewer in the same pixel units, depth origin arbitrary).

* :class:`OursPeer`: a model bundle (:class:`facerecon_core.inference.ModelBundle`).
* :class:`ThreeDDFAV2Peer`: 3DDFA_V2's MobileNetV1 regressor (``mb1_120x120.onnx``) with our own
  pre/post-processing from the documented format, decoded on our face model's bases.
* :class:`MeanFacePeer`: the mean face, posed by PnP on the landmarks.
* :class:`FitPeer`: the landmark-only model fit (:class:`facerecon_core.fitting.Fitter` with
  ``photometric_steps=0``).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facerecon_core import paths
from facerecon_core.detect.crop import Crop
from facerecon_core.facemodel import FaceModel
from facerecon_core.pipeline.decode import Decoder
from facerecon_core.pose import CropCamera, to_camera

PEER_NAMES = ("3ddfa_v2", "mean-face", "fit", "fit-arkit")
DEFAULT_PEERS = PEER_NAMES[:3]  # what `facerecon eval` compares with unless --peer says otherwise
TDDFA_DIR = Path("peers/3ddfa_v2")  # relative to the shared folder
TDDFA_SIZE = 120


@dataclass
class PeerOutput:
    """One method's reconstruction of one face."""

    shape: np.ndarray  # (V, 3) mm, face-model frame
    neutral: np.ndarray  # (V, 3) mm, the same face without expression
    landmarks_2d: np.ndarray  # (68, 2) crop pixels of the input crop
    landmarks_3d: np.ndarray  # (68, 3) crop pixels; z toward the viewer (origin arbitrary)
    angles: np.ndarray | None = None  # (3,) pitch, yaw, roll rad (None: not estimated)
    extras: dict = field(default_factory=dict)  # method-specific (e.g. ours: albedo map, SH, camera)


def _resample(crops: np.ndarray, landmarks: np.ndarray | None, size: int):
    """Crops (B, S, S, 3) → (B, size, size, 3) and landmarks in the new pixels, with :class:`Crop`'s mapping."""
    s = crops.shape[1]
    if s == size:
        return crops, landmarks
    crop = Crop(0.0, 0.0, float(s), size)
    out = np.stack([crop.apply(c) for c in crops])
    return out, None if landmarks is None else crop.to_crop(landmarks)


def _depth_pixels(points_cam: np.ndarray, translation: np.ndarray, focal: float) -> np.ndarray:
    """Camera-space z (toward the viewer) in pixels at the face's depth."""
    depth = -float(translation[2])
    return (points_cam[..., 2] - translation[2]) * focal / depth


class Peer:
    """Base class: subclasses implement :meth:`reconstruct_batch`."""

    name = "peer"
    needs_landmarks = False

    def reconstruct_batch(self, crops: np.ndarray, landmarks: np.ndarray | None) -> list[PeerOutput]:
        raise NotImplementedError

    def reconstruct(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> PeerOutput:
        return self.reconstruct_batch(crop[None], None if landmarks is None else np.asarray(landmarks)[None])[0]

    def timed_batch(self, crops, landmarks, batch_size: int = 16) -> tuple[list[PeerOutput], float]:
        """:meth:`reconstruct_batch` in chunks; returns the outputs and milliseconds per face."""
        outs: list[PeerOutput] = []
        start = time.perf_counter()
        for i in range(0, len(crops), batch_size):
            outs += self.reconstruct_batch(crops[i:i + batch_size],
                                           None if landmarks is None else landmarks[i:i + batch_size])
        return outs, 1000.0 * (time.perf_counter() - start) / max(len(crops), 1)


# ------------------------------------------------------------------------------------------ ours
class OursPeer(Peer):
    """Our network from an exported bundle; ``texture=True`` also runs the texture stream;
    ``mirror`` and ``shifts`` average with the mirrored and the shifted crops as the reconstruction
    pipeline does; the neutral face is the identity the pipeline's decode gives (around the bundle's rest, if any)."""

    needs_landmarks = False

    def __init__(self, bundle, model: FaceModel, name: str = "ours", texture: bool = False, mirror: bool = True,
                 shifts: bool = True):
        self.bundle, self.model, self.name, self.texture = bundle, model, name, texture
        self.mirror, self.shifts = mirror, shifts
        self.decoder = Decoder(model, bundle.rest)

    @classmethod
    def load(cls, model_dir, model: FaceModel, name: str = "ours", threads: int | None = None, **kw) -> OursPeer:
        from facerecon_core.inference import ModelBundle

        return cls(ModelBundle.load(model_dir, facemodel=model, threads=threads), model, name, **kw)

    def reconstruct_batch(self, crops, landmarks):
        size = self.bundle.input_size
        s = crops.shape[1]
        small, lms = _resample(np.asarray(crops), landmarks, size)
        texture = self.texture and lms is not None
        out = self.bundle.run(small, lms.astype(np.float32) if texture else None, texture=texture, mirror=self.mirror,
                               shifts=self.shifts)
        cam = CropCamera(size)
        back = Crop(0.0, 0.0, float(s), size)  # network crop pixels ↔ input crop pixels
        shapes = self.model.from_uv_map(out.shape_map)
        neutrals = self.model.from_uv_map(out.A_id)
        results = []
        for b in range(len(small)):
            neutrals[b] = self.decoder.split(neutrals[b], shapes[b] - neutrals[b])[0]  # as the pipeline does
            lm_cam = to_camera(shapes[b][self.model.landmark_indices].astype(np.float64), out.angles[b],
                               out.translation[b])
            lm2 = back.to_image(cam.project(lm_cam))
            z = _depth_pixels(lm_cam, out.translation[b], cam.focal) * s / size
            extras = {"angles": out.angles[b], "translation": out.translation[b], "sh": out.sh[b],
                      "crop_size": size}
            if out.albedo_map is not None:
                extras["albedo_map"] = out.albedo_map[b]
            results.append(PeerOutput(shapes[b], neutrals[b], lm2, np.c_[lm2, z], out.angles[b], extras))
        return results


# -------------------------------------------------------------------------------------- 3DDFA_V2
class ThreeDDFAV2Peer(Peer):
    """3DDFA_V2 (mb1, 120×120) through onnxruntime; shapes decoded on our face model's bases
    (3DDFA_V2's raw α_shp = ours × ``id_scale``, α_exp = ours × ``exp_scale``)."""

    name = "3ddfa_v2"

    def __init__(self, model: FaceModel, folder: Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        folder = Path(folder) if folder is not None else paths.shared_dir() / TDDFA_DIR
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(folder / "mb1_120x120.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        with open(folder / "param_mean_std_62d_120x120.pkl", "rb") as fh:  # plain dict of two arrays
            stats = pickle.load(fh)
        self.mean = np.asarray(stats["mean"], np.float64)
        self.std = np.asarray(stats["std"], np.float64)
        self.model = model

    def parameters(self, crops: np.ndarray) -> np.ndarray:
        """Raw 62 parameters (B, 62) of crops (B, S, S, 3) RGB."""
        small, _ = _resample(np.asarray(crops), None, TDDFA_SIZE)
        x = (small[..., ::-1].astype(np.float32) - 127.5) / 128.0  # RGB → BGR
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = np.concatenate([self.session.run(None, {"input": x[b:b + 1]})[0] for b in range(len(x))])
        return out.astype(np.float64) * self.std + self.mean

    def decode(self, param: np.ndarray, crop_size: float) -> PeerOutput:
        """One parameter vector → :class:`PeerOutput` in a crop of ``crop_size`` pixels."""
        m = self.model
        a_shp, a_exp = param[12:52], param[52:62]
        shape = m.vertices(a_shp / m.id_scale, a_exp / m.exp_scale).astype(np.float64)
        neutral = m.vertices(a_shp / m.id_scale).astype(np.float64)
        proj = param[:12].reshape(3, 4)
        lm_bfm = (shape[m.landmark_indices] + m.bfm_offset_mm) * 1000.0  # BFM units
        pts = lm_bfm @ proj[:, :3].T + proj[:, 3]
        pts[:, 0] -= 1.0
        pts[:, 2] -= 1.0
        pts[:, 1] = TDDFA_SIZE - pts[:, 1]
        pts *= crop_size / TDDFA_SIZE
        rot = proj[:, :3] / np.linalg.norm(proj[:, :3], axis=1, keepdims=True)
        from facerecon_core.pose import matrix_to_euler

        return PeerOutput(shape, neutral, pts[:, :2].copy(), pts, matrix_to_euler(rot),
                          {"param": param})

    def reconstruct_batch(self, crops, landmarks):
        params = self.parameters(crops)
        return [self.decode(p, crops.shape[1]) for p in params]


# ------------------------------------------------------------------------------------ mean face
def _pnp(model_points: np.ndarray, image_points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pose (angles, translation) of model points seen at image points through ``CropCamera(size)``."""
    from facerecon_core.pose import opencv_to_pose

    matrix = CropCamera(size).matrix()
    obj = np.asarray(model_points, np.float64)
    img = np.asarray(image_points, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, matrix, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, matrix, None, rvec, tvec, True, flags=cv2.SOLVEPNP_ITERATIVE)
    if ok:
        angles, translation = opencv_to_pose(rvec, tvec)
        if translation[2] < -50.0:
            return angles, translation
    spread = max(np.ptp(img, axis=0).mean(), 1.0)
    depth = CropCamera(size).focal * np.ptp(obj[:, :2], axis=0).mean() / spread
    c = CropCamera(size)
    centre = img.mean(axis=0)
    return np.zeros(3), np.array([(centre[0] - c.centre) * depth / c.focal, (c.centre - centre[1]) * depth / c.focal,
                                  -depth])


def _posed_output(shape, neutral, angles, translation, lm_index, size) -> PeerOutput:
    cam = CropCamera(size)
    lm_cam = to_camera(np.asarray(shape, np.float64)[lm_index], angles, translation)
    lm2 = cam.project(lm_cam)
    return PeerOutput(np.asarray(shape), np.asarray(neutral), lm2, np.c_[lm2, _depth_pixels(lm_cam, translation,
                                                                                              cam.focal)],
                      np.asarray(angles), {"translation": np.asarray(translation)})


class MeanFacePeer(Peer):
    """The mean face (no identity, no expression), posed by PnP on the landmarks."""

    name = "mean-face"
    needs_landmarks = True

    def __init__(self, model: FaceModel):
        self.model = model

    def reconstruct_batch(self, crops, landmarks):
        m = self.model
        mean = m.mean_shape.astype(np.float64)
        out = []
        for lms in landmarks:
            angles, t = _pnp(mean[m.landmark_indices], lms, crops.shape[1])
            out.append(_posed_output(mean, mean, angles, t, m.landmark_indices, crops.shape[1]))
        return out


# ------------------------------------------------------------------------------------------ fit
class FitPeer(Peer):
    """Landmark-only fit of the face model (identity, expression, pose); neutral = its identity part. With
    ``arkit`` (peer ``fit-arkit``) the expression also takes the face model's ARKit keys, as ``data synth
    --fit-arkit`` fits the training photos: the expressions suite then shows what those labels hold."""

    name = "fit"
    needs_landmarks = True

    def __init__(self, model: FaceModel, landmark_steps: int = 300, arkit: bool = False):
        from facerecon_core.fitting import FitConfig, Fitter

        self.model, self.arkit = model, arkit
        self.name = "fit-arkit" if arkit else "fit"
        self.fitter = Fitter(model, FitConfig(landmark_steps=landmark_steps, photometric_steps=0, arkit=arkit))

    def reconstruct_batch(self, crops, landmarks):
        import torch

        m = self.model
        with torch.inference_mode(False):
            res = self.fitter.fit(np.asarray(crops), np.asarray(landmarks, np.float64), progress=False)
        shapes = res.shape(m).astype(np.float64)
        neutrals = m.vertices(res.id_coeff).astype(np.float64)
        return [_posed_output(shapes[b], neutrals[b], res.angles[b], res.translation[b], m.landmark_indices,
                              crops.shape[1]) for b in range(len(crops))]


def make_peers(names, model: FaceModel, threads: int | None = None) -> list[Peer]:
    """Peers by name (``3ddfa_v2``, ``mean-face``, ``fit``)."""
    out: list[Peer] = []
    for name in names:
        if name == "3ddfa_v2":
            out.append(ThreeDDFAV2Peer(model, threads=threads))
        elif name == "mean-face":
            out.append(MeanFacePeer(model))
        elif name in ("fit", "fit-arkit"):
            out.append(FitPeer(model, arkit=name == "fit-arkit"))
        else:
            raise ValueError(f"unknown peer {name!r} (choose from {', '.join(PEER_NAMES)})")
    return out
