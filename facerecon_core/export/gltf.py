"""Binary glTF 2.0 (GLB): the identity mesh with the expression as morph targets: the 51 ARKit keys at their
solved weights plus "Expression residual" (or, without the rig, one target "Expression"); for one person from
several photos, then one target per photo (its expression), named after the photo, at weight 0.

With a head (``mesh="head"``), the whole head instead: a primitive per material, the same keys on all
(:func:`head_document`).

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
from facerecon_core.head.texture import OPACITY
from facerecon_core.reconstruction import FaceReconstruction

TARGET_NAME = "Expression"
RESIDUAL_NAME = "Expression residual"

SPARSE_THRESHOLD_M = 5e-5  # morph-target rows moving less than 0.05 mm are left out (read as zero)

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

    def sparse(self, deltas: np.ndarray, threshold: float = SPARSE_THRESHOLD_M) -> int:
        """A VEC3 float accessor of ``deltas`` (N, 3) that stores only the rows moving more than ``threshold``
        (glTF sparse accessor; the rest read as zero)."""
        deltas = np.ascontiguousarray(deltas, np.float32)
        moving = np.flatnonzero(np.abs(deltas).max(axis=1) > threshold)
        if not len(moving):
            moving = np.zeros(1, np.int64)  # a sparse accessor holds at least one value
        acc = {"componentType": _FLOAT, "count": int(len(deltas)), "type": "VEC3",
               "min": [float(x) for x in np.minimum(deltas[moving].min(axis=0), 0.0)],
               "max": [float(x) for x in np.maximum(deltas[moving].max(axis=0), 0.0)],
               "sparse": {"count": int(len(moving)),
                          "indices": {"bufferView": self.view(moving.astype(np.uint32).tobytes()),
                                      "componentType": _UINT32},
                          "values": {"bufferView": self.view(deltas[moving].tobytes())}}}
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.chunks) + b"\0" * ((-self.length) % 4)


def glb_document(rec: FaceReconstruction, texture_size: int | None = None,
                 expression_weight: float = 1.0) -> tuple[dict, bytes]:
    """The glTF JSON document and its binary buffer for ``rec`` (its head when it has one)."""
    if rec.head is not None:
        return head_document(rec, expression_weight)
    identity = rec.identity_vertices.astype(np.float32)
    expressive = rec.vertices()
    normals = vertex_normals(identity, rec.triangles)
    normal_delta = vertex_normals(expressive, rec.triangles) - normals
    positions, offsets = _metres(identity), _metres(rec.expression_offsets)
    texcoords = np.stack([rec.uvs[:, 0], 1.0 - rec.uvs[:, 1]], axis=1).astype(np.float32)
    texture = resize_texture(rec.albedo, texture_size)

    buf = _Buffer()
    attributes = {
        "POSITION": buf.accessor(positions, "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": buf.accessor(normals.astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "TEXCOORD_0": buf.accessor(texcoords, "VEC2", _ARRAY_BUFFER),
    }
    indices = buf.accessor(rec.triangles.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER, bounds=True)
    if rec.arkit_weights is not None and rec.arkit_keys is not None:  # the ARKit keys, then the residual
        names = [*rec.arkit_weights, RESIDUAL_NAME]
        weights = [*rec.arkit_weights.values(), float(expression_weight)]
        deltas = [*rec.arkit_keys, rec.arkit_residual]
        targets = [{"POSITION": buf.sparse(_metres(d))} for d in deltas]
    else:
        names, weights = [TARGET_NAME], [float(expression_weight)]
        targets = [{
            "POSITION": buf.accessor(offsets, "VEC3", _ARRAY_BUFFER, bounds=True),
            "NORMAL": buf.accessor(normal_delta.astype(np.float32), "VEC3", _ARRAY_BUFFER),
        }]
    for photo, photo_offsets in (rec.photo_expressions or {}).items():  # one person from several photos: each
        names.append(photo)  # one's expression, off by default (the head is neutral)
        weights.append(0.0)
        target = {"POSITION": buf.sparse(_metres(photo_offsets))}
        if "NORMAL" in targets[0]:  # every target carries the same attributes
            shifted = vertex_normals(identity + photo_offsets, rec.triangles) - normals
            target["NORMAL"] = buf.accessor(shifted.astype(np.float32), "VEC3", _ARRAY_BUFFER)
        targets.append(target)
    image_view = buf.view(encode_png(texture))
    doc = {
        "asset": {"version": "2.0", "generator": "facerecon"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{
            "name": "face",
            "primitives": [{"attributes": attributes, "indices": indices, "material": 0, "mode": 4,
                            "targets": targets}],
            "weights": [float(w) for w in weights],
            "extras": {"targetNames": names},
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


def head_document(rec: FaceReconstruction, expression_weight: float = 1.0) -> tuple[dict, bytes]:
    """The glTF document of ``rec.head``: one mesh, a primitive per material (skin and eyes textured; gums, teeth
    and eyelashes flat colours), all with the head's shape keys as morph targets (``extras.targetNames``) at the
    photo's weights (the residual's, or the whole expression's, at ``expression_weight``)."""
    head = rec.head
    vertex_of, uv_of, triangles = head.split
    positions = _metres(head.vertices)
    normals = vertex_normals(head.vertices, head.triangles)
    buf = _Buffer()
    images, textures, materials, primitives = [], [], [], []
    material_of_triangle = head.triangle_material
    textured = head.material_textures()
    for index, name in enumerate(head.materials):
        mine = triangles[material_of_triangle == index]
        if not len(mine):
            continue
        used, local = np.unique(mine, return_inverse=True)
        uv = head.uvs[uv_of[used]]
        attributes = {
            "POSITION": buf.accessor(positions[vertex_of[used]], "VEC3", _ARRAY_BUFFER, bounds=True),
            "NORMAL": buf.accessor(normals[vertex_of[used]].astype(np.float32), "VEC3", _ARRAY_BUFFER),
            "TEXCOORD_0": buf.accessor(np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1).astype(np.float32), "VEC2",
                                       _ARRAY_BUFFER),
        }
        pbr = {"metallicFactor": 0.0, "roughnessFactor": 0.9 if name != "eyes" else 0.3}
        if name in textured:
            images.append({"bufferView": buf.view(encode_png(textured[name])), "mimeType": "image/png", "name": name})
            textures.append({"sampler": 0, "source": len(images) - 1})
            pbr["baseColorTexture"] = {"index": len(textures) - 1}
        else:
            pbr["baseColorFactor"] = [*_linear(head.colours.get(name, (0.8, 0.8, 0.8))), OPACITY.get(name, 1.0)]
        materials.append({"name": name, "pbrMetallicRoughness": pbr,
                          **({"alphaMode": "BLEND"} if name in OPACITY else {})})
        primitives.append({
            "attributes": attributes, "material": len(materials) - 1, "mode": 4,
            "indices": buf.accessor(local.reshape(-1, 3).astype(np.uint32).reshape(-1), "SCALAR",
                                    _ELEMENT_ARRAY_BUFFER, bounds=True),
            "targets": [{"POSITION": buf.sparse(_metres(delta[vertex_of[used]]))} for delta in head.key_deltas],
        })
    weights = [float(w) for w in head.key_weights]
    for k, name in enumerate(head.key_names):
        if name in (RESIDUAL_NAME, TARGET_NAME):
            weights[k] = float(expression_weight)
    name = Path(rec.source).stem if rec.source else "head"
    doc = {
        "asset": {"version": "2.0", "generator": "facerecon"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name or "head"}],
        "meshes": [{"name": "head", "primitives": primitives, "weights": weights,
                    "extras": {"targetNames": list(head.key_names)}}],
        "materials": materials,
        "textures": textures,
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR, "wrapS": _CLAMP_TO_EDGE,
                      "wrapT": _CLAMP_TO_EDGE}],
        "images": images,
        "bufferViews": buf.views,
        "accessors": buf.accessors,
        "extras": {"units": "metres", "source": rec.source, "licence": head.notice,
                   "frame": "face model: x = subject's left, y up, z toward the viewer"},
    }
    data = buf.data()
    doc["buffers"] = [{"byteLength": len(data)}]
    return doc, data


