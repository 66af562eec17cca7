"""Building the Blender scene of a reconstruction: ``bpy`` glue only.

All numbers (vertex positions in metres facing −Y, shape keys, loop UVs, texture pixels, the
camera) come from :mod:`facerecon_core.export.blender`; this module only writes them into
``bpy.data`` with ``foreach_set`` (no Python loops over vertices).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np

UV_NAME = "UVMap"
MATERIAL_NAME = "Face Albedo"


def _new_mesh(name: str, data: Any) -> bpy.types.Mesh:
    """A triangle mesh of a face's data."""
    sizes = np.full(len(data.triangles), 3, np.int32)
    return _polygon_mesh(name, data.basis, sizes, data.triangles.reshape(-1), data.loop_uvs)


def _polygon_mesh(name: str, basis: np.ndarray, sizes: np.ndarray, corners: np.ndarray,
                  loop_uvs: np.ndarray) -> bpy.types.Mesh:
    """A mesh of polygons with ``sizes`` corners each (the loops' vertices ``corners``), smooth-shaded, UVs."""
    mesh = bpy.data.meshes.new(name)
    n_faces = len(sizes)
    mesh.vertices.add(len(basis))
    mesh.vertices.foreach_set("co", basis.reshape(-1))
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.add(n_faces)
    mesh.polygons.foreach_set("loop_start", np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32))
    if bpy.app.version < (4, 0, 0):  # loop_total is derived from loop_start since 4.0
        mesh.polygons.foreach_set("loop_total", sizes.astype(np.int32))
    uv = mesh.uv_layers.new(name=UV_NAME)
    uv.data.foreach_set("uv", loop_uvs.reshape(-1))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    else:
        mesh.polygons.foreach_set("use_smooth", np.ones(n_faces, bool))
    return mesh


def _packed_image(name: str, size: int, pixels: Any, non_color: bool = False,
                  height: int | None = None) -> bpy.types.Image:
    image = bpy.data.images.new(name, size, height or size, alpha=False)
    image.pixels.foreach_set(pixels)
    image.file_format = "PNG"
    image.pack()  # packed into the .blend as PNG
    if non_color:  # after packing: set before, it regenerates the image and drops the pixels
        image.colorspace_settings.name = "Non-Color"
    return image


def _material(name: str, image: bpy.types.Image | None, confidence: bpy.types.Image | None = None,
              colour: tuple[float, float, float] | None = None, roughness: float = 0.6,
              label: str = MATERIAL_NAME) -> bpy.types.Material:
    """A Principled material with ``image`` as its base colour (or the flat sRGB ``colour``)."""
    material = bpy.data.materials.new(label)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    elif material.node_tree is None:  # pragma: no cover - 5.0 always has a tree
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        output = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or nodes.new("ShaderNodeOutputMaterial")
        links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    bsdf.inputs["Roughness"].default_value = roughness
    for specular in ("Specular IOR Level", "Specular"):
        if specular in bsdf.inputs:
            bsdf.inputs[specular].default_value = 0.3
            break
    if image is None:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (colour or (0.8, 0.8, 0.8))]
        bsdf.inputs["Base Color"].default_value = (*linear, 1.0)
        material.diffuse_color = (*(colour or (0.8, 0.8, 0.8)), 1.0)
        return material
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.location = (bsdf.location.x - 320, bsdf.location.y)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    if confidence is not None:  # unconnected: where the texture is the photo's (white) or the network's (black)
        node = nodes.new("ShaderNodeTexImage")
        node.image, node.label = confidence, "Photo confidence"
        node.location = (tex.location.x, tex.location.y - 300)
    material.diffuse_color = (0.8, 0.65, 0.55, 1.0)  # solid-mode colour
    return material


RESIDUAL_KEY = "Expression residual"


