"""Sharded, streamable, resumable dataset storage.

A dataset folder holds ``index.json`` and shards ``shard-NNNNN.npz``. Each shard is a standard
``.npz`` (a zip of ``.npy`` members, readable with ``np.load``) holding ``shard_size`` samples
under keys ``"<local id>/<name>"``; images are stored as PNG bytes. Sample ``i`` is generated
from its own seed ``(seed, i)``, so the content does not depend on the number of workers or on
interruptions, and the files are byte-identical for the same seed. Shards are written atomically
and the index is updated after each one, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facerecon_core.io import atomic_write_bytes

INDEX = "index.json"
MASK_KEYS = frozenset({"face_mask", "uv_visibility"})  # bool arrays, stored as 0/255 PNG
PNG_KEYS = frozenset({"image", "image_pair", "uv_albedo", "uv_texture"}) | MASK_KEYS  # uint8 images, stored as PNG
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class DatasetError(ValueError):
    """A dataset folder that cannot be written to or read as asked (one line)."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset folder holds; a resumed run must ask for the same spec."""

    kind: str
    count: int
    seed: int
    res: int
    shard_size: int
    facemodel_hash: str
    generator: str  # generator name and version: samples change when it changes

    def shard_ranges(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.shard_size, self.count)) for s in range(0, self.count, self.shard_size)]


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.npz"


# ------------------------------------------------------------------------------------- writing
def encode_shard(samples: list[dict[str, np.ndarray]]) -> bytes:
    """Serialise samples to deterministic ``.npz`` bytes (fixed member order and timestamps)."""
    import cv2

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for local, sample in enumerate(samples):
            for name in sorted(sample):
                value = np.asarray(sample[name])
                if name in PNG_KEYS:
                    image = value.astype(np.uint8) * (255 if name in MASK_KEYS else 1)
                    ok, png = cv2.imencode(".png", image[..., ::-1] if image.ndim == 3 else image)
                    if not ok:
                        raise DatasetError(f"cannot PNG-encode {name!r} of shape {value.shape}")
                    value = np.frombuffer(png.tobytes(), np.uint8)
                member = io.BytesIO()
                np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
                zf.writestr(zipfile.ZipInfo(f"{local:05d}/{name}.npy", date_time=_ZIP_DATE), member.getvalue())
    return buf.getvalue()


def write_dataset(
    spec: DatasetSpec,
    out: Path,
    factory: Callable[[], Callable[[int], dict[str, np.ndarray]]],
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Generate every missing shard of ``spec`` into ``out`` and return the index.

    ``factory()`` returns the sample function ``make_sample(i)``. With ``workers > 1`` the factory
    (picklable) is called once in each spawned worker process, each limited to one thread.
    """
    out.mkdir(parents=True, exist_ok=True)
    index = _load_or_start_index(out, spec)
    done = {entry["file"] for entry in index["shards"] if (out / entry["file"]).is_file()}
    index["shards"] = [e for e in index["shards"] if e["file"] in done]
    todo = [(n, start, stop) for n, (start, stop) in enumerate(spec.shard_ranges()) if shard_name(n) not in done]
    bar = tqdm(total=spec.count, initial=spec.count - sum(b - a for _, a, b in todo), unit="sample",
               desc=f"synth {spec.kind}", disable=not progress)
    if workers > 1 and len(todo) > 1:
        with _spawn_pool(min(workers, len(todo)), factory) as pool:
            for n, start, stop, data in pool.imap_unordered(_worker_shard, todo):
                _commit_shard(out, index, n, start, stop, data, bar)
    elif todo:
        make_sample = factory()
        for n, start, stop in todo:
            data = encode_shard([make_sample(i) for i in range(start, stop)])
            _commit_shard(out, index, n, start, stop, data, bar)
    bar.close()
    return index


def _commit_shard(out: Path, index: dict, number: int, start: int, stop: int, data: bytes, bar) -> None:
    atomic_write_bytes(out / shard_name(number), data)
    index["shards"].append({"file": shard_name(number), "start": start, "count": stop - start,
                            "sha256": hashlib.sha256(data).hexdigest()})
    index["shards"].sort(key=lambda e: e["start"])
    _save_index(out, index)
    bar.update(stop - start)


def _load_or_start_index(out: Path, spec: DatasetSpec) -> dict:
    path = out / INDEX
    if not path.is_file():
        index = {"spec": asdict(spec), "shards": []}
        _save_index(out, index)
        return index
    index = _read_index(out)
    if index["spec"] != asdict(spec):
        differs = ", ".join(f"{k}={index['spec'].get(k)!r}" for k, v in asdict(spec).items() if index["spec"].get(k) != v)
        raise DatasetError(f"{out} already holds a different dataset ({differs}); choose another --out or delete it")
    return index


def _save_index(out: Path, index: dict) -> None:
    atomic_write_bytes(out / INDEX, (json.dumps(index, indent=1) + "\n").encode())


def _read_index(folder: Path) -> dict:
    path = folder / INDEX
    if not path.is_file():
        raise DatasetError(f"{folder}: no {INDEX}; not a facerecon dataset folder")
    try:
        index = json.loads(path.read_text())
        index["spec"], index["shards"]  # noqa: B018 - both keys must exist
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: unreadable dataset index ({exc})") from None
    return index


_WORKER_MAKE: Callable[[int], dict[str, np.ndarray]] | None = None
ONE_THREAD = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")  # the workers share the cores


def _spawn_pool(workers: int, factory):
    """A pool of spawned workers, each limited to one thread. The limits are in their environment from the
    start: numba reads ``NUMBA_NUM_THREADS`` when it is imported (while the factory is unpickled) and again at
    every compilation, and refuses a value that differs from its running threads'."""
    saved = {var: os.environ.get(var) for var in ONE_THREAD}
    os.environ.update({var: "1" for var in ONE_THREAD})
    try:
        return mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(factory,))
    finally:  # the workers have started with the limits; this process keeps its own
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _init_worker(factory) -> None:
    global _WORKER_MAKE
    os.environ.update({var: "1" for var in ONE_THREAD})  # also in workers the pool starts later
    _WORKER_MAKE = factory()


