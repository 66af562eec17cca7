"""Readers for the face-model source files, each failing with one line that names the file.

Two sources are understood, both in the 53,215-vertex BFM layout used by 3DDFA / 3DDFA_V2:
- the BFM subset in ``shared/bfm`` (40 identity, 10 expression components, mean albedo only);
- the official BFM 2009 ``01_MorphableModel.mat`` (199 shape and 199 albedo components, 53,490
  vertices), mapped onto that layout by matching its mean shape, plus an expression basis.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_FULL = 53215  # vertices of the 3DDFA BFM layout
N_LANDMARKS = 68


class SourceError(ValueError):
    """A face-model source file is missing or not what was expected (one-line message)."""


@dataclass(frozen=True)
class Topology:
    """The no-neck mesh inside the full layout (from ``indices.npy``, ``tri.pkl``, ``BFM_UV.mat``)."""

    indices: np.ndarray  # (V,) int64 full-layout ids of the no-neck vertices
    triangles: np.ndarray  # (F, 3) int32 into the no-neck vertices, as stored (clockwise from +z)
    uv_full: np.ndarray  # (53215, 2) float64 in [0, 1]
    landmarks_full: np.ndarray  # (68,) int64 full-layout vertex ids


@dataclass(frozen=True)
class RawModel:
    """A linear face model in the full layout and BFM units (shape ~µm, albedo 0-255).

    Bases are (3N, K), flattened x0, y0, z0, x1, ..., scaled so a coefficient of 1 is one standard
    deviation of the prior; ``*_scale`` keeps the standard deviations that were folded in.
    """

    source: str
    mean_shape: np.ndarray
    id_basis: np.ndarray
    id_scale: np.ndarray
    exp_basis: np.ndarray
    exp_scale: np.ndarray
    albedo_mean: np.ndarray
    albedo_basis: np.ndarray
    albedo_scale: np.ndarray


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts, lists and scalars; any other class is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are accepted")


def load_numpy_pickle(path: Path):
    """Load a pickle that may contain only numpy arrays (and plain containers of them)."""
    _require_file(path, "a pickled numpy array")
    try:
        with open(path, "rb") as fh:
            return _NumpyOnlyUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise SourceError(f"{path}: not a pickle of numpy arrays ({exc})") from None


def load_npy(path: Path, shape: tuple[int | None, ...], what: str) -> np.ndarray:
    """Load a ``.npy`` without pickle and check its shape (``None`` matches any length)."""
    _require_file(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SourceError(f"{path}: expected {what} in .npy format ({exc})") from None
    _check_shape(arr, shape, path, what)
    return arr


def load_mat(path: Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Load the named variables of a MATLAB ``.mat`` (v5/v7) file."""
    import scipy.io

    _require_file(path, what)
    try:
        data = scipy.io.loadmat(str(path), variable_names=list(keys))
    except NotImplementedError:
        raise SourceError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it with "
                          "save(..., '-v7')") from None
    except (ValueError, OSError, TypeError) as exc:
        raise SourceError(f"{path}: expected {what} as a MATLAB .mat file ({exc})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise SourceError(f"{path}: expected {what}; variable(s) {', '.join(missing)} not found")
    return {k: np.asarray(data[k]) for k in keys}


def read_topology(source: Path) -> Topology:
    """Read the no-neck topology, UVs and landmarks from a ``shared/bfm``-style folder."""
    indices = load_npy(source / "indices.npy", (None,), "the no-neck vertex ids (int array)").astype(np.int64)
    tri = load_numpy_pickle(source / "tri.pkl")
    if not isinstance(tri, np.ndarray) or tri.ndim != 2 or 3 not in tri.shape:
        raise SourceError(f"{source / 'tri.pkl'}: expected a (3, F) integer triangle array")
    tri = tri.T if tri.shape[0] == 3 else tri
    uv = load_mat(source / "BFM_UV.mat", ("UV",), "per-vertex UVs in variable 'UV'")["UV"]
    _check_shape(uv, (N_FULL, 2), source / "BFM_UV.mat", "UV of shape (53215, 2)")
    keypoints = load_npy(source / "keypoints_sim.npy", (3 * N_LANDMARKS,), "68 landmarks as flat x,y,z ids")
    landmarks = keypoints[::3].astype(np.int64) // 3
    if indices.min() < 0 or indices.max() >= N_FULL or tri.min() < 0 or tri.max() >= len(indices):
        raise SourceError(f"{source}: indices.npy / tri.pkl refer to vertices outside the model")
    if not np.isin(landmarks, indices).all():
        raise SourceError(f"{source / 'keypoints_sim.npy'}: landmark vertices are not in indices.npy")
    return Topology(indices, tri.astype(np.int32), uv.astype(np.float64), landmarks)


def read_3ddfa_subset(source: Path, param_stats: Path) -> RawModel:
    """Read the 3DDFA BFM subset; coefficients are scaled by 3DDFA's 300W-LP parameter std."""
    n3 = 3 * N_FULL
    mean = (load_npy(source / "u_shp.npy", (n3, 1), "the mean shape (159645, 1)")
            + load_npy(source / "u_exp.npy", (n3, 1), "the mean expression (159645, 1)"))[:, 0]
    w_shp = load_npy(source / "w_shp_sim.npy", (n3, None), "the identity basis (159645, K)")
    w_exp = load_npy(source / "w_exp_sim.npy", (n3, None), "the expression basis (159645, K)")
    albedo = load_npy(source / "u_tex.npy", (n3, 1), "the mean albedo (159645, 1)")[:, 0]
    stats = load_numpy_pickle(param_stats)
    if not isinstance(stats, dict) or "std" not in stats or np.shape(stats["std"]) != (62,):
        raise SourceError(f"{param_stats}: expected a dict with 'std' of shape (62,)")
    n_id, n_exp = w_shp.shape[1], w_exp.shape[1]
    if 12 + n_id + n_exp > 62:
        raise SourceError(f"{source}: {n_id} identity + {n_exp} expression components do not fit the "
                          "62-parameter statistics")
    id_scale = np.asarray(stats["std"][12:12 + n_id], np.float64)
    exp_scale = np.asarray(stats["std"][12 + n_id:12 + n_id + n_exp], np.float64)
    return RawModel(
        source="3ddfa-bfm-subset",
        mean_shape=mean.astype(np.float64),
        id_basis=w_shp * id_scale, id_scale=id_scale,
        exp_basis=w_exp * exp_scale, exp_scale=exp_scale,
        albedo_mean=albedo.astype(np.float64),
        albedo_basis=np.zeros((n3, 0)), albedo_scale=np.zeros(0),
    )


def read_bfm2009(mat_path: Path, source: Path, expression: Path | None, param_stats: Path) -> RawModel:
    """Read ``01_MorphableModel.mat`` and map it onto the 53,215-vertex layout of ``source``.

    The vertex correspondence is found by matching its mean shape ``shapeMU`` to the subset's
    ``u_shp`` (which 3DDFA took from it). The expression basis comes from ``expression`` (a ``.npy``
    of shape (159645, K) already scaled to unit-variance coefficients, or a ``.mat`` with ``w_exp``
    (159645, K) and optionally ``sigma_exp`` (K,) and ``mu_exp`` (159645,)); without it, the
    subset's 10-component basis is used.
    """
    from scipy.spatial import cKDTree

    what = "the BFM 2009 model (shapeMU, shapePC, shapeEV, texMU, texPC, texEV)"
    mat = load_mat(mat_path, ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"), what)
    shape_mu = mat["shapeMU"].reshape(-1).astype(np.float64)
    if shape_mu.size % 3:
        raise SourceError(f"{mat_path}: shapeMU length {shape_mu.size} is not a multiple of 3")
    n_src = shape_mu.size // 3
    for key, rows in (("shapePC", 3 * n_src), ("texMU", 3 * n_src), ("texPC", 3 * n_src)):
        if mat[key].shape[0] != rows:
            raise SourceError(f"{mat_path}: {key} has {mat[key].shape[0]} rows, expected {rows}")

    u_shp = load_npy(source / "u_shp.npy", (3 * N_FULL, 1), "the mean shape (159645, 1)").reshape(-1, 3)
    dist, nearest = cKDTree(shape_mu.reshape(-1, 3)).query(u_shp.astype(np.float64))
    if dist.max() > 10.0:  # BFM units (µm): the subset is an exact copy of shapeMU's vertices
        raise SourceError(f"{mat_path}: its mean shape does not contain the 53,215 vertices of "
                          f"{source / 'u_shp.npy'} (largest gap {dist.max() / 1000:.2f} mm); "
                          "expected the official BFM 2009 01_MorphableModel.mat")
    rows = (3 * nearest[:, None] + np.arange(3)).reshape(-1)

    shape_ev = mat["shapeEV"].reshape(-1).astype(np.float64)
    tex_ev = mat["texEV"].reshape(-1).astype(np.float64)
    n3 = 3 * N_FULL
    if expression is None:
        subset = read_3ddfa_subset(source, param_stats)
        exp_basis, exp_scale = subset.exp_basis, subset.exp_scale
        mu_exp = load_npy(source / "u_exp.npy", (n3, 1), "the mean expression (159645, 1)")[:, 0]
    elif expression.suffix == ".npy":
        exp_basis = load_npy(expression, (n3, None), "an expression basis of shape (159645, K)")
        exp_scale, mu_exp = np.ones(exp_basis.shape[1]), np.zeros(n3)
    else:
        exp = load_mat(expression, ("w_exp",), "an expression basis 'w_exp' of shape (159645, K)")["w_exp"]
        _check_shape(exp, (n3, None), expression, "w_exp of shape (159645, K)")
        extra = _optional_mat_vars(expression, ("sigma_exp", "mu_exp"))
        exp_scale = extra["sigma_exp"].reshape(-1) if "sigma_exp" in extra else np.ones(exp.shape[1])
        mu_exp = extra["mu_exp"].reshape(-1) if "mu_exp" in extra else np.zeros(n3)
        exp_basis = exp * exp_scale
    return RawModel(
        source="bfm2009",
        mean_shape=shape_mu[rows] + mu_exp,
        id_basis=mat["shapePC"][rows].astype(np.float64) * shape_ev, id_scale=shape_ev,
        exp_basis=np.asarray(exp_basis, np.float64), exp_scale=np.asarray(exp_scale, np.float64),
        albedo_mean=mat["texMU"].reshape(-1)[rows].astype(np.float64),
        albedo_basis=mat["texPC"][rows].astype(np.float64) * tex_ev, albedo_scale=tex_ev,
    )


def _optional_mat_vars(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import scipy.io

    present = {name for name, _, _ in scipy.io.whosmat(str(path))}
    wanted = tuple(k for k in keys if k in present)
    return load_mat(path, wanted, "optional expression statistics") if wanted else {}


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise SourceError(f"{path}: file not found (expected {what})")


def _check_shape(arr: np.ndarray, shape: tuple[int | None, ...], path: Path, what: str) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok or not np.issubdtype(arr.dtype, np.number):
        raise SourceError(f"{path}: expected {what}, found an array of shape {arr.shape} ({arr.dtype})")
