"""Binary glTF 2.0 (GLB): the identity mesh with the expression as a morph target "Expression".

Written directly (JSON + one binary buffer; no dependency): trimesh cannot export morph targets.
glTF is +Y up in metres; the face model's frame is already y up / z toward the viewer, so the
only conversion is mm → m. Texture coordinates are flipped to glTF's v-down convention.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from facerecon_core.export._common import MM_TO_M, atomic_files, encode_png, resize_texture, vertex_normals
from facerecon_core.reconstruction import FaceReconstruction

TARGET_NAME = "Expression"

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071


class _Buffer:
    """Accumulates 4-byte-aligned bufferViews and accessors of one glTF binary buffer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.length) % 4
        if pad:
            self.chunks.append(b"\0" * pad)
            self.length += pad
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.chunks.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int, bounds: bool = False) -> int:
        component = _UINT32 if array.dtype == np.uint32 else _FLOAT
        view = self.view(np.ascontiguousarray(array).tobytes(), target)
        acc = {"bufferView": view, "componentType": component, "count": int(len(array)), "type": kind}
        if bounds:
            acc["min"] = [float(x) for x in np.atleast_1d(array.min(axis=0))]
            acc["max"] = [float(x) for x in np.atleast_1d(array.max(axis=0))]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.chunks) + b"\0" * ((-self.length) % 4)


def glb_document(rec: FaceReconstruction, texture_size: int | None = None,
                 expression_weight: float = 1.0) -> tuple[dict, bytes]:
    """The glTF JSON document and its binary buffer for ``rec``."""
    identity = rec.identity_vertices.astype(np.float32)
    expressive = rec.vertices()
    normals = vertex_normals(identity, rec.triangles)
    normal_delta = vertex_normals(expressive, rec.triangles) - normals
    positions = (identity.astype(np.float64) * MM_TO_M).astype(np.float32)
    offsets = (rec.expression_offsets.astype(np.float64) * MM_TO_M).astype(np.float32)
    texcoords = np.stack([rec.uvs[:, 0], 1.0 - rec.uvs[:, 1]], axis=1).astype(np.float32)
    texture = resize_texture(rec.albedo, texture_size)

    buf = _Buffer()
    attributes = {
        "POSITION": buf.accessor(positions, "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": buf.accessor(normals.astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "TEXCOORD_0": buf.accessor(texcoords, "VEC2", _ARRAY_BUFFER),
    }
    indices = buf.accessor(rec.triangles.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER, bounds=True)
    target = {
        "POSITION": buf.accessor(offsets, "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": buf.accessor(normal_delta.astype(np.float32), "VEC3", _ARRAY_BUFFER),
    }
    image_view = buf.view(encode_png(texture))
    doc = {
        "asset": {"version": "2.0", "generator": "facerecon"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{
            "name": "face",
            "primitives": [{"attributes": attributes, "indices": indices, "material": 0, "mode": 4,
                            "targets": [target]}],
            "weights": [float(expression_weight)],
            "extras": {"targetNames": [TARGET_NAME]},
        }],
        "materials": [{
            "name": "face",
            "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0,
                                     "roughnessFactor": 0.9},
        }],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR, "wrapS": _CLAMP_TO_EDGE,
                      "wrapT": _CLAMP_TO_EDGE}],
        "images": [{"bufferView": image_view, "mimeType": "image/png", "name": "albedo"}],
        "bufferViews": buf.views,
        "accessors": buf.accessors,
        "extras": {"units": "metres", "source": rec.source,
                   "frame": "face model: x = subject's left, y up, z toward the viewer"},
    }
    data = buf.data()
    doc["buffers"] = [{"byteLength": len(data)}]
    return doc, data


def encode_glb(doc: dict, data: bytes) -> bytes:
    """A GLB container (header, JSON chunk, BIN chunk)."""
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 4)
    total = 12 + 8 + len(text) + 8 + len(data)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(data), b"BIN\0"), data,
    ])


def write_glb(rec: FaceReconstruction, path: str | os.PathLike, texture_size: int | None = None,
              expression_weight: float = 1.0) -> Path:
    """Write ``rec`` as a GLB atomically; returns the path.

    Base mesh = the neutral identity face; morph target 0 (named "Expression" in
    ``mesh.extras.targetNames``) holds the expression offsets (POSITION) and the change of the
    normals (NORMAL). The mesh's default weight is ``expression_weight`` (1 = the expression of
    the photo, 0 = neutral). Metres, +Y up; the PNG albedo is embedded as baseColorTexture.
    """
    path = Path(path)
    blob = encode_glb(*glb_document(rec, texture_size, expression_weight))
    with atomic_files(path) as (tmp,):
        tmp.write_bytes(blob)
    return path


def read_glb_json(path: str | os.PathLike) -> tuple[dict, bytes]:
    """The JSON document and BIN chunk of a GLB file (for tests and inspection)."""
    raw = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<4sII", raw, 0)
    if magic != b"glTF" or version != 2 or total != len(raw):
        raise ValueError(f"{path}: not a GLB 2.0 file")
    json_len, _ = struct.unpack_from("<I4s", raw, 12)
    doc = json.loads(raw[20:20 + json_len])
    bin_len, kind = struct.unpack_from("<I4s", raw, 20 + json_len)
    if kind != b"BIN\0":
        raise ValueError(f"{path}: GLB without a BIN chunk")
    return doc, raw[28 + json_len:28 + json_len + bin_len]


def accessor_array(doc: dict, data: bytes, index: int) -> np.ndarray:
    """Read accessor ``index`` of a GLB document as a numpy array (tight-packed views only)."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    dtype = {_FLOAT: np.float32, _UINT32: np.uint32}[acc["componentType"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    arr = np.frombuffer(data, dtype, acc["count"] * width, start)
    return arr.reshape(acc["count"], width) if width > 1 else arr
