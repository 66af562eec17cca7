"""Making ``facerecon_core`` and its wheels importable, without pip or network.

As an extension, Blender installs the wheels listed in ``blender_manifest.toml`` itself. As a
legacy add-on (``bl_info``), nothing installs them, so on first use the bundled ``wheels/*.whl``
are unpacked (they are zip files) into ``<add-on>/_site`` and that folder is put on ``sys.path``.
"""

from __future__ import annotations

import importlib
import sys
import zipfile

from . import paths

SITE_DIR = paths.ADDON_DIR / "_site"


class RuntimeUnavailableError(RuntimeError):
    """facerecon_core or a wheel it needs cannot be imported (one-line message)."""


def _unpack_wheels() -> bool:
    wheels = sorted(paths.WHEELS_DIR.glob("*.whl"))
    if not wheels:
        return False
    marker = SITE_DIR / ".unpacked"
    names = "\n".join(w.name for w in wheels)
    if not (marker.is_file() and marker.read_text() == names):
        SITE_DIR.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(SITE_DIR)
        marker.write_text(names)
    if str(SITE_DIR) not in sys.path:
        sys.path.insert(0, str(SITE_DIR))
    importlib.invalidate_caches()
    return True


def ensure_facerecon():
    """Import and return ``facerecon_core`` (unpacking the bundled wheels for a legacy install)."""
    try:
        return importlib.import_module("facerecon_core")
    except ImportError:
        pass
    try:
        unpacked = _unpack_wheels()
    except (OSError, zipfile.BadZipFile) as exc:
        raise RuntimeUnavailableError(f"cannot unpack the add-on's wheels: {exc}") from None
    try:
        return importlib.import_module("facerecon_core")
    except ImportError as exc:
        hint = "reinstall the add-on" if unpacked else "install the add-on zip built by build_addon.py"
        raise RuntimeUnavailableError(f"facerecon_core is not available ({exc}); {hint}") from None
