"""dlib's 68-point shape predictor in a compact form (8-bit leaf values), and back to dlib's file format.

dlib's ``shape_predictor_68_face_landmarks.dat`` is 100 MB, almost all of it the regression trees' leaf
vectors written as dlib writes floats. Stored as 8 bits per value with one scale per leaf
(:class:`CompactPredictor`), it is 16 MB; :func:`write_predictor` writes a file dlib loads again. The landmarks
move by about 0.4 % of the face box's side on average, a tenth of dlib's own error (``tests/test_detect.py``
holds it under 1 %).

dlib's serialization (the format as dlib writes it): an integer is a control byte (its byte count, | 0x80 when
negative) and then its magnitude's bytes, little-endian; a float is two integers, mantissa and exponent
(value = mantissa × 2^exponent, the mantissa's low zero bytes shifted into the exponent); a column matrix is
−rows, −1, then its elements; a vector is its length, then its elements. A shape predictor is: version 1, the
initial shape (136 values), the forests (cascade levels, each a vector of trees; a tree is its splits
(idx1, idx2, threshold) then its leaves (136-value matrices)), the anchor indices (levels × feature pool) and
the deltas (levels × feature pool × (x, y)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
FLOAT_DIGITS = 24  # a float's mantissa bits: dlib writes float32 values with 24-bit mantissas


class PredictorFormatError(ValueError):
    """A file that is not a dlib shape predictor of the layout read here (one line)."""


@dataclass(frozen=True)
class CompactPredictor:
    """A shape predictor's arrays; ``leaf_q * leaf_scale[..., None]`` are its leaf vectors."""

    initial_shape: np.ndarray  # (2N,) float32
    split_idx: np.ndarray  # (levels, trees, splits, 2) uint16: the two feature-pool pixels compared
    split_thresh: np.ndarray  # (levels, trees, splits) float32
    leaf_q: np.ndarray  # (levels, trees, leaves, 2N) int8
    leaf_scale: np.ndarray  # (levels, trees, leaves) float32
    anchor_idx: np.ndarray  # (levels, pool) uint16: the landmark each pool pixel hangs on
    deltas: np.ndarray  # (levels, pool, 2) float32: its offset from that landmark

    def leaves(self) -> np.ndarray:
        return self.leaf_q.astype(np.float32) * self.leaf_scale[..., None]

    def save(self, path: Path) -> None:
        from facerecon_core.io import atomic_save_npz

        atomic_save_npz(path, {f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> CompactPredictor:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{f.name: data[f.name] for f in fields(cls)})


# ------------------------------------------------------------------------------------------ reading
def read_predictor(data: bytes) -> tuple[CompactPredictor, np.ndarray]:
    """Parse dlib's shape predictor file: ``(compact form, exact float32 leaves)``."""
    reader = _Reader(data)
    if reader.int() != FORMAT_VERSION:
        raise PredictorFormatError("not a version-1 dlib shape predictor")
    initial = reader.column()
    levels = reader.int()
    trees = splits = n_leaves = None
    split_idx, thresh, leaves = [], [], []
    for _ in range(levels):
        if trees is None:
            trees = reader.peek_int()
        if reader.int() != trees:
            raise PredictorFormatError("cascade levels with different tree counts")
        for _ in range(trees):
            if splits is None:
                splits = reader.peek_int()
            if reader.int() != splits:
                raise PredictorFormatError("trees of different depths")
            for _ in range(splits):
                split_idx.append((reader.int(), reader.int()))
                thresh.append(reader.float())
            if n_leaves is None:
                n_leaves = reader.peek_int()
            if reader.int() != n_leaves:
                raise PredictorFormatError("trees of different depths")
            leaves += [reader.column() for _ in range(n_leaves)]
    anchors = _read_levels(reader, levels, lambda: reader.int())
    deltas = _read_levels(reader, levels, lambda: (reader.float(), reader.float()))
    if reader.pos != len(data):
        raise PredictorFormatError(f"{len(data) - reader.pos} bytes after the predictor")
    exact = np.asarray(leaves, np.float32).reshape(levels, trees, n_leaves, -1)
    compact = CompactPredictor(
        initial_shape=np.asarray(initial, np.float32),
        split_idx=np.asarray(split_idx, np.uint16).reshape(levels, trees, splits, 2),
        split_thresh=np.asarray(thresh, np.float32).reshape(levels, trees, splits),
        **_quantize(exact),
        anchor_idx=np.asarray(anchors, np.uint16), deltas=np.asarray(deltas, np.float32))
    return compact, exact


def _read_levels(reader: _Reader, levels: int, item) -> list:
    if reader.int() != levels:
        raise PredictorFormatError("anchor or delta levels differ from the cascade's")
    return [[item() for _ in range(reader.int())] for _ in range(levels)]


def _quantize(leaves: np.ndarray) -> dict[str, np.ndarray]:
    scale = np.abs(leaves).max(axis=-1) / 127.0
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(leaves / safe[..., None]), -127, 127).astype(np.int8)
    return {"leaf_q": q, "leaf_scale": scale.astype(np.float32)}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise PredictorFormatError("the file ends inside the predictor")
        control = data[pos]
        size = control & 0x0F
        value = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
        self.pos = pos + 1 + size
        return -value if control & 0x80 else value

    def peek_int(self) -> int:
        pos = self.pos
        value = self.int()
        self.pos = pos
        return value

    def float(self) -> float:
        mantissa = self.int()
        return math.ldexp(mantissa, self.int())

    def column(self) -> list[float]:
        rows, cols = self.int(), self.int()
        if rows > 0 or cols != -1:
            raise PredictorFormatError(f"expected a column matrix, got {rows} × {cols}")
        return [self.float() for _ in range(-rows)]


