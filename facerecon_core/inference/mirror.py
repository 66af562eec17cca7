"""Mirror averaging: the geometry stream's prediction for a crop and for its mirror image, the latter
reflected back and the two averaged (test-time flip augmentation).

Mirroring a crop about its vertical centre line (pixel x → S − 1 − x; the crop camera's principal
point is the crop centre) reflects camera space, x → −x. A face predicted on the mirror image as
(shape S', rotation R', translation t') is, in the crop, the shape P S' with rotation P R' P and
translation P t' (P = diag(−1, 1, 1)). On the ASMs P S' is :func:`reflect_asm` (the UV layout is
symmetric about u = 0.5, as the symmetry loss uses); P R' P negates yaw and roll; SH light
coefficients odd in x change sign. Rotations are averaged as matrices, projected back onto SO(3).

numpy only (inference runs without torch).
"""

from __future__ import annotations

import numpy as np

from facerecon_core.pose import euler_to_matrix, matrix_to_euler

REFLECT_XYZ = np.array([-1.0, 1.0, 1.0], np.float32)
# the SH basis (facerecon_core.render.sh_basis): 1, y, z, x, xy, yz, 3z² − 1, xz, x² − y²
REFLECT_SH = np.array([1, 1, 1, -1, -1, 1, 1, -1, 1], np.float32)
REFLECT_ANGLES = np.array([1.0, -1.0, -1.0], np.float32)  # (pitch, yaw, roll)


def mirror_images(images: np.ndarray) -> np.ndarray:
    """Crops (B, S, S, C) mirrored left–right."""
    return np.ascontiguousarray(np.asarray(images)[:, :, ::-1])


def reflect_asm(asm: np.ndarray) -> np.ndarray:
    """The reflected face's UV position map (B, G, G, 3): UV columns flipped, x negated."""
    return np.ascontiguousarray(np.asarray(asm)[:, :, ::-1] * REFLECT_XYZ)


def reflect_pose(angles: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, yaw, roll) and translation (..., 3) of the reflected head: P R P and P t."""
    return np.asarray(angles) * REFLECT_ANGLES, np.asarray(translation) * REFLECT_XYZ


def average_rotations(*angles: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) (B, 3) of the rotation closest (Frobenius) to the mean of the rotation matrices
    of the given (B, 3) angle arrays."""
    mean = sum(euler_to_matrix(a) for a in angles) / len(angles)
    u, _, vt = np.linalg.svd(mean)
    fix = np.ones(mean.shape[:-1])
    fix[..., -1] = np.sign(np.linalg.det(u @ vt))
    return matrix_to_euler((u * fix[..., None, :]) @ vt)


def average_with_mirror(a_id: np.ndarray, a_exp: np.ndarray, sh: np.ndarray, angles: np.ndarray,
                        translation: np.ndarray) -> tuple[np.ndarray, ...]:
    """Average the predictions for B crops with those for their mirror images, reflected back.

    Each argument holds 2B rows, the crops' then the mirrored crops' (ASMs (2B, G, G, 3), SH (2B, 3, 9),
    angles and translation (2B, 3)), as one network run on both gives them. Returns the five averaged
    arrays (B rows, float32)."""
    b = len(a_id) // 2
    r_angles, r_translation = reflect_pose(angles[b:], translation[b:])
    out = (0.5 * (a_id[:b] + reflect_asm(a_id[b:])), 0.5 * (a_exp[:b] + reflect_asm(a_exp[b:])),
           0.5 * (sh[:b] + sh[b:] * REFLECT_SH), average_rotations(angles[:b], r_angles),
           0.5 * (translation[:b] + r_translation))
    return tuple(np.asarray(x, np.float32) for x in out)