def _worker_shard(job: tuple[int, int, int]) -> tuple[int, int, int, bytes]:
    n, start, stop = job
    return n, start, stop, encode_shard([_WORKER_MAKE(i) for i in range(start, stop)])


# ------------------------------------------------------------------------------------- reading
class ShardedDataset:
    """Random access to a dataset folder's samples (numpy; images decoded from PNG)."""

    def __init__(self, folder: str | Path, cache_shards: int = 4):
        self.folder = Path(folder)
        index = _read_index(self.folder)
        self.spec = DatasetSpec(**index["spec"])
        self.shards = index["shards"]
        if not self.shards:
            raise DatasetError(f"{self.folder}: the dataset has no finished shards yet")
        self._starts = np.array([e["start"] for e in self.shards])
        self._ids = np.concatenate([np.arange(e["start"], e["start"] + e["count"]) for e in self.shards])
        self._open: OrderedDict[str, np.lib.npyio.NpzFile] = OrderedDict()
        self._pid = os.getpid()  # the process that opened the handles in _open
        self._cache = cache_shards

    @property
    def complete(self) -> bool:
        return len(self) == self.spec.count

    def __len__(self) -> int:
        return len(self._ids)

    def sample_id(self, i: int) -> int:
        """The generator's sample number of the ``i``-th stored sample."""
        return int(self._ids[i])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        sample_id = self.sample_id(i % len(self))
        entry = self.shards[int(np.searchsorted(self._starts, sample_id, side="right")) - 1]
        npz = self._shard(entry["file"])
        prefix = f"{sample_id - entry['start']:05d}/"
        return {key[len(prefix):]: _decode(key[len(prefix):], npz[key]) for key in npz.files if key.startswith(prefix)}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def _shard(self, name: str) -> np.lib.npyio.NpzFile:
        """The open shard ``name``, through this process's own handle: a handle inherited by a forked
        DataLoader worker shares its file offset with the parent's, so their zip reads would interleave."""
        if self._pid != os.getpid():
            self._open, self._pid = OrderedDict(), os.getpid()  # the parent's handles stay the parent's
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        npz = np.load(self.folder / name, allow_pickle=False)
        self._open[name] = npz
        if len(self._open) > self._cache:
            self._open.popitem(last=False)[1].close()
        return npz

    def __getstate__(self):  # picklable for DataLoader workers: reopen shards lazily
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state


def _decode(name: str, value: np.ndarray) -> np.ndarray:
    if name not in PNG_KEYS:
        return value
    import cv2

    image = cv2.imdecode(value, cv2.IMREAD_UNCHANGED)
    if name in MASK_KEYS:
        return image > 127
    return image[..., ::-1].copy() if image.ndim == 3 else image


def verify_dataset(folder: Path) -> None:
    """Check every shard's checksum against the index (raises DatasetError)."""
    index = _read_index(folder)
    for entry in index["shards"]:
        digest = hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise DatasetError(f"{folder / entry['file']}: checksum mismatch; delete it and rerun to regenerate")

