"""The numbers of a Blender scene from a :class:`FaceReconstruction` (numpy only, no ``bpy``).

The Blender add-on (``blender_addon/``) is glue: everything it puts into ``bpy`` — vertex
positions, shape-key offsets, loop UVs, texture pixels, the camera's matrix and lens, the custom
properties — is computed here, so it is testable without Blender and shared with the batch script.

Frames: the face model is in millimetres with x to the subject's left, y up and z toward the
viewer. Blender's front view looks along +Y with Z up, so the face must face −Y:

    Blender (X, Y, Z) = (x, −z, y) · 0.001      (a proper rotation, so triangles stay CCW)

The photo camera: facerecon's crop camera is an OpenGL camera (looking down −z, y up), like a
Blender camera, placed so that camera-space points are ``R v + t``; in the face's frame the camera
sits at ``−Rᵀ t`` with axes ``Rᵀ``. Its field of view and principal point are expressed for the
whole photo (``FaceReconstruction.photo_camera``) as Blender's lens, sensor and shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon_core.pose import FOCAL_PER_PIXEL, euler_to_matrix
from facerecon_core.reconstruction import FaceReconstruction

MM_TO_M = 1e-3
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Rotation taking face-model axes to Blender axes (x → X, y → Z, z → −Y)."""

SENSOR_WIDTH_MM = 36.0
EXPRESSION_KEY = "Expression"
BASIS_KEY = "Basis"
PROPERTY_PREFIX = "facerecon_"


def to_blender(points_mm: np.ndarray) -> np.ndarray:
    """Face-model points or offsets (..., 3) in mm → Blender coordinates in metres, float32."""
    points = np.asarray(points_mm, np.float64)
    return (points @ MODEL_TO_BLENDER.T * MM_TO_M).astype(np.float32)


