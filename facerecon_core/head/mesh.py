"""``HeadMesh``: the whole head of one reconstruction (numpy only): ICT's quad topology with its parts as
materials, its shape keys (ARKit's 51 at the photo's weights, then what they leave of the photo's expression),
and its textures.

Frame and units as :class:`~facerecon_core.reconstruction.FaceReconstruction`'s: the face model's, millimetres
(x = the subject's left, y up, z toward the viewer). ``vertices`` is the neutral head (every key at 0: mouth
closed, eyes open and looking ahead); ``expressive()`` adds the keys at their weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facerecon_core.head.rig import MATERIALS, triangulate

PREFIX = "head_"  # of the head's arrays in a reconstruction's NPZ


@dataclass(eq=False)
class HeadMesh:
    vertices: np.ndarray  # (N, 3) float32 mm, the neutral head
    poly_sizes: np.ndarray  # (P,) int32, 3 or 4
    poly_vertices: np.ndarray  # (C,) int32
    poly_uvs: np.ndarray  # (C,) int32
    uvs: np.ndarray  # (U, 2) float32, v up, in [0, 1] within each polygon's material
    poly_material: np.ndarray  # (P,) uint8 index into ``materials``
    part_names: np.ndarray  # (R,) str
    part_ranges: np.ndarray  # (R, 2) int64 inclusive vertex ranges
    key_names: list[str]  # the shape keys: ARKit's 51, "Expression residual", one per photo (several photos)
    key_deltas: np.ndarray  # (K, N, 3) float32 mm
    key_weights: np.ndarray  # (K,) float32: the photo's (the photos' own keys at 0)
    skin_texture: np.ndarray  # (H, 2H, 3) uint8, row 0 = v = 1
    eye_texture: np.ndarray  # (S, S, 3) uint8
    colours: dict[str, tuple[float, float, float]]  # flat base colours (sRGB 0–1) of the untextured materials
    materials: tuple[str, ...] = MATERIALS
    notice: str = ""  # the licences of what the head derives from (ICT Face Model: MIT; BFM), kept with every copy

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, np.float32)
        self.key_deltas = np.asarray(self.key_deltas, np.float32)
        self.key_weights = np.asarray(self.key_weights, np.float32)
        self.key_names = [str(k) for k in self.key_names]
        n = len(self.vertices)
        if self.vertices.shape != (n, 3) or self.key_deltas.shape[1:] != (n, 3):
            raise ValueError(f"HeadMesh: vertices {self.vertices.shape} and key deltas {self.key_deltas.shape} differ")
        if not len(self.key_names) == len(self.key_deltas) == len(self.key_weights):
            raise ValueError("HeadMesh: one name, delta and weight per key")

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @functools.cached_property
    def triangles(self) -> np.ndarray:
        """(T, 3) int32, CCW from outside (quads split along a diagonal)."""
        return triangulate(self.poly_sizes, self.poly_vertices)

    @functools.cached_property
    def triangle_material(self) -> np.ndarray:
        return np.repeat(self.poly_material, self.poly_sizes - 2)

    @functools.cached_property
    def triangle_uvs(self) -> np.ndarray:
        """(T, 3) UV indices of the triangles' corners."""
        return triangulate(self.poly_sizes, self.poly_uvs)

    @functools.cached_property
    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The mesh with a vertex per (vertex, UV) pair, as glTF and renderers want it: (the original vertex of
        each (M,), its UV index (M,), the triangles over them (T, 3))."""
        pairs, inverse = np.unique(self.poly_vertices.astype(np.int64) * len(self.uvs) + self.poly_uvs,
                                   return_inverse=True)
        return pairs // len(self.uvs), pairs % len(self.uvs), triangulate(self.poly_sizes, inverse)

    def material_textures(self) -> dict[str, np.ndarray]:
        """The textured materials' images (row 0 = v = 1): ``skin`` (H, 2H, 3) and ``eyes`` (S, S, 3) uint8."""
        return {"skin": self.skin_texture, "eyes": self.eye_texture}

    def vertex_colours(self) -> np.ndarray:
        """(N, 3) uint8: each vertex's colour (its material's texture at its first UV, or the flat colour)."""
        from facerecon_core.imageops import sample_uv

        uv_of = np.zeros(self.n_vertices, np.int64)
        uv_of[self.poly_vertices[::-1]] = self.poly_uvs[::-1]
        material = np.zeros(self.n_vertices, np.int64)
        material[self.poly_vertices] = np.repeat(self.poly_material, self.poly_sizes)
        out = np.zeros((self.n_vertices, 3), np.float32)
        for index, name in enumerate(self.materials):
            mine = material == index
            texture = self.material_textures().get(name)
            if texture is not None:
                out[mine] = sample_uv(texture.astype(np.float32) / 255.0, self.uvs[uv_of[mine]])
            elif name in self.colours:
                out[mine] = self.colours[name]
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def expressive(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The head (N, 3) with its keys at ``weights`` (default: the photo's)."""
        w = self.key_weights if weights is None else np.asarray(weights, np.float32)
        return self.vertices + np.tensordot(w, self.key_deltas, axes=(0, 0))

    def part(self, name: str) -> np.ndarray:
        names = [str(n) for n in self.part_names]
        lo, hi = self.part_ranges[names.index(name)]
        return np.arange(lo, hi + 1)

    # --------------------------------------------------------------------------------------------- NPZ
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "vertices": self.vertices, "poly_sizes": self.poly_sizes, "poly_vertices": self.poly_vertices,
            "poly_uvs": self.poly_uvs, "uvs": self.uvs, "poly_material": self.poly_material,
            "part_names": np.asarray(self.part_names, np.str_), "part_ranges": self.part_ranges,
            "key_names": np.array(self.key_names, np.str_), "key_deltas": self.key_deltas.astype(np.float16),
            "key_weights": self.key_weights, "skin_texture": self.skin_texture, "eye_texture": self.eye_texture,
            "colour_names": np.array(list(self.colours), np.str_),
            "colour_values": np.array(list(self.colours.values()), np.float32).reshape(-1, 3),
            "materials": np.array(self.materials, np.str_), "notice": np.array(self.notice, np.str_),
        }
        return {PREFIX + k: v for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays) -> HeadMesh | None:
        """The head in a reconstruction's arrays (None when it has none)."""
        if PREFIX + "vertices" not in arrays:
            return None
        a = {k[len(PREFIX):]: np.asarray(arrays[k]) for k in arrays if str(k).startswith(PREFIX)}
        colours = {str(n): tuple(float(x) for x in v) for n, v in zip(a.pop("colour_names"), a.pop("colour_values"))}
        return cls(**{k: v for k, v in a.items() if k not in ("materials", "key_names", "notice")},
                   key_names=[str(k) for k in a["key_names"]], colours=colours,
                   materials=tuple(str(m) for m in a["materials"]), notice=str(a.get("notice", "")))
