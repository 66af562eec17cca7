"""Where the add-on finds its data: the model bundle, the face-model asset and the head rig.

Order: the add-on preferences (a model folder / face-model file chosen by the user), then the
add-on's own ``data/`` (filled by ``build_addon.py``), then facerecon_core's defaults
(``$FACERECON_MODEL`` / ``facerecon_core/data/model`` and ``$FACERECON_FACEMODEL`` / ``facerecon_core/data/facemodel.npz``,
for a development checkout).
"""

from __future__ import annotations

from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = ADDON_DIR / "data"
WHEELS_DIR = ADDON_DIR / "wheels"
BUNDLE_SUBDIR = "model"
FACEMODEL_FILE = "facemodel.npz"
HEAD_FILE = "head.npz"


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
    if pref:  # the user's choice is authoritative
        path = Path(pref).expanduser()
        if (path / "manifest.json").is_file():
            return path
        raise MissingModelError(f"no model bundle (manifest.json) in {path}, the folder set in the add-on preferences")
    return _first(DATA_DIR / BUNDLE_SUBDIR, "default_model_dir", lambda p: (p / "manifest.json").is_file(),
                  "model bundle not found", "set it in the add-on preferences or reinstall the add-on")


def facemodel_path() -> Path:
    """The face-model asset (``facemodel.npz``)."""
    _, pref = _preferences()
    if pref:
        path = Path(pref).expanduser()
        if path.is_file():
            return path
        raise MissingModelError(f"face-model asset {path} (set in the add-on preferences) not found")
    return _first(DATA_DIR / FACEMODEL_FILE, "default_facemodel_path", Path.is_file,
                  "face-model asset facemodel.npz not found", "build it with `facerecon assets build`")


def head_path() -> Path:
    """The head rig (``head.npz``, for "Whole head"): beside the add-on's face-model asset, else the built one."""
    _, pref = _preferences()
    if pref and (Path(pref).expanduser().parent / HEAD_FILE).is_file():
        return Path(pref).expanduser().parent / HEAD_FILE
    try:
        from facerecon_core.head.rig import default_head_path
    except ImportError:
        default_head_path = None
    candidates = [DATA_DIR / HEAD_FILE] + ([default_head_path()] if default_head_path else [])
    for path in candidates:
        if path.is_file():
            return path
    raise MissingModelError(f"head rig head.npz not found (looked in {', '.join(str(p) for p in candidates)}); "
                            f"build it with `facerecon assets head` or reinstall the add-on")


def _first(bundled: Path, core_default: str, exists, missing: str, fix: str) -> Path:
    """The add-on's own copy, else facerecon_core's default (a development checkout)."""
    candidates = [bundled]
    try:
        from facerecon_core import paths

        candidates.append(getattr(paths, core_default)())
    except ImportError:
        pass
    for path in candidates:
        if exists(path):
            return path
    raise MissingModelError(f"{missing} (looked in {', '.join(str(p) for p in candidates)}); {fix}")
