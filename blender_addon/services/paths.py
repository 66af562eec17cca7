"""Where the add-on finds its data: the model bundle and the face-model asset.

Order: the add-on preferences (a model folder / face-model file chosen by the user), then the
add-on's own ``data/`` (filled by ``build_addon.py``), then facerecon_core's defaults
(``facerecon_core/data/model`` and ``$FACERECON_FACEMODEL`` / ``facerecon_core/data/facemodel.npz``,
for a development checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = ADDON_DIR / "data"
WHEELS_DIR = ADDON_DIR / "wheels"
BUNDLE_SUBDIR = "model"
FACEMODEL_FILE = "facemodel.npz"
MODEL_ENV = "FACERECON_MODEL"


class MissingModelError(RuntimeError):
    """The model bundle or the face-model asset cannot be found (one-line message)."""


def _preferences() -> tuple[str, str]:
    try:
        import bpy

        package = __package__.rpartition(".")[0]
        prefs = bpy.context.preferences.addons[package].preferences
        return str(getattr(prefs, "model_dir", "") or ""), str(getattr(prefs, "facemodel_path", "") or "")
    except Exception:  # not registered (batch script, tests) or no preferences
        return "", ""


def model_dir() -> Path:
    """The model bundle folder (holds ``manifest.json``)."""
    pref, _ = _preferences()
    candidates = [Path(pref).expanduser()] if pref else []
    if os.environ.get(MODEL_ENV):
        candidates.append(Path(os.environ[MODEL_ENV]).expanduser())
    candidates.append(DATA_DIR / BUNDLE_SUBDIR)
    try:
        from facerecon_core import paths

        candidates.append(paths.PACKAGE_DIR / "data" / BUNDLE_SUBDIR)
    except ImportError:
        pass
    for path in candidates:
        if (path / "manifest.json").is_file():
            return path
    raise MissingModelError("model bundle not found (looked in " + ", ".join(str(p) for p in candidates)
                            + "); set it in the add-on preferences or reinstall the add-on")


def facemodel_path() -> Path:
    """The face-model asset (``facemodel.npz``)."""
    _, pref = _preferences()
    candidates = [Path(pref).expanduser()] if pref else []
    candidates.append(DATA_DIR / FACEMODEL_FILE)
    try:
        from facerecon_core import paths

        candidates.append(paths.default_facemodel_path())
    except ImportError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise MissingModelError("face-model asset facemodel.npz not found (looked in "
                            + ", ".join(str(p) for p in candidates) + "); build it with `facerecon assets build`")