def from_blender(points_m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_blender` (Blender metres → face-model mm), float64."""
    return np.asarray(points_m, np.float64) @ MODEL_TO_BLENDER / MM_TO_M


def exp_key_names(count: int) -> list[str]:
    """Names of the face model's expression components as shape keys: exp_00, exp_01, …"""
    width = max(2, len(str(max(count - 1, 0))))
    return [f"exp_{i:0{width}d}" for i in range(count)]


def albedo_pixels(albedo: np.ndarray) -> np.ndarray:
    """A (H, W, 3) uint8 texture (row 0 = v = 1) as Blender image pixels: flat RGBA float32, bottom row first."""
    albedo = np.asarray(albedo)
    if albedo.ndim != 3 or albedo.shape[2] != 3:
        raise ValueError(f"albedo must be (T, T, 3), got {albedo.shape}")
    rgba = np.empty(albedo.shape[:2] + (4,), np.float32)
    rgba[..., :3] = albedo[::-1].astype(np.float32) * (1.0 / 255.0)
    rgba[..., 3] = 1.0
    return rgba.reshape(-1)


@dataclass(frozen=True)
class CameraSpec:
    """A Blender camera that sees the face as the photo does."""

    matrix_world: np.ndarray  # (4, 4) float64, Blender frame, metres (translation), no scale
    lens_mm: float
    sensor_width_mm: float  # sensor_fit AUTO: the width of the photo's larger side
    shift_x: float
    shift_y: float
    resolution: tuple[int, int]  # photo width, height in pixels
    clip_start_m: float
    clip_end_m: float

    def project(self, points_blender: np.ndarray) -> np.ndarray:
        """Photo pixel coordinates (corner convention: the top-left pixel spans [0, 1)²) of Blender points."""
        inv = np.linalg.inv(self.matrix_world)
        p = np.asarray(points_blender, np.float64) @ inv[:3, :3].T + inv[:3, 3]
        width, height = self.resolution
        big = max(width, height)
        focal_px = self.lens_mm / self.sensor_width_mm * big
        depth = -p[..., 2]
        # a positive shift moves the frame right / up, so the image content moves left / down
        u = width / 2 - self.shift_x * big + focal_px * p[..., 0] / depth
        v = height / 2 + self.shift_y * big - focal_px * p[..., 1] / depth
        return np.stack([u, v], axis=-1)


def photo_camera(rec: FaceReconstruction, photo_size: tuple[int, int]) -> CameraSpec:
    """The camera of the photo (``photo_size`` = width, height) for a face object left at the origin."""
    width, height = (int(s) for s in photo_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"photo size must be positive, got {photo_size}")
    rotation = euler_to_matrix(np.asarray(rec.angles, np.float64))
    translation = np.asarray(rec.translation, np.float64)
    position_mm = -rotation.T @ translation
    matrix = np.eye(4)
    matrix[:3, :3] = MODEL_TO_BLENDER @ rotation.T
    matrix[:3, 3] = MODEL_TO_BLENDER @ position_mm * MM_TO_M
    left, top, side = (float(x) for x in rec.crop_box)
    scale = side / rec.crop_size
    focal_px = FOCAL_PER_PIXEL * side  # = crop focal × photo pixels per crop pixel
    centre = rec.crop_size / 2.0 - 0.5  # crop principal point (pixel-centre convention)
    cx = left + scale * centre + 0.5  # corner convention
    cy = top + scale * centre + 0.5
    big = max(width, height)
    distance_m = float(np.linalg.norm(translation)) * MM_TO_M
    return CameraSpec(
        matrix_world=matrix, lens_mm=focal_px * SENSOR_WIDTH_MM / big, sensor_width_mm=SENSOR_WIDTH_MM,
        shift_x=(width / 2 - cx) / big, shift_y=(cy - height / 2) / big, resolution=(width, height),
        clip_start_m=max(0.01, 0.1 * distance_m), clip_end_m=max(10.0, 10 * distance_m),
    )


@dataclass(frozen=True)
class FaceMeshData:
    """Everything the add-on writes into a Blender mesh (Blender frame, metres)."""

    basis: np.ndarray  # (V, 3) float32: the identity (neutral face)
    expression: np.ndarray  # (V, 3) float32: identity + expression offsets
    triangles: np.ndarray  # (F, 3) int32, CCW seen from outside (unchanged by the rotation)
    loop_uvs: np.ndarray  # (3F, 2) float32, per face corner
    texture: np.ndarray  # flat RGBA float32 pixels, bottom row first
    texture_size: int
    exp_keys: dict[str, np.ndarray]  # name -> (V, 3) float32 absolute shape-key positions
    confidence: np.ndarray | None = None  # flat RGBA float32 (grey) of the texture's photo confidence, or None
    arkit_keys: dict[str, np.ndarray] | None = None  # ARKit name -> (V, 3) absolute positions (identity + key)
    arkit_weights: dict[str, float] | None = None  # their solved values
    residual: np.ndarray | None = None  # (V, 3) identity + the expression the keys do not give
    photo_keys: dict[str, np.ndarray] | None = None  # one person from several photos: photo name -> (V, 3)
    # identity + that photo's expression

    @property
    def n_vertices(self) -> int:
        return len(self.basis)

    @property
    def n_triangles(self) -> int:
        return len(self.triangles)


def face_mesh_data(rec: FaceReconstruction, exp_basis: np.ndarray | None = None,
                   texture_size: int | None = None) -> FaceMeshData:
    """Mesh arrays of ``rec``; ``exp_basis`` (K, V, 3) mm per standard deviation gives the exp_NN keys
    (each key = the identity plus one component at +1 standard deviation); ``texture_size``
    resamples the albedo (None = as is). With ARKit weights and keys in ``rec``, the 51 ARKit keys on this
    identity and the residual they leave."""
    basis = to_blender(rec.identity_vertices)
    expression = to_blender(rec.vertices())
    triangles = np.ascontiguousarray(rec.triangles, np.int32)
    loop_uvs = np.ascontiguousarray(rec.uvs[triangles.reshape(-1)], np.float32)
    albedo = rec.albedo
    if texture_size is not None and albedo.shape[0] != texture_size:
        from facerecon_core.export._common import resize_texture

        albedo = resize_texture(albedo, int(texture_size))
    keys: dict[str, np.ndarray] = {}
    if exp_basis is not None:
        exp_basis = np.asarray(exp_basis)
        if exp_basis.ndim != 3 or exp_basis.shape[1:] != rec.identity_vertices.shape:
            raise ValueError(f"exp_basis must be (K, {rec.n_vertices}, 3), got {exp_basis.shape}")
        for name, component in zip(exp_key_names(len(exp_basis)), exp_basis):
            keys[name] = basis + to_blender(component)
    arkit_keys = residual = None
    if rec.arkit_weights is not None and rec.arkit_keys is not None:  # personalised: the keys on this identity
        arkit_keys = {name: basis + to_blender(key) for name, key in zip(rec.arkit_weights, rec.arkit_keys)}
        residual = basis + to_blender(rec.arkit_residual)
    photo_keys = None
    if rec.photo_expressions:
        photo_keys = {name: basis + to_blender(offsets) for name, offsets in rec.photo_expressions.items()}
    confidence = None
    if rec.texture_confidence is not None:
        from facerecon_core import imageops

        grey = imageops.resize(rec.texture_confidence, albedo.shape[1], albedo.shape[0], "linear")
        confidence = albedo_pixels(np.repeat((np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, -1))
    return FaceMeshData(basis=basis, expression=expression, triangles=triangles, loop_uvs=loop_uvs,
                        texture=albedo_pixels(albedo), texture_size=int(albedo.shape[0]), exp_keys=keys,
                        confidence=confidence, arkit_keys=arkit_keys, arkit_weights=rec.arkit_weights,
                        residual=residual, photo_keys=photo_keys)


@dataclass(frozen=True)
class HeadMeshData:
    """Everything the add-on writes into a Blender mesh for a head (``mesh="head"``; Blender frame, metres): ICT's
    polygons (quads kept), a material per part with its texture or colour, the shape keys, a vertex group per part."""

    basis: np.ndarray  # (N, 3) float32: the neutral head
    poly_sizes: np.ndarray  # (P,) int32
    poly_vertices: np.ndarray  # (C,) int32, the loops' vertices
    loop_uvs: np.ndarray  # (C, 2) float32
    poly_material: np.ndarray  # (P,) int32 index into ``materials``
    materials: tuple[str, ...]
    textures: dict[str, tuple[np.ndarray, int, int]]  # material -> (flat RGBA pixels, width, height)
    colours: dict[str, tuple[float, float, float]]  # untextured material -> sRGB colour
    opacity: dict[str, float]  # half-transparent materials (the eyelashes' cards) -> alpha
    keys: dict[str, np.ndarray]  # shape key -> (N, 3) absolute positions
    weights: dict[str, float]  # shape key -> its value (the photo's)
    vertex_groups: dict[str, np.ndarray]  # part name -> vertex ids
    notice: str

    @property
    def n_vertices(self) -> int:
        return len(self.basis)


def head_mesh_data(rec: FaceReconstruction) -> HeadMeshData:
    """Mesh arrays of ``rec.head``."""
    from facerecon_core.head.texture import OPACITY

    head = rec.head
    basis = to_blender(head.vertices)
    keys = {name: basis + to_blender(delta) for name, delta in zip(head.key_names, head.key_deltas)}
    textures = {name: (albedo_pixels(image), image.shape[1], image.shape[0])
                for name, image in head.material_textures().items()}
    groups = {str(name): np.arange(lo, hi + 1) for name, (lo, hi) in zip(head.part_names, head.part_ranges)}
    return HeadMeshData(basis=basis, poly_sizes=head.poly_sizes.astype(np.int32),
                        poly_vertices=head.poly_vertices.astype(np.int32),
                        loop_uvs=np.ascontiguousarray(head.uvs[head.poly_uvs], np.float32),
                        poly_material=head.poly_material.astype(np.int32), materials=tuple(head.materials),
                        textures=textures, colours=dict(head.colours), opacity=dict(OPACITY), keys=keys,
                        weights=dict(zip(head.key_names, (float(w) for w in head.key_weights))),
                        vertex_groups=groups, notice=head.notice)


def scene_properties(rec: FaceReconstruction, model_version: str = "") -> dict[str, object]:
    """Custom properties for the face object: plain floats, lists and strings (ID-property safe)."""
    from facerecon_core import __version__

    pitch, yaw, roll = (float(a) for a in rec.angles)
    return {
        f"{PROPERTY_PREFIX}source": rec.source,
        f"{PROPERTY_PREFIX}model_version": model_version or f"facerecon {__version__}",
        f"{PROPERTY_PREFIX}version": __version__,
        f"{PROPERTY_PREFIX}pose_angles_rad": [pitch, yaw, roll],  # pitch, yaw, roll
        f"{PROPERTY_PREFIX}pose_angles_deg": [float(np.degrees(a)) for a in (pitch, yaw, roll)],
        f"{PROPERTY_PREFIX}pose_translation_mm": [float(t) for t in rec.translation],
        f"{PROPERTY_PREFIX}sh": [float(s) for s in np.asarray(rec.sh, np.float64).reshape(-1)],  # RGB × 9
        f"{PROPERTY_PREFIX}crop_box": [float(c) for c in rec.crop_box],
        f"{PROPERTY_PREFIX}crop_size": int(rec.crop_size),
        f"{PROPERTY_PREFIX}confidence": float(rec.confidence),
        f"{PROPERTY_PREFIX}timings_ms": {str(k): float(v) for k, v in rec.timings.items()},
    }


def object_name(source: str, index: int = 0, count: int = 1) -> str:
    """The Blender object name of face ``index`` of ``count`` from the photo ``source``."""
    from pathlib import Path

    stem = Path(source).stem if source else "Face"
    stem = stem or "Face"
    return stem if count <= 1 else f"{stem}.face{index:02d}"


def sample_reconstruction(facemodel, exp_coeff: np.ndarray | None = None, texture_size: int = 256,
                          photo_size: int = 512, source: str = "sample.png") -> FaceReconstruction:
    """A frontal :class:`FaceReconstruction` of the face model's mean (plus an expression) for tests and
    benchmarks: mean shape, mean albedo map, a crop covering the middle of a ``photo_size``² photo; the expression
    as ARKit weights where the face model has the rig."""
    n_exp = facemodel.n_exp
    if exp_coeff is None:
        exp_coeff = np.zeros(n_exp, np.float32)
        exp_coeff[: min(2, n_exp)] = 2.0
    offsets = facemodel.expression_offsets(np.asarray(exp_coeff, np.float32))
    albedo = np.clip(facemodel.to_uv_map(facemodel.albedo_mean, texture_size) * 255.0 + 0.5, 0, 255)
    crop_size = 224
    side = 0.8 * photo_size
    crop_box = np.array([(photo_size - side) / 2, (photo_size - side) / 2, side])
    angles = np.zeros(3)
    translation = np.array([0.0, 0.0, -1000.0])
    rec = FaceReconstruction(
        identity_vertices=facemodel.mean_shape, expression_offsets=offsets, triangles=facemodel.triangles,
        uvs=facemodel.uv, albedo=albedo.astype(np.uint8), angles=angles, translation=translation,
        sh=np.zeros((3, 9)), landmarks_2d=np.zeros((68, 2)),
        landmarks_3d=facemodel.mean_shape[facemodel.landmark_indices], crop_box=crop_box,
        crop_size=crop_size, confidence=1.0, source=source)
    rec.landmarks_2d = rec.project_to_photo(rec.camera_vertices()[facemodel.landmark_indices])
    if facemodel.has_arkit:
        from facerecon_core.pipeline.arkit import ArkitSolver

        solver = ArkitSolver.of(facemodel)
        solution = solver.solve(offsets)
        rec.arkit_weights, rec.arkit_residual, rec.arkit_keys = solution.weights, solution.residual, solver.deltas
    return rec
