"""``HeadRig``: the ICT Face Model's head laid around our face model, precomputed (numpy only at run time).

Built once by ``facerecon assets build`` (:mod:`facerecon_core.head.register`, which needs scipy) into
``facerecon_core/data/head.npz`` beside the face-model asset; a head per photo then needs only numpy
(:mod:`facerecon_core.head.shape`, :mod:`facerecon_core.head.texture`), as the Blender add-on has.

Frame and units: our face model's (millimetres, x = the subject's left, y up, z toward the viewer). The ICT
topology is kept as quads (its clean quad layout is what artists rig), less the lacrimal, eye-blend and
eye-occlusion meshes (thin shading layers that need ICT's own shaders). Parts are materials: ``skin`` (face,
head and neck, mouth and eye sockets; one texture over ICT's first two UV tiles, u halved), ``eyes``
(eyeballs), ``gums`` (gums and tongue), ``teeth``, ``eyelashes``; each material's UVs lie in [0, 1].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from facerecon_core.paths import PACKAGE_DIR

FORMAT_VERSION = 2
HEAD_FILE = "head.npz"
MATERIALS = ("skin", "eyes", "gums", "teeth", "eyelashes")
SKIN, EYES, GUMS, TEETH, EYELASHES = range(len(MATERIALS))


class HeadError(RuntimeError):
    """The head rig is missing or unusable (one line with the fix)."""


def default_head_path() -> Path:
    """The built head rig: ``$FACERECON_HEAD``, else ``facerecon_core/data/head.npz``."""
    import os

    env = os.environ.get("FACERECON_HEAD")
    return Path(env).expanduser().resolve() if env else PACKAGE_DIR / "data" / HEAD_FILE


@dataclass(frozen=True, eq=False)
class HeadRig:  # eq=False: hashed by identity (lru caches)
    # the mesh (ICT topology, quads), its base shape: ICT's neutral head whose face area is our mean face (the
    # eyeballs and teeth not yet seated behind the lids and lips: shape.seat does that for every head)
    base: np.ndarray  # (N, 3) float32 mm
    poly_sizes: np.ndarray  # (P,) int32 corners per polygon (3 or 4)
    poly_vertices: np.ndarray  # (C,) int32 vertex of each corner
    poly_uvs: np.ndarray  # (C,) int32 UV index of each corner
    uvs: np.ndarray  # (U, 2) float32, v up, in [0, 1] within each polygon's material
    poly_material: np.ndarray  # (P,) uint8 index into MATERIALS
    part_names: np.ndarray  # (R,) str
    part_ranges: np.ndarray  # (R, 2) int64 inclusive vertex ranges
    # the face area: ICT vertices that take our face's surface (a point of one of our triangles)
    face_vertices: np.ndarray  # (F,) int64
    face_triangles: np.ndarray  # (F, 3) int32 our vertex ids
    face_barycentric: np.ndarray  # (F, 3) float32
    face_region: np.ndarray  # (skin_count,) bool: where ICT's face lies on ours (the face area and the folds
    # left out of it, which the extension fills): what the head suite measures
    source_vertices: np.ndarray  # (N,) int64: each vertex's id in the ICT Face Model
    ict_head: np.ndarray  # (N, 3) float32 mm: ICT's own neutral head, aligned to our mean face (the reference)
    # ICT's identity components (our frame, mm) and their regularised least-squares fit on the face area
    identity_basis: np.ndarray  # (K, N, 3) float16
    fit_matrix: np.ndarray  # (K, 3F) float32: coefficients = fit_matrix @ (face displacement).ravel()
    # the smooth extension of a face-area displacement over the rest of the skin: (L + εI) x = −L_uF r_F
    skin_count: int  # vertices 0 … skin_count − 1 are the skin (one connected surface)
    free_vertices: np.ndarray  # (U,) int64 skin vertices outside the face area
    system: tuple[np.ndarray, np.ndarray, np.ndarray]  # CSR (indptr, indices, data) of L_uu + εI, (U, U)
    coupling: tuple[np.ndarray, np.ndarray, np.ndarray]  # CSR of −L_uF, (U, F)
    # the parts inside (teeth, gums, eyeballs, eyelashes) follow the skin around them
    interior_vertices: np.ndarray  # (I,) int64
    interior_neighbours: np.ndarray  # (I, k) int64 skin vertices
    interior_weights: np.ndarray  # (I, k) float32, rows sum to 1
    rigid_group: np.ndarray  # (I,) int64: −1 follows its neighbours, else moves as its group's mean
    eye_centres: np.ndarray  # (2, 3) float64 left, right eyeball centres on the base head
    lid_vertices: np.ndarray  # (L,) int64 skin vertices around the eye openings …
    lid_eye: np.ndarray  # (L,) int64 … of the left (0) or right (1) eye …
    lid_radius: np.ndarray  # (L,) float32 … and their distance from that eyeball's centre on ICT's own head
    lip_vertices: np.ndarray  # (M,) int64 skin vertices of the lips in front of the teeth …
    lip_teeth: np.ndarray  # (M,) int64 … the nearest tooth vertex of each …
    lip_clearance: np.ndarray  # (M,) float32 … and how far in front of it (z) the lip lies on ICT's own head
    # the expressions: ARKit's names, ICT's deltas in our frame (eyeLook* also turn the eyeballs)
    arkit_names: np.ndarray  # (51,) str
    arkit_deltas: np.ndarray  # (51, N, 3) float16 mm
    # texturing: the skin texture (H × 2H) and the eye texture (S × S), texel by texel
    skin_face_uv: np.ndarray  # (H, 2H, 2) uint16: our face model's UV at each skin texel (/ 65535)
    skin_alpha: np.ndarray  # (H, 2H) uint8: 255 where the texel shows our face texture, 0 the skin tone
    skin_part: np.ndarray  # (H, 2H) uint8: 1 face, 2 head and neck, 3 mouth socket, 4 eye sockets, 0 none
    eye_angle: np.ndarray  # (S, S) float16: degrees from the eyeball's gaze axis at each eye texel
    face_model_hash: str  # the face-model asset this rig was built against
    notice: str  # the ICT Face Model's licence (and the BFM's terms, whose mean face the rig holds)
    path: Path | None = field(default=None, compare=False)

    @property
    def n_vertices(self) -> int:
        return len(self.base)

    def part(self, name: str) -> np.ndarray:
        """The vertex ids of part ``name``."""
        names = [str(n) for n in self.part_names]
        if name not in names:
            raise KeyError(f"no part {name!r}; parts: {', '.join(names)}")
        lo, hi = self.part_ranges[names.index(name)]
        return np.arange(lo, hi + 1)

    def vertex_material(self) -> np.ndarray:
        """(N,) uint8: the material of each vertex (of the polygons using it)."""
        return _vertex_material(self)

    @functools.cached_property
    def triangles(self) -> np.ndarray:
        """The polygons as triangles (T, 3) int32 (quads split along their first diagonal), CCW from outside."""
        return triangulate(self.poly_sizes, self.poly_vertices)

    @functools.cached_property
    def triangle_polygon(self) -> np.ndarray:
        """(T,) the polygon each triangle of :attr:`triangles` comes from."""
        return np.repeat(np.arange(len(self.poly_sizes)), self.poly_sizes - 2)

    # ------------------------------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        """Write the rig atomically, packed small for the add-on (7 MB): the identity components as int8 with a
        scale each (a head built from the loaded rig lies within a few tenths of a millimetre of one from the
        rig in memory), the fit matrix as float16, the skin's face-UV map as differences along its rows."""
        from facerecon_core.io import atomic_save_npz

        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "path":
                continue
            if isinstance(value, tuple):
                for i, part in enumerate(value):
                    arrays[f"{f.name}_{i}"] = part
            else:
                arrays[f.name] = np.asarray(value)
        basis = arrays.pop("identity_basis").astype(np.float32)
        scale = np.maximum(np.abs(basis).reshape(len(basis), -1).max(1), 1e-12) / 127.0
        arrays["identity_basis_int8"] = np.round(basis / scale[:, None, None]).astype(np.int8)
        arrays["identity_basis_scale"] = scale.astype(np.float32)
        arrays["fit_matrix"] = arrays["fit_matrix"].astype(np.float16)
        arrays["skin_face_uv"] = np.diff(arrays["skin_face_uv"].astype(np.int32), axis=1, prepend=0).astype(np.int16)
        return atomic_save_npz(path, {"format_version": np.int64(FORMAT_VERSION), **arrays})

    @classmethod
    def load(cls, path: str | Path | None = None) -> HeadRig:
        """The built rig (default :func:`default_head_path`); never unpickles."""
        path = Path(path) if path is not None else default_head_path()
        if not path.is_file():
            raise HeadError(f"head rig not found at {path}: build it with `facerecon assets build` (needs "
                            f"../shared/ict_facekit beside the repository)")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (ValueError, OSError, EOFError) as exc:
            raise HeadError(f"{path}: not a readable head rig ({exc}); rebuild it with `facerecon assets build`") \
                from None
        if int(arrays.get("format_version", -1)) != FORMAT_VERSION:
            raise HeadError(f"{path}: head rig format {int(arrays.get('format_version', -1))}, this facerecon "
                            f"reads {FORMAT_VERSION}; rebuild it with `facerecon assets build`")
        if "identity_basis_int8" in arrays:  # unpack what save packed
            scale = arrays.pop("identity_basis_scale").astype(np.float32)
            arrays["identity_basis"] = (arrays.pop("identity_basis_int8") * scale[:, None, None]).astype(np.float16)
            arrays["fit_matrix"] = arrays["fit_matrix"].astype(np.float32)
            arrays["skin_face_uv"] = np.cumsum(arrays["skin_face_uv"].astype(np.int32), axis=1).astype(np.uint16)
        values = {}
        for f in fields(cls):
            if f.name == "path":
                continue
            if f.name in ("system", "coupling"):
                keys = [f"{f.name}_{i}" for i in range(3)]
                if not all(k in arrays for k in keys):
                    raise HeadError(f"{path}: head rig lacks {f.name}; rebuild it with `facerecon assets build`")
                values[f.name] = tuple(arrays[k] for k in keys)
            elif f.name not in arrays:
                raise HeadError(f"{path}: head rig lacks {f.name}; rebuild it with `facerecon assets build`")
            else:
                values[f.name] = arrays[f.name]
        values["skin_count"] = int(values["skin_count"])
        values["face_model_hash"] = str(values["face_model_hash"])
        values["notice"] = str(values["notice"])
        return cls(**values, path=path)


def triangulate(sizes: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Polygons (corner counts, flat corner list) as triangle fans (T, 3) int32, in polygon order."""
    sizes = np.asarray(sizes, np.int64)
    corners = np.asarray(corners, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    first = np.repeat(starts, sizes - 2)
    k = np.arange(len(first)) - np.repeat(np.cumsum(sizes - 2) - (sizes - 2), sizes - 2)
    return np.stack([corners[first], corners[first + k + 1], corners[first + k + 2]], 1).astype(np.int32)


@functools.lru_cache(maxsize=2)
def _vertex_material(rig: HeadRig) -> np.ndarray:
    out = np.zeros(rig.n_vertices, np.uint8)
    out[rig.poly_vertices] = np.repeat(rig.poly_material, rig.poly_sizes)
    return out


@functools.lru_cache(maxsize=1)
def load_default() -> HeadRig:
    """:meth:`HeadRig.load` of the default path, once per process."""
    return HeadRig.load()
