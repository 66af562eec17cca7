"""``ModelBundle``: load an exported model bundle and run the dual-stream network (torch-free).

Bundle layout (written atomically by ``facerecon export``, see :mod:`facerecon_core.inference.export`)::

    MODEL_DIR/
      manifest.json         everything needed to use the graphs (this module validates it); optionally
                            ``"rest"``: the ARKit weights of a neutral face (``facerecon calibrate``)
      geometry.onnx         geometry stream: image → A_id, A_exp, p_t, p_l, p_h
      texture.onnx          texture stream:  image, landmarks_2d, p_t → I_a, I_u
      weights.safetensors   the DualStreamNet's parameters and buffers (for ``runtime="torch"``; absent
                            from inference-only bundles, whose manifest has ``"weights": null``)

Two graphs rather than one so that geometry-only inference (meshes without a texture) skips the
texture stream, which is about as expensive as the encoder; the texture graph takes p_t from the
geometry graph. Both graphs have a dynamic batch axis and use channels-last images:

* ``image``: float32 [B, S, S, 3], RGB in [0, 1] (uint8 / 255); the ImageNet mean/std normalisation
  of the encoder is inside the graph;
* ``landmarks_2d``: float32 [B, 68, 2], iBUG-68 landmarks in crop pixels (OpenCV convention:
  pixel centres on integers, x right, y down);
* ``A_id``, ``A_exp``: float32 [B, G, G, 3], x/y/z in millimetres in the face-model frame (the
  tanh scaling and D_id's mean-shape base are in the graph); the shape map is A_id + A_exp,
  sampled at the vertex UVs (UV image convention: row 0 at v = 1);
* ``p_t`` [B, K] albedo coefficients (prior standard deviations), ``p_l`` [B, 3, 9] SH,
  ``p_h`` [B, 6] pose (decode with :func:`decode_pose`);
* ``I_a`` [B, T, T, 3] synthesised albedo map in [0, 1], ``I_u`` the face model's albedo from p_t.

Loading never unpickles: JSON, ONNX protobufs and safetensors only. Only numpy and onnxruntime are
imported here (the torch runtime is imported on demand).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerecon_core.inference.mirror import average_with_mirror, mirror_images
from facerecon_core.inference.shift import average_shifted, shift_images, shift_offsets
from facerecon_core.pose import FOCAL_PER_PIXEL

BUNDLE_FORMAT = "facerecon-bundle-1"
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
GRAPHS = {"geometry": "geometry.onnx", "texture": "texture.onnx"}
GEOMETRY_INPUTS = ["image"]
GEOMETRY_OUTPUTS = ["A_id", "A_exp", "p_t", "p_l", "p_h"]
TEXTURE_INPUTS = ["image", "landmarks_2d", "p_t"]
TEXTURE_OUTPUTS = ["I_a", "I_u"]
N_LANDMARKS = 68

# Pose parametrisation (mirrors facerecon_core.model.geometry; the manifest carries the values used).
POSE_T_SCALE = 10.0
REFERENCE_DEPTH_MM = 200.0 * FOCAL_PER_PIXEL


class BundleError(RuntimeError):
    """A model bundle is missing, corrupt, incompatible, or was given bad inputs (one-line message)."""


@dataclass
class NetworkOutput:
    """The network's prediction for a batch of B crops (numpy, float32)."""

    A_id: np.ndarray  # (B, G, G, 3) mm, face-model frame (includes the mean shape)
    A_exp: np.ndarray  # (B, G, G, 3) mm
    albedo_coefficients: np.ndarray  # (B, K) p_t, in prior standard deviations
    sh: np.ndarray  # (B, 3, 9) p_l, per colour channel (basis of facerecon_core.render.sh_basis)
    angles: np.ndarray  # (B, 3) (pitch, yaw, roll) rad
    translation: np.ndarray  # (B, 3) mm, camera space of pose.CropCamera(input_size)
    p_h: np.ndarray  # (B, 6) raw pose vector
    albedo_map: np.ndarray | None = None  # (B, T, T, 3) I_a in [0, 1]; None when texture=False
    albedo_prior_map: np.ndarray | None = None  # (B, T, T, 3) I_u: face-model albedo from p_t

    @property
    def shape_map(self) -> np.ndarray:
        """I_g = A_id + A_exp (B, G, G, 3) mm."""
        return self.A_id + self.A_exp

    def __len__(self) -> int:
        return self.A_id.shape[0]