def _shape_keys(obj: bpy.types.Object, data: Any) -> None:
    """Basis; the ARKit keys at their solved values and the residual at 1 (or, without the rig, "Expression" at 1):
    the face looks as the photo does, and every key at 0 gives the neutral face; for one person from several
    photos, a key per photo (its expression) at 0; then the face model's exp_NN components at 0 when asked for."""
    obj.shape_key_add(name="Basis", from_mix=False)
    if data.arkit_keys is not None:
        for name, coords in data.arkit_keys.items():
            key = obj.shape_key_add(name=name, from_mix=False)
            key.data.foreach_set("co", coords.reshape(-1))
            key.slider_min, key.slider_max = 0.0, 1.0
            key.value = float(data.arkit_weights[name])
        key = obj.shape_key_add(name=RESIDUAL_KEY, from_mix=False)
        key.data.foreach_set("co", data.residual.reshape(-1))
    else:
        key = obj.shape_key_add(name="Expression", from_mix=False)
        key.data.foreach_set("co", data.expression.reshape(-1))
    key.value = 1.0
    for name, coords in (data.photo_keys or {}).items():  # one person from several photos: each one's expression
        key = obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", coords.reshape(-1))
        key.value = 0.0
    for name, coords in data.exp_keys.items():
        key = obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", coords.reshape(-1))
        key.slider_min, key.slider_max = -3.0, 3.0
        key.value = 0.0
    obj.data.shape_keys.use_relative = True
    obj.active_shape_key_index = 1


HEAD_MATERIALS = {"skin": "Head Skin", "eyes": "Head Eyes", "gums": "Head Gums", "teeth": "Head Teeth",
                  "eyelashes": "Head Eyelashes"}
HEAD_ROUGHNESS = {"eyes": 0.15, "teeth": 0.3, "gums": 0.4}


def _head_object(name: str, data: Any, collection, shape_keys: bool) -> bpy.types.Object:
    """The head (``mesh="head"``): one object, ICT's polygons, a material slot and a vertex group per part (the
    eyes, teeth and gums are parts of it, so they follow its shape keys: eyeLook* turn the eyeballs, jawOpen
    carries the lower teeth), the ARKit keys at the photo's values, the residual at 1, the photos' keys at 0."""
    mesh = _polygon_mesh(name, data.basis, data.poly_sizes, data.poly_vertices, data.loop_uvs)
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    for material in data.materials:
        image = None
        if material in data.textures:
            pixels, width, height = data.textures[material]
            image = _packed_image(f"{name}_{material}", width, pixels, height=height)
        made = _material(name, image, colour=data.colours.get(material), roughness=HEAD_ROUGHNESS.get(material, 0.6),
                         label=HEAD_MATERIALS.get(material, material))
        if material in data.opacity:  # dithered transparency (EEVEE's default render method) needs only alpha
            next(n for n in made.node_tree.nodes if n.type == "BSDF_PRINCIPLED").inputs["Alpha"].default_value = \
                data.opacity[material]
        mesh.materials.append(made)
    mesh.polygons.foreach_set("material_index", data.poly_material)
    for part, ids in data.vertex_groups.items():
        obj.vertex_groups.new(name=part).add(ids.tolist(), 1.0, "REPLACE")
    if shape_keys:
        obj.shape_key_add(name="Basis", from_mix=False)
        for key_name, coords in data.keys.items():
            key = obj.shape_key_add(name=key_name, from_mix=False)
            key.data.foreach_set("co", coords.reshape(-1))
            key.slider_min, key.slider_max = 0.0, 1.0
            key.value = data.weights[key_name]
        mesh.shape_keys.use_relative = True
        obj.active_shape_key_index = 1
    obj["facerecon_licence"] = data.notice
    return obj


