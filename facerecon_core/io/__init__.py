"""File output helpers shared by every writer in facerecon."""

from facerecon_core.io.atomic import atomic_path, atomic_save_npz, atomic_write_bytes
from facerecon_core.io.images import save_image

__all__ = ["atomic_path", "atomic_save_npz", "atomic_write_bytes", "save_image"]
