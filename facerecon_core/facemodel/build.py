"""``facerecon assets build``: turn the BFM source files into one self-contained ``.npz`` asset."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core.facemodel import arkit as arkit_rig
from facerecon_core.facemodel import sources, uvmap
from facerecon_core.facemodel.model import FaceModel

PARAM_STATS = Path("peers/3ddfa_v2/param_mean_std_62d_120x120.pkl")  # relative to the shared folder


@dataclass(frozen=True)
class BuildReport:
    path: Path
    source: str
    n_vertices: int
    n_triangles: int
    n_id: int
    n_exp: int
    n_albedo: int
    content_hash: str
    seconds: float
    arkit: str = ""  # the ARKit rig: its registration's fit, or why there is none

    def summary(self) -> str:
        return (f"wrote {self.path}: {self.source}, {self.n_vertices} vertices, {self.n_triangles} triangles, "
                f"{self.n_id} identity / {self.n_exp} expression / {self.n_albedo} albedo components "
                f"(sha256 {self.content_hash[:12]}, {self.seconds:.1f} s)" + (f"; {self.arkit}" if self.arkit else ""))


def build_facemodel(
    out: Path,
    source: Path,
    *,
    bfm2009: Path | None = None,
    expression: Path | None = None,
    param_stats: Path | None = None,
    uv_size: int = uvmap.DEFAULT_UV_SIZE,
    ict: Path | None = None,
) -> BuildReport:
    """Build the no-neck face-model asset from ``source`` (a ``shared/bfm``-style folder).

    With ``bfm2009``, identity and albedo come from the official ``01_MorphableModel.mat`` instead
    (and the expression basis from ``expression`` when given). ``param_stats`` defaults to
    3DDFA_V2's parameter statistics beside the source folder (``../peers/3ddfa_v2/...``). ``ict`` (default:
    ``ict_facekit`` beside the source folder) gives the ARKit expression keys; without it the asset has none,
    and the report says what is missing.
    """
    start = time.perf_counter()
    param_stats = param_stats or source.parent / PARAM_STATS
    topo = sources.read_topology(source)
    raw = (sources.read_bfm2009(bfm2009, source, expression, param_stats) if bfm2009
           else sources.read_3ddfa_subset(source, param_stats))
    model = assemble(raw, topo, uv_size)
    try:
        model, arkit = with_arkit(model, ict or source.parent / "ict_facekit"), ""
        arkit = (f"{len(model.arkit_names)} ARKit keys (registration: {model.arkit_fit_mm[0]:.2f} mm from the ICT "
                 f"face, landmarks {model.arkit_fit_mm[1]:.1f} mm before the warp)")
    except arkit_rig.RigError as exc:
        arkit = f"no ARKit keys: {exc}"
    model.save(out)
    return BuildReport(Path(out), raw.source, model.n_vertices, len(model.triangles), model.n_id,
                       model.n_exp, model.n_albedo, model.content_hash, time.perf_counter() - start, arkit)


def with_arkit(model: FaceModel, ict: Path) -> FaceModel:
    """``model`` with the ARKit keys registered from the ICT Face Model in ``ict`` (raises ``RigError``)."""
    rig = arkit_rig.build_rig(model, arkit_rig.load_ict(ict))
    fit = np.array([rig.registration.residual_mm, rig.registration.landmark_mm])
    return dataclasses.replace(model, arkit_names=np.array(rig.names), arkit_deltas=rig.deltas.astype(np.float16),
                               arkit_fit_mm=fit, arkit_notice=rig.notice)


def assemble(raw: sources.RawModel, topo: sources.Topology, uv_size: int) -> FaceModel:
    """Slice a full-layout model to the no-neck topology, in millimetres, centred, CCW."""
    rows = (3 * topo.indices[:, None] + np.arange(3)).reshape(-1)

    def per_vertex(flat: np.ndarray) -> np.ndarray:
        return flat[rows].reshape(-1, 3)

    def basis(full: np.ndarray, unit: float) -> np.ndarray:
        return np.ascontiguousarray((full[rows] / unit).T.reshape(full.shape[1], len(topo.indices), 3), np.float32)

    mean_mm = per_vertex(raw.mean_shape) / 1000.0
    offset = mean_mm.mean(axis=0)
    triangles = np.ascontiguousarray(topo.triangles[:, [0, 2, 1]], np.int32)  # clockwise → CCW
    if _mean_normal_z(mean_mm, triangles) <= 0:
        raise sources.SourceError("tri.pkl: expected triangles wound clockwise seen from the front (+z)")
    uv = topo.uv_full[topo.indices].astype(np.float32)
    landmarks = np.searchsorted(topo.indices, topo.landmarks_full).astype(np.int64)

    raster = uvmap.UVRaster.build(uv, triangles, (uv_size, uv_size))
    face_mask = uvmap.face_region_mask(raster)
    arrays = dict(
        mean_shape=(mean_mm - offset).astype(np.float32),
        id_basis=basis(raw.id_basis, 1000.0),
        exp_basis=basis(raw.exp_basis, 1000.0),
        albedo_mean=(per_vertex(raw.albedo_mean) / 255.0).astype(np.float32),
        albedo_basis=basis(raw.albedo_basis, 255.0),
        triangles=triangles,
        uv=uv,
        landmark_indices=landmarks,
        full_indices=topo.indices.astype(np.int64),
        bfm_offset_mm=offset.astype(np.float64),
        id_scale=raw.id_scale, exp_scale=raw.exp_scale, albedo_scale=raw.albedo_scale,
        uv_face_mask=face_mask,
        uv_weight_mask=uvmap.facial_weight_mask(uv, landmarks, face_mask),
        source=np.str_(raw.source),
    )
    return FaceModel(**arrays, content_hash=content_hash(arrays))


# The arrays that define the model. Left out: the UV masks (rasterised from these, so they can differ
# in the last bit between machines), the source name and the scales (folded into the bases).
HASHED_ARRAYS = ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis", "triangles", "uv",
                 "landmark_indices")


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the defining arrays' names, dtypes, shapes and bytes (the asset's identity in
    manifests, checkpoints and datasets): two builds from the same sources match on any machine."""
    digest = hashlib.sha256()
    for key in HASHED_ARRAYS:
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _mean_normal_z(vertices: np.ndarray, triangles: np.ndarray) -> float:
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    return float(np.cross(v1 - v0, v2 - v0)[:, 2].mean())
