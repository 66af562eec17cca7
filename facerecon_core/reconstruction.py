"""``FaceReconstruction``: what the pipeline returns for one face of one photo (numpy only).

Frames and units: ``identity_vertices``, ``expression_offsets`` and ``landmarks_3d`` are in the
face model's frame (millimetres; x = the subject's left, y up, z toward the viewer). ``angles``
and ``translation`` place the face in the camera space of the crop camera
(:class:`facerecon_core.pose.CropCamera` of ``crop_size``): ``R v + t``, OpenGL axes, mm.
``crop_box`` = (left, top, side) is the square of the photo (pixels, pixel centres on integers)
that was resampled to ``crop_size`` × ``crop_size`` for the network
(:class:`facerecon_core.detect.crop.Crop` semantics: photo point p ↦ (p − (left, top)) · size/side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facerecon_core.head.mesh import HeadMesh
from facerecon_core.pose import CropCamera, to_camera

FORMAT_VERSION = 1

_ARRAY_FIELDS = {  # name -> dtype
    "identity_vertices": np.float32,
    "expression_offsets": np.float32,
    "triangles": np.int32,
    "uvs": np.float32,
    "albedo": np.uint8,
    "angles": np.float64,
    "translation": np.float64,
    "sh": np.float64,
    "landmarks_2d": np.float64,
    "landmarks_3d": np.float64,
    "crop_box": np.float64,
}


@dataclass
class FaceReconstruction:
    identity_vertices: np.ndarray  # (V, 3) float32 mm, model frame (neutral face)
    expression_offsets: np.ndarray  # (V, 3) float32 mm; the expressive face = identity + offsets
    triangles: np.ndarray  # (F, 3) int32, CCW from outside
    uvs: np.ndarray  # (V, 2) float32, v up
    albedo: np.ndarray  # (T, T, 3) uint8 UV albedo texture (row 0 = v = 1), the model's colour values
    angles: np.ndarray  # (3,) pitch, yaw, roll radians
    translation: np.ndarray  # (3,) mm, camera space of the crop camera
    sh: np.ndarray  # (3, 9) SH light (RGB × 9, basis of facerecon_core.render.sh_basis)
    landmarks_2d: np.ndarray  # (68, 2) photo pixels
    landmarks_3d: np.ndarray  # (68, 3) mm, model frame
    crop_box: np.ndarray  # (left, top, side) photo pixels of the network crop
    crop_size: int
    confidence: float
    timings: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    source: str = ""  # photo path
    texture_confidence: np.ndarray | None = None  # (T, T) float32 in [0, 1]: the photo's share of each texel of
    # ``albedo`` (photo texture mode; None for the network's map alone). Low: the texel shows the texture stream.
    arkit_weights: dict[str, float] | None = None  # ARKit name → weight in [0, 1] (None: the face model has no rig)
    arkit_residual: np.ndarray | None = None  # (V, 3) float32 mm: the expression the weighted keys do not give
    arkit_keys: np.ndarray | None = None  # (K, V, 3) float32 mm, the keys in ``arkit_weights``' order (the face
    # model's, shared, not copied; not in the .npz, whose keys are in the face-model asset)
    photo_expressions: dict[str, np.ndarray] | None = None  # one person from several photos: photo name → its
    # expression offsets (V, 3) float32 mm, written as morph targets / shape keys named after the photos
    photo_arkit: dict[str, dict[str, float]] | None = None  # photo name → its ARKit weights
    head: HeadMesh | None = None  # the whole head around this face (``mesh="head"``), what the writers then write

    def __post_init__(self) -> None:
        for name, dtype in _ARRAY_FIELDS.items():
            setattr(self, name, np.asarray(getattr(self, name), dtype))
        self.crop_size = int(self.crop_size)
        self.confidence = float(self.confidence)
        self.timings = {str(k): float(v) for k, v in self.timings.items()}
        self.source = str(self.source)
        n = len(self.identity_vertices)
        checks = {
            "identity_vertices": (n, 3), "expression_offsets": (n, 3), "uvs": (n, 2), "angles": (3,),
            "translation": (3,), "sh": (3, 9), "crop_box": (3,),
        }
        for name, shape in checks.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"FaceReconstruction.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise ValueError(f"FaceReconstruction.triangles must have shape (F, 3), got {self.triangles.shape}")
        if self.albedo.ndim != 3 or self.albedo.shape[2] != 3:
            raise ValueError(f"FaceReconstruction.albedo must be a (T, T, 3) uint8 image, got {self.albedo.shape}")
        if self.arkit_weights is not None:
            self.arkit_weights = {str(k): float(v) for k, v in self.arkit_weights.items()}
            self.arkit_residual = np.asarray(self.arkit_residual, np.float32)
            if self.arkit_residual.shape != (n, 3):
                raise ValueError(f"FaceReconstruction.arkit_residual must have shape {(n, 3)}")
        if self.photo_expressions is not None:
            self.photo_expressions = {str(k): np.asarray(v, np.float32) for k, v in self.photo_expressions.items()}
            if any(v.shape != (n, 3) for v in self.photo_expressions.values()):
                raise ValueError(f"FaceReconstruction.photo_expressions must hold ({n}, 3) offsets")
        if self.texture_confidence is not None:
            self.texture_confidence = np.asarray(self.texture_confidence, np.float32)
            if self.texture_confidence.shape != self.albedo.shape[:2]:
                raise ValueError(f"FaceReconstruction.texture_confidence must have the albedo's shape "
                                 f"{self.albedo.shape[:2]}, got {self.texture_confidence.shape}")

    # ------------------------------------------------------------------------------- geometry
    @property
    def n_vertices(self) -> int:
        return len(self.identity_vertices)

    def vertices(self) -> np.ndarray:
        """The expressive face (V, 3) float32, mm, model frame."""
        return self.identity_vertices + self.expression_offsets

    def camera_vertices(self) -> np.ndarray:
        """The expressive face in the crop camera's space (V, 3) float64, mm."""
        return to_camera(self.vertices().astype(np.float64), self.angles, self.translation)

    def crop_camera(self) -> CropCamera:
        return CropCamera(self.crop_size)

    def photo_camera(self, window: tuple[int, int, int, int] | None = None, near: float = 10.0, far: float = 1e5):
        """The crop camera expressed in photo pixels, as a render ``PerspectiveCamera`` (torch-free).

        ``window`` = (x0, y0, x1, y1) restricts the image to photo pixels [x0, x1) × [y0, y1)
        (default: the crop box, rounded outward); rendering with it gives pixels that coincide
        with the photo's, so no resampling is needed to overlay the result.
        """
        from facerecon_core.render.camera import PerspectiveCamera

        left, top, side = (float(x) for x in self.crop_box)
        camera = self.crop_camera()
        scale = side / self.crop_size  # photo pixels per crop pixel
        if window is None:
            window = (int(np.floor(left)), int(np.floor(top)), int(np.ceil(left + side)), int(np.ceil(top + side)))
        x0, y0, x1, y1 = window
        # crop point c (pixel centres on integers) = photo point (left, top) + c * scale; the
        # render camera counts pixels from the image corner (centres at half-integers): + 0.5.
        cx = left + scale * camera.centre + 0.5 - x0
        cy = top + scale * camera.centre + 0.5 - y0
        return PerspectiveCamera(camera.focal * scale, x1 - x0, y1 - y0, cx=cx, cy=cy, near=near, far=far)

    def project_to_photo(self, points_cam: np.ndarray) -> np.ndarray:
        """Photo pixel coordinates (pixel centres on integers) of crop-camera-space points (..., 3)."""
        left, top, side = (float(x) for x in self.crop_box)
        return self.crop_camera().project(np.asarray(points_cam, np.float64)) * (side / self.crop_size) + (left, top)

    # ---------------------------------------------------------------------------------- NPZ
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no object arrays: loads with ``allow_pickle=False``)."""
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays.update(
            format_version=np.int64(FORMAT_VERSION),
            crop_size=np.int64(self.crop_size),
            confidence=np.float64(self.confidence),
            timing_stages=np.array(list(self.timings), dtype=np.str_).reshape(-1),
            timing_ms=np.array(list(self.timings.values()), np.float64).reshape(-1),
            source=np.array(self.source, dtype=np.str_),
        )
        if self.texture_confidence is not None:  # 0–255 for 0–1
            arrays["texture_confidence"] = np.round(np.clip(self.texture_confidence, 0, 1) * 255).astype(np.uint8)
        if self.arkit_weights is not None:
            arrays["arkit_names"] = np.array(list(self.arkit_weights), dtype=np.str_)
            arrays["arkit_weights"] = np.array(list(self.arkit_weights.values()), np.float32)
            arrays["arkit_residual"] = self.arkit_residual
        if self.head is not None:
            arrays.update(self.head.to_arrays())
        if self.photo_expressions:
            arrays["photo_names"] = np.array(list(self.photo_expressions), dtype=np.str_)
            arrays["photo_expressions"] = np.stack(list(self.photo_expressions.values()))
            if self.photo_arkit is not None and self.arkit_weights is not None:  # rows: photos, columns: arkit_names
                arrays["photo_arkit_weights"] = np.array(
                    [[self.photo_arkit[p][k] for k in self.arkit_weights] for p in self.photo_expressions], np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> FaceReconstruction:
        """Inverse of :meth:`to_arrays` (accepts a dict or an open ``NpzFile``)."""
        version = int(arrays["format_version"]) if "format_version" in arrays else -1
        if version != FORMAT_VERSION:
            raise ValueError(f"reconstruction format {version}, this facerecon reads {FORMAT_VERSION}")
        values = {name: np.asarray(arrays[name]) for name in _ARRAY_FIELDS}
        stages = [str(s) for s in np.asarray(arrays["timing_stages"]).reshape(-1)]
        times = np.asarray(arrays["timing_ms"], np.float64).reshape(-1)
        return cls(
            **values,
            crop_size=int(arrays["crop_size"]),
            confidence=float(arrays["confidence"]),
            timings=dict(zip(stages, times.tolist())),
            source=str(np.asarray(arrays["source"])),
            texture_confidence=(np.asarray(arrays["texture_confidence"], np.float32) / 255.0
                                if "texture_confidence" in arrays else None),
            arkit_weights=(dict(zip((str(n) for n in arrays["arkit_names"]),
                                    np.asarray(arrays["arkit_weights"], float).tolist()))
                           if "arkit_names" in arrays else None),
            arkit_residual=np.asarray(arrays["arkit_residual"]) if "arkit_residual" in arrays else None,
            head=HeadMesh.from_arrays(arrays),
            **_photo_fields(arrays),
        )

    @classmethod
    def load(cls, path: str | Path) -> FaceReconstruction:
        """Read a file written by :func:`facerecon_core.export.write_npz` (never unpickles)."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})


def _photo_fields(arrays) -> dict:
    """``photo_expressions`` and ``photo_arkit`` of :meth:`FaceReconstruction.from_arrays` (empty when absent)."""
    if "photo_names" not in arrays:
        return {}
    names = [str(n) for n in arrays["photo_names"]]
    out: dict = {"photo_expressions": dict(zip(names, np.asarray(arrays["photo_expressions"], np.float32)))}
    if "photo_arkit_weights" in arrays and "arkit_names" in arrays:
        keys = [str(k) for k in arrays["arkit_names"]]
        out["photo_arkit"] = {n: dict(zip(keys, np.asarray(row, float).tolist()))
                              for n, row in zip(names, arrays["photo_arkit_weights"])}
    return out