def animate(doc: dict, data: bytes, times: np.ndarray, weights: np.ndarray | None,
            rotations: np.ndarray | None) -> tuple[dict, bytes]:
    """``doc`` (from :func:`glb_document`) with an animation of its node 0: the mesh's morph-target ``weights``
    (T, K, in ``targetNames``' order) and the node's ``rotations`` (T, 4) quaternions (x, y, z, w) at ``times`` (T,)
    seconds, linear between keys."""
    buf = _Buffer()
    buf.chunks, buf.length = [data], len(data)
    buf.views, buf.accessors = doc["bufferViews"], doc["accessors"]
    times = np.asarray(times, np.float32)
    moments = buf.accessor(times, "SCALAR", None, bounds=True)
    samplers, channels = [], []
    for path, values in (("weights", weights), ("rotation", rotations)):
        if values is None:
            continue
        values = np.asarray(values, np.float32)
        kind = "SCALAR" if path == "weights" else "VEC4"
        output = buf.accessor(values.reshape(-1) if path == "weights" else values.reshape(-1, 4), kind, None)
        samplers.append({"input": moments, "output": output, "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": 0, "path": path}})
    doc["animations"] = [{"name": "performance", "samplers": samplers, "channels": channels}]
    data = buf.data()
    doc["buffers"] = [{"byteLength": len(data)}]
    return doc, data