# ----------------------------------------------------------------------------------------- pose
def decode_pose(p_h: np.ndarray, t_scale: float = POSE_T_SCALE, reference_depth_mm: float = REFERENCE_DEPTH_MM,
                focal_per_pixel: float = FOCAL_PER_PIXEL) -> tuple[np.ndarray, np.ndarray]:
    """p_h (..., 6) → (angles (..., 3) rad, translation (..., 3) mm, camera space); numpy mirror of
    :func:`facerecon_core.model.geometry.decode_pose`."""
    p_h = np.asarray(p_h)
    depth = reference_depth_mm * np.exp(-p_h[..., 5:6] / t_scale)
    xy = p_h[..., 3:5] / t_scale * depth / focal_per_pixel
    return p_h[..., :3].copy(), np.concatenate([xy, -depth], axis=-1).astype(p_h.dtype, copy=False)


def encode_pose(angles: np.ndarray, translation: np.ndarray, t_scale: float = POSE_T_SCALE,
                reference_depth_mm: float = REFERENCE_DEPTH_MM, focal_per_pixel: float = FOCAL_PER_PIXEL
                ) -> np.ndarray:
    """Inverse of :func:`decode_pose`."""
    angles, translation = np.asarray(angles), np.asarray(translation)
    depth = -translation[..., 2:3]
    xy = t_scale * focal_per_pixel * translation[..., :2] / depth
    return np.concatenate([angles, xy, t_scale * np.log(reference_depth_mm / depth)], axis=-1)


# ------------------------------------------------------------------------------------- helpers
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def facemodel_hash_of(facemodel: Any) -> str:
    """The content hash of a face model given as a FaceModel, an asset path, or the hash itself."""
    if hasattr(facemodel, "content_hash"):
        return str(facemodel.content_hash)
    if isinstance(facemodel, str) and not facemodel.endswith(".npz") and not Path(facemodel).exists():
        return facemodel  # the hash itself
    path = Path(facemodel)
    if not path.is_file():
        raise BundleError(f"face-model asset not found at {path}; build it with `facerecon assets build`")
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["content_hash"])
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable face-model asset ({exc})") from None


def _require(mapping: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise BundleError(f"{where}: manifest lacks {key!r}; re-export the bundle with `facerecon export`")
    value = mapping[key]
    if not isinstance(value, kind):
        raise BundleError(f"{where}: manifest field {key!r} has the wrong type; re-export the bundle")
    return value


def read_manifest(model_dir: Path) -> dict:
    """Read and validate ``manifest.json`` of a bundle folder (raises :class:`BundleError`)."""
    if not model_dir.is_dir():
        raise BundleError(f"model bundle not found: {model_dir} is not a folder (create it with `facerecon export`)")
    path = model_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"{model_dir}: not a model bundle ({MANIFEST} is missing); re-export it with "
                          "`facerecon export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: corrupt manifest ({exc}); re-export the bundle") from None
    where = str(model_dir)
    fmt = _require(manifest, "format", str, where)
    if fmt != BUNDLE_FORMAT:
        raise BundleError(f"{where}: bundle format {fmt!r}, this facerecon reads {BUNDLE_FORMAT!r}; re-export it")
    graphs = _require(manifest, "graphs", dict, where)
    for name, inputs, outputs in (("geometry", GEOMETRY_INPUTS, GEOMETRY_OUTPUTS),
                                  ("texture", TEXTURE_INPUTS, TEXTURE_OUTPUTS)):
        graph = _require(graphs, name, dict, where)
        _require(graph, "file", str, where)
        _require(graph, "sha256", str, where)
        if graph.get("inputs") != inputs or graph.get("outputs") != outputs:
            raise BundleError(f"{where}: {name} graph has inputs/outputs {graph.get('inputs')}/"
                              f"{graph.get('outputs')}, expected {inputs}/{outputs}; re-export the bundle")
    if manifest.get("weights", {}) is not None:  # null: an inference-only bundle
        _require(_require(manifest, "weights", dict, where), "sha256", str, where)
    inp = _require(manifest, "input", dict, where)
    _require(inp, "size", int, where)
    _require(_require(manifest, "asm", dict, where), "size", int, where)
    _require(_require(manifest, "texture", dict, where), "size", int, where)
    _require(_require(manifest, "albedo", dict, where), "n_coefficients", int, where)
    pose = _require(manifest, "pose", dict, where)
    for key in ("t_scale", "reference_depth_mm", "focal_per_pixel"):
        _require(pose, key, (int, float), where)
    _require(_require(manifest, "facemodel", dict, where), "content_hash", str, where)
    _require(manifest, "config", dict, where)
    rest = manifest.get("rest")
    if rest is not None:
        weights = rest.get("arkit") if isinstance(rest, dict) else None
        if not isinstance(weights, dict) or not all(isinstance(v, (int, float)) for v in weights.values()):
            raise BundleError(f"{where}: manifest field 'rest' is malformed; rerun `facerecon calibrate`")
    return manifest