# ------------------------------------------------------------------------------------------ writing
def write_predictor(predictor: CompactPredictor, path: Path, leaves: np.ndarray | None = None) -> None:
    """Write ``predictor`` in dlib's format (atomically), with ``leaves`` (default: its 8-bit leaves)."""
    from facerecon_core.io import atomic_path

    leaves = predictor.leaves() if leaves is None else np.asarray(leaves, np.float32)
    levels, trees, n_leaves, dims = leaves.shape
    splits = predictor.split_thresh.shape[2]
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(_encode(np.concatenate([[FORMAT_VERSION], _column(predictor.initial_shape), [levels]])))
        for level in range(levels):  # one level at a time: a few tens of MB of tokens
            tree = np.empty((trees, 2 + splits * 4 + n_leaves * (2 + 2 * dims)), np.int64)
            tree[:, 0] = splits
            split = tree[:, 1:1 + 4 * splits].reshape(trees, splits, 4)
            split[..., :2] = predictor.split_idx[level]
            split[..., 2:] = _float_tokens(predictor.split_thresh[level])
            tree[:, 1 + 4 * splits] = n_leaves
            leaf = tree[:, 2 + 4 * splits:].reshape(trees, n_leaves, 2 + 2 * dims)
            leaf[..., 0], leaf[..., 1] = -dims, -1
            leaf[..., 2:] = _float_tokens(leaves[level]).reshape(trees, n_leaves, 2 * dims)
            out.write(_encode(np.concatenate([[trees], tree.reshape(-1)])))
        pool = predictor.anchor_idx.shape[1]
        anchors = np.concatenate([np.full((levels, 1), pool), predictor.anchor_idx], axis=1)
        deltas = np.concatenate([np.full((levels, 1), pool),
                                 _float_tokens(predictor.deltas).reshape(levels, -1)], axis=1)
        out.write(_encode(np.concatenate([[levels], anchors.reshape(-1), [levels], deltas.reshape(-1)])))


def _column(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[-len(values), -1], _float_tokens(values).reshape(-1)])


def _float_tokens(values: np.ndarray) -> np.ndarray:
    """``(..., 2)`` int64 (mantissa, exponent) of float32 values, as dlib writes them."""
    values = np.asarray(values, np.float32)
    if not np.all(np.isfinite(values)):
        raise PredictorFormatError("a predictor value is not finite")
    fraction, exponent = np.frexp(values.astype(np.float64))
    mantissa = (fraction * (1 << FLOAT_DIGITS)).astype(np.int64)
    exponent = exponent.astype(np.int64) - FLOAT_DIGITS
    for _ in range(8):  # dlib shifts whole zero bytes off the mantissa
        zero = (mantissa & 0xFF) == 0
        if not zero.any():
            break
        mantissa = np.where(zero, mantissa >> 8, mantissa)
        exponent = np.where(zero, exponent + 8, exponent)
    return np.stack([mantissa, exponent], axis=-1)


def _encode(tokens: np.ndarray) -> bytes:
    """dlib's integer encoding of every token, concatenated."""
    tokens = np.asarray(tokens, np.int64)
    magnitude = np.abs(tokens).astype(np.uint64)
    size = np.ones(len(tokens), np.int64)
    for k in range(1, 8):
        size += magnitude >= np.uint64(1 << (8 * k))
    start = np.concatenate([[0], np.cumsum(1 + size)[:-1]])
    out = np.zeros(int((1 + size).sum()), np.uint8)
    out[start] = size | np.where(tokens < 0, 0x80, 0)
    for k in range(8):
        has = size > k
        out[start[has] + 1 + k] = ((magnitude[has] >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8)
    return out.tobytes()
