"""Running facerecon's reconstruction for the add-on: model caching, progress, cancel, one-line errors.

Everything here runs in the worker thread (or synchronously in background mode) and never touches
``bpy``. The pipeline is ``facerecon_core.pipeline.Reconstructor`` (progress callbacks
``(stage, fraction)``); its model bundle and face model are loaded once per Blender session.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import paths, runtime

ProgressFn = Callable[[str, float], None]


class Cancelled(Exception):
    """The user cancelled (Esc); raised from the progress callback inside the pipeline."""


class ReconstructionFailed(RuntimeError):
    """A one-line, user-facing reason (no face, unreadable image, missing model, …)."""


@dataclass
class Result:
    faces: list  # list[FaceReconstruction]
    photo_size: tuple[int, int]  # width, height
    model_version: str
    exp_basis: Any  # (K, V, 3) mm, the face model's expression components
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, inference
    warnings: list[str] = field(default_factory=list)


_lock = threading.Lock()
_cache: dict[tuple, Any] = {}


def _model_version(reconstructor: Any, bundle_dir: Path) -> str:
    """facerecon's version plus the bundle's identity (manifest fields when present)."""
    import json

    import facerecon_core

    parts = [f"facerecon {facerecon_core.__version__}"]
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
        for key in ("version", "name", "created", "stage", "step", "checkpoint_sha256"):
            if key in manifest and not isinstance(manifest[key], (dict, list)):
                parts.append(f"{key}={manifest[key]}")
    except (OSError, ValueError):
        pass
    parts.append(f"bundle={bundle_dir.name}")
    return "; ".join(parts)


def load_reconstructor(bundle_dir: Path | None = None, facemodel: Path | None = None) -> tuple[Any, Any, str]:
    """(Reconstructor, FaceModel, model_version), cached per (bundle, face model) for the session."""
    runtime.ensure_facerecon()
    bundle_dir = Path(bundle_dir) if bundle_dir else paths.model_dir()
    facemodel = Path(facemodel) if facemodel else paths.facemodel_path()
    key = (str(bundle_dir.resolve()), str(facemodel.resolve()))
    with _lock:
        if key not in _cache:
            from facerecon_core.facemodel import FaceModel
            from facerecon_core.pipeline import Reconstructor

            fm = FaceModel.load(facemodel)
            reconstructor = Reconstructor(bundle_dir, facemodel=fm, runtime="onnx", device="cpu")
            _cache.clear()
            _cache[key] = (reconstructor, fm, _model_version(reconstructor, bundle_dir))
        return _cache[key]


def load_head_rig(facemodel: Any) -> Any:
    """The head rig for ``mesh="head"``, checked against ``facemodel``, cached for the session."""
    from facerecon_core.pipeline.reconstructor import head_rig_for

    path = paths.head_path()
    key = ("head", str(path.resolve()), facemodel.content_hash)
    with _lock:
        if key not in _cache:
            _cache[key] = head_rig_for(path, facemodel)
        return _cache[key]


@functools.lru_cache(maxsize=1)
def torch_available() -> bool:
    """Whether photometric refinement can run: PyTorch and the (not shipped) refinement module. Found
    without importing either (the panel asks on every redraw; the answer is kept for the session)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "facerecon_core.pipeline.refine"))
    except (ImportError, ValueError):
        return False


def photo_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run(photo: str | Path, *, refine: int = 0, all_faces: bool = False, texture_size: int = 1024,
        texture: str = "photo", mirror: bool = True, shifts: bool = True, progress: ProgressFn | None = None,
        cancel: threading.Event | None = None, bundle_dir: Path | None = None, facemodel: Path | None = None,
        more_photos: tuple = (), mesh: str = "face") -> Result:
    """Reconstruct the face(s) of ``photo``; raises :class:`ReconstructionFailed` or :class:`Cancelled`.

    ``mirror``, ``shifts``: average the geometry with the predictions for the mirrored crop and for shifted
    copies of it (the pipeline's defaults). ``texture``: ``photo`` (the photo's detail blended with the
    network's map) or ``network`` (the map alone). ``more_photos``: further photos of the same person: one head
    of all of them (one face in the result, a shape key per photo; photos without a face become warnings).
    ``mesh``: ``face`` or ``head`` (the whole head around the face: eyes, teeth, its ARKit keys)."""
    photo = Path(photo)
    more_photos = tuple(Path(p) for p in more_photos)
    cancel = cancel or threading.Event()

    def report(stage: str, fraction: float) -> None:
        if cancel.is_set():
            raise Cancelled()
        if progress is not None:
            progress(stage, max(0.0, min(1.0, float(fraction))))

    try:
        start = time.perf_counter()
        report("load model", 0.0)
        reconstructor, fm, version = load_reconstructor(bundle_dir, facemodel)
        head_rig = load_head_rig(fm) if mesh == "head" else None
        loaded = time.perf_counter()
        for path in (photo, *more_photos):
            if not path.is_file():
                raise ReconstructionFailed(f"{path}: no such file")
        warnings = []
        if refine > 0 and not torch_available():
            warnings.append(f"refinement skipped: it needs PyTorch, which the add-on does not ship "
                            f"({refine} steps asked)")
            refine = 0
        with _lock:  # one reconstruction at a time per Reconstructor
            reconstructor.texture_size = int(texture_size)
            reconstructor.texture = str(texture)
            reconstructor.mirror = bool(mirror)
            reconstructor.shifts = bool(shifts)
            reconstructor.head_rig = head_rig
            if more_photos:
                person = reconstructor.reconstruct_person([str(photo), *map(str, more_photos)], progress=report)
                faces = [person.reconstruction()]
                warnings += [f"{name} left out: {reason}" for name, reason in person.skipped]
            else:
                faces = reconstructor.reconstruct(str(photo), all_faces=bool(all_faces), refine=int(refine),
                                                  progress=report)
        if cancel.is_set():
            raise Cancelled()
        if not faces:
            raise ReconstructionFailed(f"{photo.name}: no face found")
        size = photo_size(photo)
        done = time.perf_counter()
        return Result(faces=list(faces), photo_size=size, model_version=version, exp_basis=fm.exp_basis,
                      timings={"load": loaded - start, "inference": done - loaded}, warnings=warnings)
    except (Cancelled, ReconstructionFailed):
        raise
    except Exception as exc:
        if type(exc).__name__ == "ReconstructionCancelled":
            raise Cancelled() from None
        raise ReconstructionFailed(_describe(photo, exc)) from exc


def _describe(photo: Path, exc: BaseException) -> str:
    """One line naming the photo and what went wrong."""
    kind = type(exc).__name__
    message = one_line(exc)
    if "NoFace" in kind or "no face" in message.lower():
        return f"{photo.name}: no face found"
    if "Photo" in kind or "Image" in kind or "Format" in kind:
        return message if photo.name in message else f"{photo.name}: {message}"
    if kind in ("MissingModelError", "BundleError", "FaceModelError", "ModelNotFoundError", "ModelMissingError",
                "HeadError"):
        return f"model missing: {message}"
    if kind == "RuntimeUnavailableError" or isinstance(exc, ImportError):
        return f"add-on incomplete: {message}"
    return f"{photo.name}: {kind}: {message}"
