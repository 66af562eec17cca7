"""File > Import > Face from Photo."""

from __future__ import annotations

import bpy

from .operators import FACERECON_OT_reconstruct_from_photo


def menu_import(self, context) -> None:
    op = self.layout.operator(FACERECON_OT_reconstruct_from_photo.bl_idname, text="Face from Photo", icon="USER")
    op.browse = True


def register() -> None:
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