def _camera(name: str, spec: Any, photo: Path | None, parent: bpy.types.Object, collection) -> bpy.types.Object:
    from mathutils import Matrix

    cam = bpy.data.cameras.new(f"{name}_camera")
    cam.sensor_fit = "AUTO"
    cam.sensor_width = spec.sensor_width_mm
    cam.lens = spec.lens_mm
    cam.shift_x, cam.shift_y = spec.shift_x, spec.shift_y
    cam.clip_start, cam.clip_end = spec.clip_start_m, spec.clip_end_m
    if photo is not None and photo.is_file():
        image = bpy.data.images.load(str(photo), check_existing=True)
        try:
            image.pack()
        except RuntimeError:
            pass
        background = cam.background_images.new()
        background.image = image
        background.alpha = 1.0
        background.frame_method = "STRETCH"
        cam.show_background_images = True
    obj = bpy.data.objects.new(f"{name}_camera", cam)
    collection.objects.link(obj)
    obj.parent = parent
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = Matrix([list(row) for row in spec.matrix_world])
    return obj


def build_face(rec: Any, *, name: str, exp_basis: Any = None, texture_size: int | None = None,
               shape_keys: bool = True, bfm_keys: bool = False, camera: bool = False,
               photo_size: tuple[int, int] | None = None,
               model_version: str = "", scene: bpy.types.Scene | None = None, offset_x: float = 0.0,
               match_render_size: bool = False) -> tuple[bpy.types.Object, dict[str, float]]:
    """Create the face object (and optionally its photo camera) in ``scene``; returns (object, timings s).

    The scene's settings stay as they are: the photo camera becomes the scene camera only when the scene has
    none, and the render resolution is set to the photo's only with ``match_render_size``."""
    from facerecon_core.export import blender as fb

    t0 = time.perf_counter()
    scene = scene or bpy.context.scene
    collection = scene.collection
    try:
        collection = bpy.context.view_layer.active_layer_collection.collection if scene == bpy.context.scene else collection
    except AttributeError:
        pass
    if rec.head is not None:
        data = fb.head_mesh_data(rec)
        t1 = time.perf_counter()
        obj = _head_object(name, data, collection, shape_keys)
    else:
        data = fb.face_mesh_data(rec, exp_basis if shape_keys and bfm_keys else None, texture_size)
        t1 = time.perf_counter()
        mesh = _new_mesh(name, data)
        obj = bpy.data.objects.new(name, mesh)
        collection.objects.link(obj)
        image = _packed_image(f"{name}_albedo", data.texture_size, data.texture)
        confidence = None
        if data.confidence is not None:
            confidence = _packed_image(f"{name}_confidence", data.texture_size, data.confidence, non_color=True)
        mesh.materials.append(_material(name, image, confidence))
        if shape_keys:
            _shape_keys(obj, data)
    obj.location.x = offset_x
    for key, value in fb.scene_properties(rec, model_version).items():
        obj[key] = value
    cam_obj = None
    if camera:
        if photo_size is None:
            from PIL import Image

            with Image.open(rec.source) as im:
                photo_size = im.size
        spec = fb.photo_camera(rec, photo_size)
        cam_obj = _camera(name, spec, Path(rec.source) if rec.source else None, obj, collection)
        obj["facerecon_camera"] = cam_obj.name
        if match_render_size:
            scene.render.resolution_x, scene.render.resolution_y = spec.resolution
            scene.render.resolution_percentage = 100
        if scene.camera is None:
            scene.camera = cam_obj
    t2 = time.perf_counter()
    return obj, {"arrays": t1 - t0, "blender": t2 - t1}


def select_only(context: Any, objects: list) -> None:
    try:
        for other in context.selected_objects:
            other.select_set(False)
        for obj in objects:
            obj.select_set(True)
        if objects:
            context.view_layer.objects.active = objects[0]
    except (AttributeError, RuntimeError):  # no view layer in some contexts
        pass


def build_result(result: Any, *, texture_size: int | None = None, shape_keys: bool = True, bfm_keys: bool = False,
                 camera: bool = False, match_render_size: bool = False,
                 scene: bpy.types.Scene | None = None) -> tuple[list, dict[str, float]]:
    """Objects of every face of a :class:`services.reconstruct.Result`; faces side by side along X."""
    from facerecon_core.export.blender import object_name

    objects, timings = [], {"arrays": 0.0, "blender": 0.0}
    for i, rec in enumerate(result.faces):
        obj, t = build_face(rec, name=object_name(rec.source, i, len(result.faces)), exp_basis=result.exp_basis,
                            texture_size=texture_size, shape_keys=shape_keys, bfm_keys=bfm_keys, camera=camera,
                            photo_size=result.photo_size, model_version=result.model_version, scene=scene,
                            offset_x=0.25 * i, match_render_size=match_render_size)
        objects.append(obj)
        for k, v in t.items():
            timings[k] += v
    return objects, timings


