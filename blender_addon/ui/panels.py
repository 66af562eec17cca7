"""3D Viewport > Sidebar > Face: photo and options, progress, the active face's shape keys and pose."""

from __future__ import annotations

import math

import bpy
from bpy.props import PointerProperty, StringProperty

from ..services import job as job_service
from .operators import PHOTO_GLOB, FACERECON_OT_cancel, FACERECON_OT_reconstruct_from_photo
from ..services.scene import RESIDUAL_KEY
from .options import OPTION_NAMES, draw_options, option_properties
from .video_operators import FACERECON_OT_apply_arkit_csv, FACERECON_OT_import_video

STRONGEST = 8  # ARKit keys listed in the sidebar


class FACERECON_PG_settings(bpy.types.PropertyGroup):
    __annotations__ = {
        "photo": StringProperty(name="Photo", subtype="FILE_PATH", default="",
                                description=f"The photo to reconstruct a face from ({PHOTO_GLOB}); empty: "
                                            "Reconstruct opens a file browser"),
        **option_properties(),
    }


class FACERECON_PT_main(bpy.types.Panel):
    bl_label = "Face from Photo"
    bl_idname = "FACERECON_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Face"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.facerecon
        layout.prop(settings, "photo", text="")
        draw_options(layout.column(align=True), settings)
        job = job_service.CURRENT
        state = job.snapshot() if job is not None else None
        if state is not None and state.status == job_service.RUNNING:
            row = layout.row(align=True)
            row.progress(factor=state.fraction, type="BAR", text=state.stage)
            row.operator(FACERECON_OT_cancel.bl_idname, text="", icon="CANCEL")
            return
        op = layout.operator(FACERECON_OT_reconstruct_from_photo.bl_idname, text="Reconstruct", icon="USER")
        op.filepath = settings.photo
        op.browse = not settings.photo or settings.one_person  # one person: pick the photos
        for name in OPTION_NAMES:
            setattr(op, name, getattr(settings, name))
        row = layout.row(align=True)
        video = row.operator(FACERECON_OT_import_video.bl_idname, text="Face from Video", icon="FILE_MOVIE")
        video.mesh = settings.mesh
        row.operator(FACERECON_OT_apply_arkit_csv.bl_idname, text="Apply ARKit CSV", icon="IMPORT")


class FACERECON_PT_face(bpy.types.Panel):
    bl_label = "Active Face"
    bl_parent_id = "FACERECON_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Face"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and "facerecon_source" in obj

    def draw(self, context):
        obj = context.active_object
        layout = self.layout
        keys = obj.data.shape_keys if obj.type == "MESH" else None
        if keys is not None:
            col = layout.column(align=True)
            blocks = list(keys.key_blocks[1:])
            shown = strongest_keys(blocks)
            for block in shown:
                col.prop(block, "value", text=block.name, slider=True)
            if len(shown) < len(blocks):
                col.label(text=f"{len(blocks) - len(shown)} more in Object Data > Shape Keys")
        box = layout.box()
        angles = obj.get("facerecon_pose_angles_rad", (0, 0, 0))
        box.label(text="Pose: pitch {:.0f}° yaw {:.0f}° roll {:.0f}°".format(*(math.degrees(a) for a in angles)))
        box.label(text=f"Confidence: {obj.get('facerecon_confidence', 0.0):.2f}")
        box.label(text=f"Photo: {bpy.path.basename(obj.get('facerecon_source', ''))}")


def strongest_keys(blocks: list, count: int = STRONGEST) -> list:
    """The ``count`` ARKit keys of highest value (above 0.01), then the residual; every key when there is no
    residual (a face without the rig)."""
    if not any(b.name == RESIDUAL_KEY for b in blocks):
        return blocks
    arkit = sorted((b for b in blocks if b.name != RESIDUAL_KEY and not b.name.startswith("exp_")),
                   key=lambda b: -b.value)
    return [b for b in arkit[:count] if b.value > 0.01] + [b for b in blocks if b.name == RESIDUAL_KEY]


classes = (FACERECON_PG_settings, FACERECON_PT_main, FACERECON_PT_face)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.facerecon = PointerProperty(type=FACERECON_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.facerecon
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
