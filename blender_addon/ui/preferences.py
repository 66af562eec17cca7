"""Add-on preferences: where the model bundle and the face-model asset are (defaults: the add-on's data/)."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

ADDON_PACKAGE = __package__.rpartition(".")[0]


class FACERECON_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    model_dir: StringProperty(name="Model bundle", subtype="DIR_PATH", default="",
                              description="Folder of an exported model bundle (manifest.json); empty: the bundled one")
    facemodel_path: StringProperty(name="Face model", subtype="FILE_PATH", default="",
                                   description="Face-model asset facemodel.npz; empty: the bundled one")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "model_dir")
        layout.prop(self, "facemodel_path")
        layout.label(text="The face model is derived from the Basel Face Model 2009: non-commercial research only.",
                     icon="INFO")


def register() -> None:
    bpy.utils.register_class(FACERECON_AP_preferences)


def unregister() -> None:
    bpy.utils.unregister_class(FACERECON_AP_preferences)
