"""Where facerecon finds the data it reads but never ships: ``../shared`` and the built assets."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

SHARED_ENV = "FACERECON_SHARED"
FACEMODEL_ENV = "FACERECON_FACEMODEL"


def shared_dir() -> Path:
    """The third-party data folder: ``$FACERECON_SHARED``, else ``../shared`` beside the repository."""
    env = os.environ.get(SHARED_ENV)
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared").resolve()


def bfm_source_dir() -> Path:
    """Default source of the face model: ``<shared>/bfm``."""
    return shared_dir() / "bfm"


def default_facemodel_path() -> Path:
    """The built face-model asset: ``$FACERECON_FACEMODEL``, else ``facerecon_core/data/facemodel.npz``.

    The asset is BFM-derived (non-commercial research only), so it is built on each machine by
    ``facerecon assets build`` and never committed.
    """
    env = os.environ.get(FACEMODEL_ENV)
    return Path(env).expanduser().resolve() if env else PACKAGE_DIR / "data" / "facemodel.npz"


MODEL_ENV = "FACERECON_MODEL"


def default_model_dir() -> Path:
    """The inference model bundle ``facerecon reconstruct`` uses without ``--model``:
    ``$FACERECON_MODEL``, else ``facerecon_core/data/model/`` (where the shipped bundle goes)."""
    env = os.environ.get(MODEL_ENV)
    return Path(env).expanduser().resolve() if env else PACKAGE_DIR / "data" / "model"