# ------------------------------------------------------------------------------------------------ video
def keyframe_performance(obj: bpy.types.Object, times, values: dict, fps: float, rotations=None,
                         start_frame: int = 1) -> int:
    """Keyframe ``obj``'s shape keys named in ``values`` (name → (T,) values at ``times`` seconds) and, with
    ``rotations`` ((T, 4) quaternions x, y, z, w in the face model's frame), its rotation; returns the keyed
    shape keys' count."""
    from facerecon_core.export.blender import MODEL_TO_BLENDER

    frames = [start_frame + int(round(float(t) * fps)) for t in times]
    keys = obj.data.shape_keys.key_blocks if obj.data.shape_keys else {}
    keyed = 0
    for name, series in values.items():
        block = keys.get(name) if hasattr(keys, "get") else None
        if block is None:
            continue
        keyed += 1
        for frame, value in zip(frames, series):
            block.value = float(value)
            block.keyframe_insert("value", frame=frame)
    if rotations is not None:
        from mathutils import Matrix, Quaternion

        turn = Matrix([list(row) for row in MODEL_TO_BLENDER])
        obj.rotation_mode = "QUATERNION"
        for frame, (x, y, z, w) in zip(frames, rotations):
            model = Quaternion((float(w), float(x), float(y), float(z))).to_matrix()
            obj.rotation_quaternion = (turn @ model @ turn.transposed()).to_quaternion()
            obj.keyframe_insert("rotation_quaternion", frame=frame)
    return keyed


def build_track(track: Any, *, camera: bool = True, set_frames: bool = True,
                scene: bpy.types.Scene | None = None) -> tuple[bpy.types.Object, dict[str, float]]:
    """The face (or head) of a :class:`facerecon_core.video.track.FaceTrack` with its ARKit keys and rotation
    keyframed at the video's frames; with ``set_frames`` the scene's frame range and rate become the video's
    (the import asks for it: File > Import > Face from Video); with ``camera`` a camera that sees the face as the
    best frame does, the video as its background clip."""
    import dataclasses

    import numpy as np

    from facerecon_core.video.write import rotations

    scene = scene or bpy.context.scene
    t0 = time.perf_counter()
    reference = track.reference
    # the camera of the best frame for the face at rest: the performance turns the face, not the camera
    rest = dataclasses.replace(reference, angles=np.zeros(3))
    obj, _ = build_face(rest, name=track.name, camera=False, scene=scene)
    values = {name: track.weights[:, i] for i, name in enumerate(track.arkit_names)}
    fps = float(track.video.fps)
    keyframe_performance(obj, track.frame_index / fps, values, fps, rotations(track.angles))
    if set_frames:
        scene.render.fps = max(int(round(fps)), 1)
        scene.render.fps_base = scene.render.fps / fps
        scene.frame_start, scene.frame_end = 1, int(track.frame_index[-1]) + 1
    if camera:
        from facerecon_core.export import blender as fb

        spec = fb.photo_camera(rest, (track.video.width, track.video.height))
        cam_obj = _camera(track.name, spec, None, obj, scene.collection)
        clip = bpy.data.movieclips.load(str(track.video.path), check_existing=True)
        background = cam_obj.data.background_images.new()
        background.source = "MOVIE_CLIP"
        background.clip = clip
        background.alpha = 1.0
        background.frame_method = "STRETCH"
        cam_obj.data.show_background_images = True
        obj["facerecon_camera"] = cam_obj.name
        if scene.camera is None:
            scene.camera = cam_obj
    obj["facerecon_video"] = str(track.video.path)
    return obj, {"blender": time.perf_counter() - t0}
