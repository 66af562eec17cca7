"""A whole head for one reconstruction: ``build_head(rig, rec, photo)`` → :class:`HeadMesh` (numpy only).

Shape: :func:`facerecon_core.head.shape.head_vertices` around the reconstruction's neutral face. Keys: ICT's 51
ARKit deltas scaled by the head's size against the mean face's (its proportions stay ICT's), ``eyeLook*``
also turning the eyeballs about their centres, at the photo's solved weights; then "Expression residual", what
the weights leave of the photo's expression, carried from the face as the shape is (or, for a face model
without the ARKit keys, "Expression": the whole expression); for one person from several photos, a key per
photo at 0. Textures: :mod:`facerecon_core.head.texture`.
"""

from __future__ import annotations

import numpy as np

from facerecon_core.head import shape, texture
from facerecon_core.head.mesh import HeadMesh
from facerecon_core.head.rig import HeadRig

RESIDUAL_KEY = "Expression residual"
EXPRESSION_KEY = "Expression"
EYE_LOOK_DEG = {"Up": 25.0, "Down": 30.0, "In": 30.0, "Out": 30.0}  # each eyeLook key's turn at weight 1


def build_head(rig: HeadRig, rec, photo: np.ndarray | None = None) -> HeadMesh:
    """The head of ``rec`` (a :class:`~facerecon_core.reconstruction.FaceReconstruction` of ``rig``'s face
    model); ``photo`` (H×W×3 uint8, the reconstruction's) gives the iris colour."""
    if int(rig.face_triangles.max()) >= rec.n_vertices:
        raise ValueError(f"the reconstruction has {rec.n_vertices} vertices; the head rig was built for another "
                         f"face model")
    # what ICT's fitted identity leaves of the face, the photo's expression residual and the photos' expressions
    # (several photos): carried over the head in one solve
    targets = shape.face_points(rig, rec.identity_vertices)
    fitted = rig.base.astype(np.float64) + shape.identity_displacement(
        rig, shape.fit_identity(rig, targets - rig.base[rig.face_vertices]))
    carried = [targets - fitted[rig.face_vertices],
               shape.face_points(rig, rec.expression_offsets if rec.arkit_weights is None else rec.arkit_residual)]
    carried += [shape.face_points(rig, offsets) for offsets in (rec.photo_expressions or {}).values()]
    moved = shape.displace(rig, np.zeros((rig.n_vertices, 3 * len(carried))), np.concatenate(carried, axis=1))
    moved = moved.reshape(rig.n_vertices, len(carried), 3).transpose(1, 0, 2).astype(np.float32)
    scale = shape.size_ratio(rig, targets)
    neutral = shape.seat(rig, fitted + moved[0])
    names, deltas, weights = [], [], []
    centres = [shape.sphere_centre(neutral[rig.part(p)]) for p in ("eyeball_left", "eyeball_right")]
    if rec.arkit_weights is not None:
        arkit = [str(n) for n in rig.arkit_names]
        for name, value in rec.arkit_weights.items():
            delta = rig.arkit_deltas[arkit.index(name)].astype(np.float32) * scale
            if name.startswith("eyeLook"):
                delta = delta + _eye_turn(rig, neutral, centres, name)
            names.append(name)
            deltas.append(delta)
            weights.append(float(value))
    names.append(EXPRESSION_KEY if rec.arkit_weights is None else RESIDUAL_KEY)
    deltas.append(moved[1])
    weights.append(1.0)
    for k, photo_name in enumerate(rec.photo_expressions or {}):
        names.append(photo_name)
        deltas.append(moved[2 + k])
        weights.append(0.0)
    iris = texture.iris_colour(photo, rec.landmarks_2d if photo is not None else None)
    return HeadMesh(
        vertices=neutral.astype(np.float32), poly_sizes=rig.poly_sizes, poly_vertices=rig.poly_vertices,
        poly_uvs=rig.poly_uvs, uvs=rig.uvs, poly_material=rig.poly_material, part_names=rig.part_names,
        part_ranges=rig.part_ranges, key_names=names, key_deltas=np.stack(deltas).astype(np.float32),
        key_weights=np.array(weights, np.float32), skin_texture=texture.skin_texture(rig, rec.albedo),
        eye_texture=texture.eye_texture(rig, iris), colours=dict(texture.FLAT_COLOURS), notice=rig.notice)


def _eye_turn(rig: HeadRig, vertices: np.ndarray, centres: np.ndarray, key: str) -> np.ndarray:
    """(N, 3): the eyeball of ``key`` (eyeLook{Up,Down,In,Out}{Left,Right}) turned by :data:`EYE_LOOK_DEG`
    about its centre, as a delta (a linear key: halfway it turns about half as far, the ball shrinking < 2 %)."""
    side = "Left" if key.endswith("Left") else "Right"
    direction = key[len("eyeLook"):-len(side)]
    angle = np.radians(EYE_LOOK_DEG[direction])
    c, s = np.cos(angle), np.sin(angle)
    if direction in ("Up", "Down"):  # about x; up turns the gaze (+z) toward +y
        sign = -1.0 if direction == "Up" else 1.0
        rotation = np.array([[1, 0, 0], [0, c, -sign * s], [0, sign * s, c]])
    else:  # about y; the left eye (x > 0) looks in toward −x
        toward_x = (direction == "Out") == (side == "Left")
        sign = 1.0 if toward_x else -1.0
        rotation = np.array([[c, 0, sign * s], [0, 1, 0], [-sign * s, 0, c]])
    ids = rig.part("eyeball_left" if side == "Left" else "eyeball_right")
    centre = centres[0 if side == "Left" else 1]
    out = np.zeros((rig.n_vertices, 3), np.float32)
    p = vertices[ids] - centre
    out[ids] = p @ rotation.T - p
    return out
