"""The reconstruction options, defined once for the operator and the sidebar's settings (same names,
labels and tooltips), and drawn the same way in both."""

from __future__ import annotations

from bpy.props import BoolProperty, EnumProperty, IntProperty

from ..services.reconstruct import torch_available

TEXTURE_SIZES = [(str(s), f"{s} px", f"{s} × {s} albedo texture") for s in (256, 512, 1024, 2048)]
TEXTURE_MODES = [("photo", "Photo detail", "The photo's own pixels, de-lit, wherever the photo shows the face, "
                   "blended with the network's texture elsewhere"),
                 ("network", "Network", "The texture stream's map alone (smooth, 3DMM-like)")]
MESHES = [("face", "Face", "The face model's mesh: the face alone (76,000 triangles)"),
          ("head", "Whole head", "The whole head around the face (ICT Face Model, quads): skull, neck, ears, eyes, "
                                 "teeth, gums, eyelashes (no hair), with its own 51 ARKit shape keys")]
OPTION_NAMES = ("mesh", "refine_steps", "texture_mode", "texture_size", "shape_keys", "bfm_keys", "all_faces",
                "one_person", "mirror", "shifts", "add_camera", "match_render_size")  # drawing order
NO_REFINEMENT = "Refinement needs PyTorch, which this Blender lacks"


def option_properties() -> dict:
    """Fresh ``bpy.props`` definitions of every option (a class annotation each)."""
    return {
        "mesh": EnumProperty(
            name="Mesh", items=MESHES, default="face",
            description="The face alone, or the whole head around it with eyes and teeth (its eyes, teeth and "
                        "gums are parts of the head object, with a material and a vertex group each)"),
        "refine_steps": IntProperty(
            name="Refine steps", min=0, max=500, default=0,
            description="Photometric refinement steps after the network: the shape and texture are optimised "
                        "to match the photo (slower; needs PyTorch in Blender's Python)"),
        "texture_mode": EnumProperty(
            name="Texture", items=TEXTURE_MODES, default="photo",
            description="Where the face's colours come from: the photo's own detail (de-lit, with the network's "
                        "texture where the photo does not show the face), or the network's texture alone"),
        "texture_size": EnumProperty(
            name="Texture size", items=TEXTURE_SIZES, default="1024",
            description="Width and height in pixels of the face's albedo texture"),
        "shape_keys": BoolProperty(
            name="Shape keys", default=True,
            description="Basis (the neutral identity), the 51 ARKit keys (jawOpen, mouthSmileLeft, …) at the "
                        "values that reproduce the photo's expression, and \"Expression residual\" at 1 (what the "
                        "keys do not explain); every key at 0 gives the neutral face"),
        "bfm_keys": BoolProperty(
            name="Face-model components", default=False,
            description="Also the face model's expression components exp_00 … exp_09 as shape keys, at 0 "
                        "(principal components without meaning of their own)"),
        "all_faces": BoolProperty(
            name="All faces", default=False,
            description="Reconstruct every face found in the photo, side by side, not only the largest"),
        "one_person": BoolProperty(
            name="One person", default=False,
            description="The selected photos show one person: one head of all of them (one identity, a texture "
                        "combining what each photo shows) with each photo's expression as a shape key named after "
                        "the photo"),
        "mirror": BoolProperty(
            name="Mirror averaging", default=True,
            description="Average the shape and pose with those found in the mirrored photo (steadier)"),
        "shifts": BoolProperty(
            name="Shift averaging", default=True,
            description="Average the shape and pose with those found in four slightly shifted crops "
                        "(steadier landmarks)"),
        "add_camera": BoolProperty(
            name="Photo camera", default=True,
            description="A camera matching the photo's pose, with the photo as its background; it becomes "
                        "the scene camera only when the scene has none"),
        "match_render_size": BoolProperty(
            name="Match render size to photo", default=False,
            description="Set the scene's render resolution to the photo's size (at 100 %), so that rendering "
                        "through the photo camera frames the photo exactly. Off: the scene's settings are "
                        "left as they are"),
    }


def draw_options(layout, data) -> None:
    """The options of ``data`` (operator or settings) in order; refinement only where it can run."""
    for name in OPTION_NAMES:
        if name == "refine_steps" and not torch_available():
            layout.label(text=NO_REFINEMENT, icon="INFO")
            continue
        row = layout.row()
        if name == "match_render_size":
            row.active = bool(data.add_camera)
        elif name == "bfm_keys":
            row.active = bool(data.shape_keys) and data.mesh == "face"
        row.prop(data, name)
