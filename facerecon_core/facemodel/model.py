"""``FaceModel``: the linear BFM face model on the 38,365-vertex no-neck topology.

Coordinate frame (right-handed, millimetres): x points to the subject's left (image right in a
frontal photo), y up, z out of the face toward the viewer; the origin is the centroid of the mean
shape. Triangles are counter-clockwise seen from outside, so normals point out of the face.
Coefficients are in units of the prior's standard deviation (a standard normal prior).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from facerecon_core.facemodel import topology, uvmap
from facerecon_core.paths import default_facemodel_path

FORMAT_VERSION = 1
OPTIONAL_FIELDS = ("arkit_names", "arkit_deltas", "arkit_fit_mm", "arkit_notice")


class FaceModelError(RuntimeError):
    """The face-model asset is missing or unusable (one-line message with the fix)."""


@dataclass(frozen=True, eq=False)
class FaceModel:
    mean_shape: np.ndarray  # (V, 3) float32, mm
    id_basis: np.ndarray  # (K_id, V, 3) float32, mm per standard deviation
    exp_basis: np.ndarray  # (K_exp, V, 3) float32
    albedo_mean: np.ndarray  # (V, 3) float32, linear RGB in [0, 1]
    albedo_basis: np.ndarray  # (K_alb, V, 3) float32 (may have 0 components)
    triangles: np.ndarray  # (F, 3) int32, counter-clockwise from outside
    uv: np.ndarray  # (V, 2) float32 in [0, 1], v up
    landmark_indices: np.ndarray  # (68,) int64 vertex ids (iBUG 68-point order)
    full_indices: np.ndarray  # (V,) int64 ids in the 53,215-vertex BFM layout
    bfm_offset_mm: np.ndarray  # (3,) float64: ours = BFM / 1000 − offset
    id_scale: np.ndarray  # (K_id,) the source's standard deviations folded into id_basis
    exp_scale: np.ndarray  # (K_exp,)
    albedo_scale: np.ndarray  # (K_alb,)
    uv_face_mask: np.ndarray  # (S, S) bool, texels of the face region
    uv_weight_mask: np.ndarray  # (S, S) float32, facial weight mask W
    source: str
    content_hash: str
    path: Path | None = field(default=None, compare=False)
    # the ARKit expression keys (facerecon_core.facemodel.arkit), absent when the asset was built without the ICT
    # Face Model's data; not part of the content hash
    arkit_names: np.ndarray | None = None  # (K,) str, ARKit's names
    arkit_deltas: np.ndarray | None = None  # (K, V, 3) float16 mm: each key at weight 1 on the mean face
    arkit_fit_mm: np.ndarray | None = None  # (2,) the registration's mean surface distance and landmark error
    arkit_notice: str = ""  # the ICT Face Model's licence notice, kept with what is derived from it

    # ----------------------------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceModel:
        """Load a built asset (default: ``paths.default_facemodel_path()``); never unpickles."""
        path = Path(path) if path is not None else default_facemodel_path()
        if not path.is_file():
            raise FaceModelError(f"face-model asset not found at {path}; build it with `facerecon assets build`")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (ValueError, OSError, EOFError) as exc:
            raise FaceModelError(f"{path}: not a readable face-model asset ({exc}); rebuild it with "
                                 "`facerecon assets build`") from None
        version = int(arrays.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise FaceModelError(f"{path}: asset format {version}, this facerecon reads {FORMAT_VERSION}; "
                                 "rebuild it with `facerecon assets build`")
        names = [f.name for f in fields(cls) if f.name != "path" and f.name not in OPTIONAL_FIELDS]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise FaceModelError(f"{path}: asset lacks {', '.join(missing)}; rebuild it with `facerecon assets build`")
        values = {n: arrays[n] for n in names}
        values.update({n: arrays[n] for n in OPTIONAL_FIELDS if n in arrays})
        values["source"] = str(values["source"])
        values["content_hash"] = str(values["content_hash"])
        if "arkit_notice" in values:
            values["arkit_notice"] = str(values["arkit_notice"])
        return cls(**values, path=path)

    def save(self, path: str | Path) -> Path:
        """Write the asset atomically (loadable without pickle)."""
        from facerecon_core.io import atomic_save_npz

        return atomic_save_npz(path, {"format_version": np.int64(FORMAT_VERSION), **self.arrays()})

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything that goes into the asset file, by field name."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)
                if f.name != "path" and getattr(self, f.name) is not None
                and not (f.name == "arkit_notice" and not self.arkit_notice)}

    # ------------------------------------------------------------------------------- sizes
    @property
    def n_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def n_id(self) -> int:
        return self.id_basis.shape[0]

    @property
    def n_exp(self) -> int:
        return self.exp_basis.shape[0]

    @property
    def n_albedo(self) -> int:
        return self.albedo_basis.shape[0]

    @property
    def has_arkit(self) -> bool:
        return self.arkit_deltas is not None and len(self.arkit_deltas) > 0

    # ------------------------------------------------------------------------------ shapes
    def vertices(self, id_coeff: np.ndarray | None = None, exp_coeff: np.ndarray | None = None) -> np.ndarray:
        """Mean + identity + expression: coefficients (K,) → (V, 3), or (B, K) → (B, V, 3)."""
        shape = self.mean_shape
        for coeff, basis in ((id_coeff, self.id_basis), (exp_coeff, self.exp_basis)):
            if coeff is not None:
                shape = shape + self._combine(coeff, basis)
        return shape

    def expression_offsets(self, exp_coeff: np.ndarray) -> np.ndarray:
        """Per-vertex offsets of an expression alone: (K,) → (V, 3), or (B, K) → (B, V, 3)."""
        return self._combine(exp_coeff, self.exp_basis)

    @functools.cached_property
    def arkit_basis(self) -> np.ndarray:
        """The ARKit keys' deltas (K, V, 3) as float32 mm (the asset stores float16); ``ValueError`` without them."""
        if not self.has_arkit:
            raise ValueError("this face-model asset has no ARKit keys: rebuild it with `facerecon assets build` "
                             "and ../shared/ict_facekit beside the repository")
        return np.asarray(self.arkit_deltas, np.float32)

    def arkit_offsets(self, weights: np.ndarray) -> np.ndarray:
        """Per-vertex offsets of ARKit key weights (in :attr:`arkit_names`' order): (K,) → (V, 3), or (B, K) →
        (B, V, 3)."""
        return self._combine(weights, self.arkit_basis)

    def albedo(self, coeff: np.ndarray | None = None) -> np.ndarray:
        """Per-vertex albedo (linear RGB, unclipped): (K,) → (V, 3), or (B, K) → (B, V, 3)."""
        if coeff is None:
            return self.albedo_mean
        return self.albedo_mean + self._combine(coeff, self.albedo_basis)

    @staticmethod
    def _combine(coeff: np.ndarray, basis: np.ndarray) -> np.ndarray:
        coeff = np.asarray(coeff, np.float32)
        if coeff.shape[-1] != basis.shape[0]:
            raise ValueError(f"expected {basis.shape[0]} coefficients, got {coeff.shape[-1]}")
        return np.tensordot(coeff, basis, axes=([-1], [0]))

    # ---------------------------------------------------------------------- connectivity
    @functools.cached_property
    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """1-ring neighbourhoods as CSR ``(indptr, indices)``."""
        return topology.one_ring(self.triangles, self.n_vertices)

    @functools.cached_property
    def laplacian(self):
        """Uniform Laplacian L = I − D⁻¹A (scipy sparse, V×V)."""
        return topology.laplacian_matrix(*self.neighbours)

    # ------------------------------------------------------------------------------- UV
    def uv_raster(self, size: int = uvmap.DEFAULT_UV_SIZE) -> uvmap.UVRaster:
        """Rasterization of the UV layout at size×size (cached per size)."""
        return _cached_raster(self, size)

    def to_uv_map(self, attr: np.ndarray, size: int = uvmap.DEFAULT_UV_SIZE) -> np.ndarray:
        """Per-vertex attribute (V, C) or (B, V, C) → UV map (…, size, size, C)."""
        return self.uv_raster(size).to_map(attr)

    def from_uv_map(self, uv_map: np.ndarray) -> np.ndarray:
        """UV map (…, H, W, C) → per-vertex values (…, V, C), bilinear at the vertices' UVs."""
        return uvmap.sample_vertices(uv_map, self.uv)

    def face_mask(self, size: int = uvmap.DEFAULT_UV_SIZE) -> np.ndarray:
        """Face-region mask in UV (bool size×size)."""
        if self.uv_face_mask.shape == (size, size):
            return self.uv_face_mask
        return uvmap.face_region_mask(self.uv_raster(size))

    def face_vertices(self) -> np.ndarray:
        """(V,) bool: the vertices inside the UV face region (:meth:`face_mask`); computed once per model."""
        return _cached_face_vertices(self).copy()

    def weight_mask(self, size: int = uvmap.DEFAULT_UV_SIZE) -> np.ndarray:
        """Facial weight mask W in UV (float32 size×size)."""
        if self.uv_weight_mask.shape == (size, size):
            return self.uv_weight_mask
        return uvmap.facial_weight_mask(self.uv, self.landmark_indices, self.face_mask(size))


@functools.lru_cache(maxsize=4)
def _cached_face_vertices(model: FaceModel) -> np.ndarray:
    return model.from_uv_map(model.face_mask().astype(np.float32)[..., None])[:, 0] > 0.5


@functools.lru_cache(maxsize=4)
def _cached_raster(model: FaceModel, size: int) -> uvmap.UVRaster:
    return uvmap.UVRaster.build(model.uv, model.triangles, (size, size))
