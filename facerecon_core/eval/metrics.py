"""Evaluation metrics: similarity alignment and ICP with scale, point-to-plane distance, landmark
NME, and the photometric errors E_pho / MAE (numpy + scipy only).

Geometry follows the paper's Table I protocol: the ground truth is cropped to a sphere of 95 mm
around its nose tip, the prediction is aligned to it by its 68 landmarks (similarity), refined by
ICP with scale (point-to-point, nearest neighbours), and the error of every kept ground-truth
vertex is its point-to-plane distance to the aligned prediction: ``|(g − p) · n_p|`` with ``p`` the
nearest predicted vertex and ``n_p`` its unit normal. Everything is topology-agnostic (nearest
neighbours, no vertex correspondence) except the landmark initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from facerecon_core.pose import Similarity, umeyama  # noqa: F401 (the alignment lives with the poses)

NOSE_TIP = 30  # iBUG-68 index of the nose tip
CROP_RADIUS_MM = 95.0


def icp(source: np.ndarray, target: np.ndarray, init: Similarity | None = None, *, iterations: int = 20,
        with_scale: bool = True, max_points: int = 2500, reject_factor: float = 3.0, tol: float = 1e-4,
        target_tree: cKDTree | None = None, seed: int = 0) -> Similarity:
    """Similarity aligning point set ``source`` (N, 3) to ``target`` (M, 3): point-to-point ICP with
    scale, nearest neighbours from source to target, pairs farther than ``reject_factor`` × their
    median distance dropped. ``source`` is subsampled to ``max_points`` (deterministically)."""
    src = np.asarray(source, np.float64)
    if len(src) > max_points:
        src = src[np.random.default_rng(seed).choice(len(src), max_points, replace=False)]
    tree = target_tree if target_tree is not None else cKDTree(np.asarray(target, np.float64))
    tgt = tree.data
    current = init or Similarity.identity()
    previous = np.inf
    for _ in range(iterations):
        moved = current.apply(src)
        dist, idx = tree.query(moved)
        keep = dist <= reject_factor * max(np.median(dist), 1e-6)
        step = umeyama(moved[keep], tgt[idx[keep]], with_scale=with_scale)
        current = step.compose(current)
        err = float(np.mean(dist[keep]))
        if abs(previous - err) < tol * max(err, 1e-9):
            break
        previous = err
    return current


# ------------------------------------------------------------------------------ surface distance
def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) (outward for counter-clockwise triangles)."""
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles)
    face = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, tri[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def point_to_plane(points: np.ndarray, surface: np.ndarray, normals: np.ndarray,
                   surface_tree: cKDTree | None = None) -> np.ndarray:
    """Per point (N,) distance ``|(q − p) · n_p|`` to the plane of the nearest ``surface`` vertex p."""
    tree = surface_tree if surface_tree is not None else cKDTree(np.asarray(surface, np.float64))
    _, idx = tree.query(np.asarray(points, np.float64))
    diff = np.asarray(points, np.float64) - tree.data[idx]
    return np.abs(np.sum(diff * np.asarray(normals, np.float64)[idx], axis=1))


def crop_mask(vertices: np.ndarray, centre: np.ndarray, radius: float = CROP_RADIUS_MM) -> np.ndarray:
    """Vertices within ``radius`` mm of ``centre``."""
    return np.linalg.norm(np.asarray(vertices) - np.asarray(centre), axis=1) <= radius


@dataclass
class GeometryError:
    """Result of :func:`geometry_error` for one face."""

    per_vertex: np.ndarray  # (V_gt,) point-to-plane mm, NaN outside the crop
    mean: float
    std: float
    median: float
    alignment: Similarity  # prediction → ground truth
    aligned: np.ndarray  # (V_pred, 3) the aligned prediction


def geometry_error(pred: np.ndarray, pred_triangles: np.ndarray, gt: np.ndarray, *,
                   pred_landmarks: np.ndarray, gt_landmarks: np.ndarray, radius: float = CROP_RADIUS_MM,
                   icp_iterations: int = 20, with_scale: bool = True) -> GeometryError:
    """Table I protocol: crop ``gt`` to ``radius`` mm around its nose tip, align ``pred`` by
    landmarks then ICP with scale onto the crop, point-to-plane distance of every kept GT vertex."""
    gt = np.asarray(gt, np.float64)
    keep = crop_mask(gt, np.asarray(gt_landmarks)[NOSE_TIP], radius)
    gt_crop = gt[keep]
    init = umeyama(pred_landmarks, gt_landmarks, with_scale=with_scale)
    # ICP restricted to the predicted vertices near the crop (the rest has no partner)
    moved = init.apply(pred)
    near = crop_mask(moved, np.asarray(gt_landmarks)[NOSE_TIP], radius * 1.05)
    gt_tree = cKDTree(gt_crop)
    align = icp(pred[near] if near.sum() >= 100 else pred, gt_crop, init, iterations=icp_iterations,
                with_scale=with_scale, target_tree=gt_tree)
    aligned = align.apply(pred)
    normals = vertex_normals(aligned, pred_triangles)
    dist = point_to_plane(gt_crop, aligned, normals)
    per_vertex = np.full(len(gt), np.nan)
    per_vertex[keep] = dist
    return GeometryError(per_vertex, float(dist.mean()), float(dist.std()), float(np.median(dist)), align, aligned)


def expression_error(pred: np.ndarray, pred_neutral: np.ndarray, gt: np.ndarray, gt_neutral: np.ndarray,
                     alignment: Similarity, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex (V,) Euclidean error of the expression displacements, same topology:
    ``|s R (pred − pred_neutral) − (gt − gt_neutral)|`` with the shape alignment's rotation and scale;
    NaN where ``mask`` is False."""
    d_pred = alignment.apply_vector(np.asarray(pred, np.float64) - pred_neutral)
    d_gt = np.asarray(gt, np.float64) - gt_neutral
    err = np.linalg.norm(d_pred - d_gt, axis=1)
    if mask is not None:
        err = np.where(mask, err, np.nan)
    return err


# ------------------------------------------------------------------------------------ landmarks
def bbox_size(landmarks: np.ndarray) -> float:
    """3DDFA's normaliser: sqrt(w · h) of the ground-truth landmarks' 2D bounding box."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    w, h = np.ptp(pts, axis=0)
    return float(np.sqrt(w * h))


def nme(pred: np.ndarray, gt: np.ndarray, normaliser: float | None = None, dims: int = 2) -> float:
    """Mean landmark error over points / ``normaliser`` (default :func:`bbox_size` of ``gt``).

    ``dims=3`` uses x, y, z after removing the mean depth difference (the depth origin of image-space
    3D landmarks is arbitrary)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    norm = bbox_size(gt) if normaliser is None else float(normaliser)
    if dims == 2:
        err = np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1)
    elif dims == 3:
        diff = pred[:, :3] - gt[:, :3]
        diff[:, 2] -= diff[:, 2].mean()
        err = np.linalg.norm(diff, axis=1)
    else:
        raise ValueError("dims must be 2 or 3")
    return float(err.mean() / norm)


# ------------------------------------------------------------------------------------ photometric
def photometric_errors(photo: np.ndarray, render: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Paper Table II: errors between a photo and a render inside the region R_s (bool (H, W)).

    Images are uint8 or float in [0, 1]. Returns ``e_pho`` = Σ‖R_s ⊙ (I_o − I_r)‖²₂ / N_p on the
    0–255 scale (per-pixel squared RGB distance, averaged), ``e_pho_l2`` = the mean per-pixel RGB
    distance on the 0–255 scale (the magnitude the paper's Fig. 16 numbers have), and ``mae`` = mean
    absolute error per channel on the [0, 1] scale (Table II)."""
    def unit(img):
        img = np.asarray(img)
        return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)

    region = np.asarray(region, bool)
    n = int(region.sum())
    if n == 0:
        return {"e_pho": float("nan"), "e_pho_l2": float("nan"), "mae": float("nan"), "pixels": 0}
    diff = (unit(photo) - np.clip(unit(render), 0.0, 1.0))[region]
    sq = np.sum((255.0 * diff) ** 2, axis=1)
    return {"e_pho": float(sq.mean()), "e_pho_l2": float(np.sqrt(sq).mean()), "mae": float(np.abs(diff).mean()),
            "pixels": n}


def detail_energy(image: np.ndarray, region: np.ndarray, margin: int = 3) -> float:
    """Mean squared high-frequency content of ``image`` (H, W, 3) in [0, 1] over ``region`` (H, W) shrunk by
    ``margin`` pixels (so the region's own edge does not count): the image minus its 2 × 2 box-downsampled,
    linearly upsampled self."""
    from facerecon_core import imageops

    h, w = region.shape
    image = np.asarray(image, np.float32)
    smooth = imageops.resize(imageops.resize(image, (w + 1) // 2, (h + 1) // 2, "area"), w, h, "linear")
    inner = imageops.erode(np.asarray(region, bool), margin)
    if not inner.any():
        return 0.0
    return float(((image - smooth) ** 2).sum(-1)[inner].mean())