def _check_file(model_dir: Path, name: str, sha256: str) -> Path:
    path = model_dir / name
    if not path.is_file():
        raise BundleError(f"{model_dir}: corrupt bundle, {name} is missing; re-export it with `facerecon export`")
    got = sha256_file(path)
    if got != sha256:
        raise BundleError(f"{path}: corrupt bundle file (sha256 {got[:12]}… differs from the manifest's "
                          f"{sha256[:12]}…); re-export it with `facerecon export`")
    return path


# ------------------------------------------------------------------------------------ runtimes
class _OnnxRunner:
    """onnxruntime sessions of the two graphs."""

    name = "onnx"

    def __init__(self, model_dir: Path, manifest: dict, device: str, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
            raise BundleError(f"onnxruntime is not importable ({exc}); pip install onnxruntime") from None
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" in available:
                providers.insert(0, "CUDAExecutionProvider")
            else:
                warnings.warn("device='cuda': onnxruntime has no CUDAExecutionProvider here "
                              "(install onnxruntime-gpu); running on the CPU", RuntimeWarning, stacklevel=3)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        self.sessions = {}
        for name, graph in manifest["graphs"].items():
            path = _check_file(model_dir, graph["file"], graph["sha256"])
            try:
                self.sessions[name] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BundleError(f"{path}: onnxruntime cannot load the graph ({first}); re-export the bundle") \
                    from None
        self.providers = self.sessions["geometry"].get_providers()

    def geometry(self, image: np.ndarray) -> list[np.ndarray]:
        return self.sessions["geometry"].run(GEOMETRY_OUTPUTS, {"image": image})

    def texture(self, image: np.ndarray, landmarks: np.ndarray, p_t: np.ndarray) -> list[np.ndarray]:
        return self.sessions["texture"].run(TEXTURE_OUTPUTS, {"image": image, "landmarks_2d": landmarks,
                                                              "p_t": p_t})


# -------------------------------------------------------------------------------------- bundle
class ModelBundle:
    """A loaded model bundle. ``ModelBundle.load(model_dir)`` then ``bundle.run(crops, landmarks)``."""

    def __init__(self, model_dir: Path, manifest: dict, runner: Any) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self._runner = runner

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model_dir: str | os.PathLike, *, facemodel: Any = None, runtime: str = "onnx",
             device: str = "cpu", threads: int | None = None) -> ModelBundle:
        """Validate ``model_dir`` (manifest, graph sha256s) and open it.

        ``facemodel``: the face model inference will mesh with — a ``FaceModel``, a path to its
        asset, or its content hash; the bundle is refused when it was trained on another face model
        (None: no check; :attr:`facemodel_hash` tells which one the bundle needs).
        ``runtime``: ``"onnx"`` (onnxruntime; CUDA provider when ``device="cuda"`` and available,
        else CPU) or ``"torch"`` (the DualStreamNet rebuilt from ``weights.safetensors``; needs torch).
        """
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        if facemodel is not None:
            want, got = manifest["facemodel"]["content_hash"], facemodel_hash_of(facemodel)
            if got != want:
                raise BundleError(f"{model_dir}: the bundle was trained on face model {want[:12]}…, the given face "
                                  f"model is {got[:12]}…; use the face-model asset the network was trained with")
        if device not in ("cpu", "cuda"):
            raise BundleError(f"device {device!r}: expected 'cpu' or 'cuda'")
        if runtime == "onnx":
            runner = _OnnxRunner(model_dir, manifest, device, threads)
        elif runtime == "torch":
            try:
                from facerecon_core.inference.torch_runtime import TorchRunner
            except ImportError as exc:
                raise BundleError(f"runtime='torch' needs torch ({exc}); use runtime='onnx'") from None
            if manifest["weights"] is None:
                raise BundleError(f"{model_dir}: an inference-only bundle (no {WEIGHTS}); runtime='torch' needs a "
                                  "bundle exported with its weights (`facerecon export` without --no-weights)")
            weights = _check_file(model_dir, manifest["weights"].get("file", WEIGHTS), manifest["weights"]["sha256"])
            runner = TorchRunner(weights, manifest, device, threads)
        else:
            raise BundleError(f"runtime {runtime!r}: expected 'onnx' or 'torch'")
        return cls(model_dir, manifest, runner)

    # ---------------------------------------------------------------------------- properties
    @property
    def runtime(self) -> str:
        return self._runner.name

    @property
    def providers(self) -> list[str]:
        """onnxruntime providers in use, or ``["torch:<device>"]``."""
        return list(self._runner.providers)

    @property
    def input_size(self) -> int:
        return int(self.manifest["input"]["size"])

    @property
    def asm_size(self) -> int:
        return int(self.manifest["asm"]["size"])

    @property
    def texture_size(self) -> int:
        return int(self.manifest["texture"]["size"])

    @property
    def n_albedo(self) -> int:
        return int(self.manifest["albedo"]["n_coefficients"])

    @property
    def facemodel_hash(self) -> str:
        return str(self.manifest["facemodel"]["content_hash"])

    @property
    def rest(self) -> dict[str, float] | None:
        """The network's ARKit weights on neutral photos (``facerecon calibrate``), or None when uncalibrated."""
        rest = self.manifest.get("rest")
        return None if rest is None else {str(k): float(v) for k, v in rest["arkit"].items()}

    def camera(self):
        """The crop camera the pose refers to (:class:`facerecon_core.pose.CropCamera`)."""
        from facerecon_core.pose import CropCamera

        return CropCamera(self.input_size)

    def decode_pose(self, p_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`decode_pose` with this bundle's constants."""
        pose = self.manifest["pose"]
        return decode_pose(p_h, float(pose["t_scale"]), float(pose["reference_depth_mm"]),
                           float(pose["focal_per_pixel"]))

    # ------------------------------------------------------------------------------- running
    def _image(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        s = self.input_size
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            raise BundleError(f"crops must be (B, {s}, {s}, 3) RGB, got shape {crops.shape}")
        if crops.dtype == np.uint8:
            return np.ascontiguousarray(crops, np.float32) * np.float32(1.0 / 255.0)
        if np.issubdtype(crops.dtype, np.floating):  # already in [0, 1]
            return np.ascontiguousarray(crops, np.float32)
        raise BundleError(f"crops must be uint8 (or float in [0, 1]), got {crops.dtype}")

    def _landmarks(self, landmarks: np.ndarray, batch: int) -> np.ndarray:
        lms = np.asarray(landmarks, np.float32)
        if lms.ndim == 2:
            lms = lms[None]
        if lms.shape != (batch, N_LANDMARKS, 2):
            raise BundleError(f"landmarks must be ({batch}, {N_LANDMARKS}, 2) crop pixels, got shape {lms.shape}")
        return np.ascontiguousarray(lms)

    def encode_pose(self, angles: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """:func:`encode_pose` with this bundle's constants."""
        pose = self.manifest["pose"]
        return encode_pose(angles, translation, float(pose["t_scale"]), float(pose["reference_depth_mm"]),
                           float(pose["focal_per_pixel"])).astype(np.float32)

    def run(self, crops: np.ndarray, landmarks: np.ndarray | None = None, texture: bool = True,
            mirror: bool = False, shifts: bool = False) -> NetworkOutput:
        """Run the network on crops (B, S, S, 3) uint8 RGB (or float in [0, 1]) and their 68
        landmarks (B, 68, 2) in crop pixels (a single crop (S, S, 3) / (68, 2) is a batch of one).
        ``texture=False`` runs the geometry stream only (landmarks not needed, ``albedo_map`` None).
        ``mirror=True`` also runs the geometry stream on the mirrored crops and averages the shape,
        pose and light with theirs (:mod:`.mirror`; twice the geometry cost). ``shifts=True`` does the
        same with four diagonally shifted copies of each crop (:mod:`.shift`; five times the cost, ten
        with ``mirror``). p_t and the texture stream come from the crops as given."""
        image = self._image(crops)
        b, size = image.shape[0], image.shape[1]
        offsets = shift_offsets(size) if shifts else [(0, 0)]
        views = np.concatenate([shift_images(image, dx, dy) for dx, dy in offsets])
        a_id, a_exp, p_t, p_l, p_h = self._runner.geometry(
            np.concatenate([views, mirror_images(views)]) if mirror else views)
        if mirror:  # one run on the crops and their mirror images: average the halves
            a_id, a_exp, p_l, angles, translation = average_with_mirror(a_id, a_exp, p_l, *self.decode_pose(p_h))
            p_h = self.encode_pose(angles, translation)
        p_t = p_t[:b]
        if shifts:
            a_id, a_exp, p_l, p_h = average_shifted(offsets, size, float(self.manifest["pose"]["t_scale"]),
                                                    a_id, a_exp, p_l, p_h)
        angles, translation = self.decode_pose(p_h)
        out = NetworkOutput(A_id=a_id, A_exp=a_exp, albedo_coefficients=p_t, sh=p_l, angles=angles,
                            translation=translation, p_h=p_h)
        if texture and landmarks is not None:
            lms = self._landmarks(landmarks, image.shape[0])
            out.albedo_map, out.albedo_prior_map = self._runner.texture(image, lms, p_t)
        elif texture and landmarks is None:
            raise BundleError("texture=True needs the 68 landmarks; pass landmarks or texture=False")
        return out

    def __repr__(self) -> str:
        m = self.manifest
        return (f"ModelBundle({str(self.model_dir)!r}, runtime={self.runtime!r}, input={self.input_size}, "
                f"asm={self.asm_size}, texture={self.texture_size}, stage={m.get('training', {}).get('stage')!r}, "
                f"step={m.get('training', {}).get('step')})")

