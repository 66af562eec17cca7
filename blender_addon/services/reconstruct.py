"""Running facerecon's reconstruction for the add-on: model caching, progress, cancel, one-line errors.

Everything here runs in the worker thread (or synchronously in background mode) and never touches
``bpy``. The pipeline is ``facerecon_core.pipeline.Reconstructor`` (progress callbacks
``(stage, fraction)``); its model bundle and face model are loaded once per Blender session.
"""

from __future__ import annotations

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


_lock = threading.Lock()
_cache: dict[tuple, Any] = {}


def _model_version(reconstructor: Any, bundle_dir: Path) -> str:
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
    """(reconstructor, FaceModel, model_version), cached per (bundle, face model)."""
    runtime.ensure_facerecon()
    bundle_dir = Path(bundle_dir) if bundle_dir else paths.model_dir()
    facemodel = Path(facemodel) if facemodel else paths.facemodel_path()
    key = (str(bundle_dir.resolve()), str(facemodel.resolve()))
    with _lock:
        if key not in _cache:
            from facerecon_core.facemodel import FaceModel
            from facerecon_core.pipeline import Reconstructor

            fm = FaceModel.load(facemodel)
            reconstructor = _make_reconstructor(Reconstructor, bundle_dir, fm)
            _cache.clear()
            _cache[key] = (reconstructor, fm, _model_version(reconstructor, bundle_dir))
        return _cache[key]


def _make_reconstructor(cls: Any, bundle_dir: Path, fm: Any) -> Any:
    import inspect

    params = inspect.signature(cls).parameters
    kwargs = {}
    for name in ("facemodel", "face_model"):
        if name in params:
            kwargs[name] = fm
            break
    first = next(iter(params), None)
    if first in ("model", "bundle", "model_dir", "bundle_dir"):
        return cls(bundle_dir, **kwargs)
    return cls(model=bundle_dir, **kwargs)


def photo_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run(photo: str | Path, *, refine: int = 0, all_faces: bool = False, progress: ProgressFn | None = None,
        cancel: threading.Event | None = None, bundle_dir: Path | None = None, facemodel: Path | None = None) -> Result:
    """Reconstruct the face(s) of ``photo``; raises :class:`ReconstructionFailed` or :class:`Cancelled`."""
    photo = Path(photo)
    cancel = cancel or threading.Event()

    def report(stage: str, fraction: float) -> None:
        if cancel.is_set():
            raise Cancelled()
        if progress is not None:
            progress(stage, max(0.0, min(1.0, float(fraction))))

    try:
        start = time.perf_counter()
        report("loading model", 0.0)
        reconstructor, fm, version = load_reconstructor(bundle_dir, facemodel)
        loaded = time.perf_counter()
        report("reading photo", 0.02)
        if not photo.is_file():
            raise ReconstructionFailed(f"{photo}: no such file")
        faces = _call(reconstructor, photo, refine=refine, all_faces=all_faces, progress=report)
        if cancel.is_set():
            raise Cancelled()
        if not faces:
            raise ReconstructionFailed(f"{photo.name}: no face found")
        size = photo_size(photo)
        done = time.perf_counter()
        return Result(faces=list(faces), photo_size=size, model_version=version, exp_basis=fm.exp_basis,
                      timings={"load": loaded - start, "inference": done - loaded})
    except (Cancelled, ReconstructionFailed):
        raise
    except MemoryError:
        raise ReconstructionFailed(f"{photo.name}: out of memory") from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for self.report
        raise ReconstructionFailed(_describe(photo, exc)) from exc


def _call(reconstructor: Any, photo: Path, *, refine: int, all_faces: bool, progress: ProgressFn) -> list:
    import inspect

    method = getattr(reconstructor, "reconstruct", None) or reconstructor
    params = inspect.signature(method).parameters
    kwargs: dict[str, Any] = {}
    if "refine" in params:
        kwargs["refine"] = int(refine)
    if "all_faces" in params:
        kwargs["all_faces"] = bool(all_faces)
    for name in ("progress", "on_progress", "callback"):
        if name in params:
            kwargs[name] = progress
            break
    faces = method(str(photo), **kwargs)
    if not isinstance(faces, (list, tuple)):
        faces = [faces]
    return list(faces)


def _describe(photo: Path, exc: BaseException) -> str:
    """One line naming the photo and what went wrong."""
    kind = type(exc).__name__
    message = one_line(exc)
    if "NoFace" in kind or "no face" in message.lower():
        return f"{photo.name}: no face found"
    if "Photo" in kind or "Image" in kind or kind in ("UnidentifiedImageError",):
        return message if photo.name in message else f"{photo.name}: {message}"
    if kind in ("MissingModelError", "BundleError", "FaceModelError", "ModelNotFoundError",
                "RuntimeUnavailableError") or isinstance(exc, ImportError):
        return f"model missing: {message}"
    return f"{photo.name}: {kind}: {message}"
