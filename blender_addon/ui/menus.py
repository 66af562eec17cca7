"""File > Import > Face from Photo, Face from Video."""

from __future__ import annotations

import bpy

from .operators import FACERECON_OT_reconstruct_from_photo
from .video_operators import FACERECON_OT_import_video


def menu_import(self, context) -> None:
    op = self.layout.operator(FACERECON_OT_reconstruct_from_photo.bl_idname, text="Face from Photo", icon="USER")
    op.browse = True
    op = self.layout.operator(FACERECON_OT_import_video.bl_idname, text="Face from Video", icon="FILE_MOVIE")
    op.browse = True


def register() -> None:
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