def _linear(srgb) -> list[float]:
    """sRGB (0–1) → linear, as glTF's baseColorFactor is."""
    c = np.asarray(srgb, np.float64)
    return [float(x) for x in np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)]


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


def _metres(points_mm: np.ndarray) -> np.ndarray:
    """Millimetres → metres, float32 (computed in float64)."""
    return (np.asarray(points_mm, np.float64) * MM_TO_M).astype(np.float32)


def write_glb(rec: FaceReconstruction, path: str | os.PathLike, texture_size: int | None = None,
              expression_weight: float = 1.0) -> Path:
    """Write ``rec`` as a GLB atomically; returns the path.

    Base mesh = the neutral identity face. With ARKit weights (a face model with the rig): the 51 ARKit keys
    as morph targets named as ARKit's (``mesh.extras.targetNames``), their solved values as the mesh's default
    weights, and last "Expression residual" (what the keys do not explain) at ``expression_weight``; sparse
    POSITION deltas. Without: one target "Expression", the expression offsets (POSITION) and the change of the
    normals (NORMAL), at ``expression_weight`` (1 = the expression of the photo, 0 = neutral). Metres, +Y up;
    the PNG albedo is embedded as baseColorTexture.
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
    """Read accessor ``index`` of a GLB document as a numpy array (tight-packed views; sparse accessors too)."""
    acc = doc["accessors"][index]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    dtype = {_FLOAT: np.float32, _UINT32: np.uint32}[acc["componentType"]]

    def read(view_index: int, kind, count: int, offset: int = 0) -> np.ndarray:
        view = doc["bufferViews"][view_index]
        return np.frombuffer(data, kind, count, view.get("byteOffset", 0) + offset)

    if "bufferView" in acc:
        arr = read(acc["bufferView"], dtype, acc["count"] * width, acc.get("byteOffset", 0)).copy()
    else:
        arr = np.zeros(acc["count"] * width, dtype)
    if "sparse" in acc:
        sparse = acc["sparse"]
        index_type = {_UINT32: np.uint32, 5123: np.uint16, 5121: np.uint8}[sparse["indices"]["componentType"]]
        rows = read(sparse["indices"]["bufferView"], index_type, sparse["count"]).astype(np.int64)
        values = read(sparse["values"]["bufferView"], dtype, sparse["count"] * width).reshape(-1, width)
        arr = arr.reshape(-1, width)
        arr[rows] = values
    return arr.reshape(acc["count"], width) if width > 1 else arr.reshape(-1)
