"""ARKit expression keys on our face model, from the ICT Face Model (MIT; its licence travels in the asset).

Registration (``facerecon assets build``): the ICT neutral face (cm → mm) is aligned to our mean face by a
similarity on the 51 inner landmarks (brows, eyes, nose, mouth), then warped onto it by a thin-plate spline
through the 68 landmarks and, twice, through closest-point pairs spread over the face; each of our vertices
then takes its closest point on the warped ICT face (a triangle and barycentric coordinates). The mouth and
the eyes are respected: a vertex of an upper lip or eyelid only finds points of the ICT upper lip or eyelid,
and likewise below (each side of the line through the inner lip or lid landmarks).

Transfer: each ICT expression delta sampled at our vertices (the similarity's rotation and scale applied),
in mm, merged into ARKit's names (``browInnerUp`` = ``browInnerUp_L`` + ``_R``, ``cheekPuff`` likewise;
``_L`` is the subject's left, ARKit's ``Left``): 51 keys (``tongueOut`` has no source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ICT_FILE = "ict_facekit.npz"
NOTICE_HEADER = ("The ARKit expression keys (arkit_names, arkit_deltas) are derived from the ICT Face Model "
                 "(ICT-VGL/ICT-FaceKit, FaceXModel), under its MIT licence:\n\n")
FACE_PART = 6705  # ICT's narrow face area: vertices 0 … 6705
INNER_LANDMARKS = np.arange(17, 68)
CM_TO_MM = 10.0
SMOOTHING_STEPS = 10  # of the transferred keys over our mesh
# ARKit names in ARKit's order (tongueOut left out: the ICT model has no such expression)
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
)


class RigError(ValueError):
    """The ICT Face Model data is missing or not as expected (one line naming what)."""


def ict_sources(arkit: str) -> list[str]:
    """The ICT expression names that make ARKit's ``arkit`` key (summed). ``jawLeft``, ``mouthRight`` and the like
    are directions, named alike in both."""
    if arkit in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
        return [arkit]
    if arkit in ("browInnerUp", "cheekPuff"):
        return [f"{arkit}_L", f"{arkit}_R"]
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if arkit.endswith(side):
            return [arkit[: -len(side)] + suffix]
    return [arkit]


@dataclass(frozen=True)
class Registration:
    """Where each of our vertices lies on the ICT face, and how well it fits."""

    triangles: np.ndarray  # (V, 3) int64: ICT vertex ids of the triangle holding each of our vertices
    barycentric: np.ndarray  # (V, 3) float64
    rotation_scale: np.ndarray  # (3, 3): ICT directions (mm) → ours: scale × rotation of the similarity
    residual_mm: float  # mean distance from our vertices to the warped ICT surface (face region)
    landmark_mm: float  # mean distance of the 68 landmarks after the similarity (before the warp)
    distance_mm: np.ndarray  # (V,) each vertex's distance to the warped ICT surface
    neighbours: tuple[np.ndarray, np.ndarray]  # our 1-ring (CSR), less the pairs across the lips and the lids


@dataclass(frozen=True)
class ArkitRig:
    names: tuple[str, ...]
    deltas: np.ndarray  # (K, V, 3) float32 mm, per key at weight 1, on our mean face's vertices
    registration: Registration
    notice: str  # the ICT Face Model's licence notice


def load_ict(folder: Path) -> dict[str, np.ndarray]:
    """The ICT arrays the rig needs, and ``"notice"``: the licence notice to keep with what is derived."""
    path = Path(folder) / ICT_FILE
    licence = Path(folder) / "LICENSE"
    if path.is_file() and not licence.is_file():
        raise RigError(f"{licence}: the ICT Face Model's licence is missing (it must travel with the keys)")
    if not path.is_file():
        raise RigError(f"{path}: ICT Face Model data not found (needed for the ARKit expression keys); put "
                       f"shared/ict_facekit/ beside the repository or set FACERECON_SHARED")
    with np.load(path, allow_pickle=False) as data:
        needed = ("neutral", "face_sizes", "face_vertices", "expression_names", "expression_deltas",
                  "landmark_vertices")
        missing = [k for k in needed if k not in data.files]
        if missing:
            raise RigError(f"{path}: lacks {', '.join(missing)}")
        return {**{k: data[k] for k in needed}, "notice": NOTICE_HEADER + licence.read_text()}


def build_rig(model, ict: dict[str, np.ndarray]) -> ArkitRig:
    """Register the ICT face to ``model``'s mean face and transfer its expressions as the 51 ARKit keys."""
    registration = register(model, ict)
    names = [str(n) for n in ict["expression_names"]]
    deltas = []
    for key in ARKIT_NAMES:
        total = 0.0
        for source in ict_sources(key):
            if source not in names:
                raise RigError(f"the ICT expressions lack {source} (needed for {key})")
            total = total + ict["expression_deltas"][names.index(source)]
        deltas.append(sample(registration, np.asarray(total, np.float64) * CM_TO_MM))
    return ArkitRig(ARKIT_NAMES, np.stack(deltas).astype(np.float32), registration, str(ict.get("notice", "")))


def sample(registration: Registration, ict_delta: np.ndarray) -> np.ndarray:
    """An ICT per-vertex delta (N, 3), mm in ICT's frame → our vertices (V, 3), mm in ours, smoothed over our
    mesh (where neighbouring vertices found different ICT surfaces) but never across the lips or the lids."""
    at = np.einsum("vk,vkc->vc", registration.barycentric, ict_delta[registration.triangles])
    return _smooth(at @ registration.rotation_scale.T, registration.neighbours, SMOOTHING_STEPS)


def _smooth(values: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], steps: int) -> np.ndarray:
    """``steps`` rounds of v ← ½ v + ½ (mean of its neighbours) on the CSR neighbourhoods ``(indptr, indices)``."""
    indptr, indices = neighbours
    counts = np.maximum(np.diff(indptr), 1)[:, None]
    has = np.diff(indptr) > 0
    starts = indptr[:-1][has]
    for _ in range(steps):
        sums = np.zeros_like(values)
        sums[has] = np.add.reduceat(values[indices], starts, axis=0)
        values = np.where(has[:, None], 0.5 * values + 0.5 * sums / counts, values)
    return values


# ------------------------------------------------------------------------------------------ registration
@dataclass(frozen=True)
class IctWarp:
    """The ICT face laid onto our mean face: a similarity, then a thin-plate spline through landmark and
    closest-point pairs (``src`` → ``dst``, in the similarity's frame)."""

    rotation_scale: np.ndarray  # (3, 3): ICT directions (mm) → ours
    translation: np.ndarray  # (3,) mm
    aligned: np.ndarray  # (N, 3) every ICT vertex after the similarity, mm in our frame
    warped: np.ndarray  # (N, 3) the same, the face area's vertices also warped onto our face
    triangles: np.ndarray  # (F, 3) the ICT face area's triangles
    src: np.ndarray  # (P, 3) the spline's control points (aligned ICT) …
    dst: np.ndarray  # (P, 3) … and where it takes them (on our mean face)
    landmark_mm: float  # mean distance of the 68 landmarks after the similarity (before the warp)

    def warp(self, points: np.ndarray) -> np.ndarray:
        """Aligned ICT points (M, 3) through the spline."""
        return _tps(self.src, self.dst, np.asarray(points, np.float64), smoothing=1.0)


def warp_ict(model, ict: dict[str, np.ndarray], iterations: int = 2, pairs: int = 600,
             max_pair_mm: float | None = None) -> IctWarp:
    """Align the ICT neutral face to ``model``'s mean face and warp its face area onto it (through the landmarks
    and ``pairs`` closest-point pairs, found anew ``iterations`` times; with ``max_pair_mm``, only the pairs
    closer than that: our face reaches further back at the sides than ICT's face area)."""
    from facerecon_core.eval.metrics import umeyama

    ours = model.mean_shape.astype(np.float64)
    lm_ours = ours[model.landmark_indices]
    neutral = ict["neutral"].astype(np.float64) * CM_TO_MM
    lm_ict = neutral[ict["landmark_vertices"]]
    similarity = umeyama(lm_ict[INNER_LANDMARKS], lm_ours[INNER_LANDMARKS])
    rotation_scale = similarity.scale * similarity.rotation
    aligned = neutral @ rotation_scale.T + similarity.translation
    landmark_mm = float(np.linalg.norm(aligned[ict["landmark_vertices"]] - lm_ours, axis=1).mean())

    triangles = _face_triangles(ict)
    used = np.unique(triangles)
    labels_ours, labels_ict = lip_lid_labels(ours, lm_ours), ict_labels(aligned, ict)
    # the warp: landmarks first, then closest-point pairs over the face
    src, dst = aligned[ict["landmark_vertices"]], lm_ours
    warped = aligned
    spread = np.linspace(0, len(ours) - 1, pairs).astype(int)
    for step in range(iterations + 1):
        warped = aligned.copy()
        warped[used] = _tps(src, dst, aligned[used], smoothing=1.0)
        if step == iterations:
            break
        tri, bary, distance = closest_on_mesh(warped, triangles, ours[spread], labels_ours[spread], labels_ict)
        near = distance < (np.inf if max_pair_mm is None else max_pair_mm)
        hits = np.einsum("vk,vkc->vc", bary[near], aligned[tri[near]])  # the pairs' points before the warp
        src = np.concatenate([aligned[ict["landmark_vertices"]], hits])
        dst = np.concatenate([lm_ours, ours[spread[near]]])
    return IctWarp(rotation_scale, similarity.translation, aligned, warped, triangles, src, dst, landmark_mm)


def ict_labels(aligned: np.ndarray, ict: dict[str, np.ndarray]) -> np.ndarray:
    """Upper / lower lip and lid labels of the aligned ICT vertices (see :func:`lip_lid_labels`)."""
    return lip_lid_labels(aligned, aligned[ict["landmark_vertices"]])


def register(model, ict: dict[str, np.ndarray], iterations: int = 2) -> Registration:
    ours = model.mean_shape.astype(np.float64)
    warp = warp_ict(model, ict, iterations)
    labels_ours = lip_lid_labels(ours, ours[model.landmark_indices])
    tri, bary, distance = closest_on_mesh(warp.warped, warp.triangles, ours, labels_ours, ict_labels(warp.aligned, ict))
    face = model.face_vertices()
    indptr, indices = model.neighbours
    owner = np.repeat(np.arange(len(ours)), np.diff(indptr))
    same = _same_side(labels_ours[owner], labels_ours[indices])
    kept = np.concatenate([[0], np.cumsum(np.bincount(owner[same], minlength=len(ours)))])
    return Registration(tri, bary, warp.rotation_scale, float(distance[face].mean()), warp.landmark_mm, distance,
                        (kept, indices[same]))


def _same_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether two labels may share (not upper against lower lip, nor upper against lower lid)."""
    opposite = ((a == UPPER_LIP) & (b == LOWER_LIP)) | ((a == LOWER_LIP) & (b == UPPER_LIP))
    opposite |= ((a == UPPER_LID) & (b == LOWER_LID)) | ((a == LOWER_LID) & (b == UPPER_LID))
    return ~opposite


def _face_triangles(ict: dict[str, np.ndarray]) -> np.ndarray:
    """The ICT face area's polygons as triangles (fans), (F, 3)."""
    sizes, corners = ict["face_sizes"].astype(np.int64), ict["face_vertices"].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = []
    for k in range(1, sizes.max() - 1):
        has = sizes > k + 1
        out.append(np.stack([corners[starts[has]], corners[starts[has] + k], corners[starts[has] + k + 1]], 1))
    tri = np.concatenate(out)
    return tri[(tri <= FACE_PART).all(1)]


UPPER_LIP, LOWER_LIP, UPPER_LID, LOWER_LID = 1, 2, 3, 4
_PARTS = ((UPPER_LIP, LOWER_LIP, (60, (61, 67), (62, 66), (63, 65), 64), (48, 54), (33, 8)),
          (UPPER_LID, LOWER_LID, (36, (37, 41), (38, 40), 39), (36, 39), (19, 29)),
          (UPPER_LID, LOWER_LID, (42, (43, 47), (44, 46), 45), (42, 45), (24, 29)))


def lip_lid_labels(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N,) int: which side of each mouth and eye line a vertex lies on, within that feature's box; 0 elsewhere.
    The line runs through the inner corners and the midpoints of the inner upper/lower landmark pairs."""
    labels = np.zeros(len(vertices), np.int64)
    for upper, lower, line, (left, right), (top, bottom) in _PARTS:
        points = np.array([landmarks[p] if isinstance(p, int) else landmarks[list(p)].mean(0) for p in line])
        order = np.argsort(points[:, 0])
        x0, x1 = landmarks[[left, right], 0].min(), landmarks[[left, right], 0].max()
        margin = 0.15 * (x1 - x0)
        y_top, y_bottom = landmarks[top, 1], landmarks[bottom, 1]
        inside = ((vertices[:, 0] > x0 - margin) & (vertices[:, 0] < x1 + margin)
                  & (vertices[:, 1] < y_top) & (vertices[:, 1] > y_bottom))
        line_y = np.interp(vertices[:, 0], points[order, 0], points[order, 1])
        labels[inside] = np.where(vertices[inside, 1] >= line_y[inside], upper, lower)
    return labels


def _tps(src: np.ndarray, dst: np.ndarray, points: np.ndarray, smoothing: float) -> np.ndarray:
    """A 3D thin-plate spline (kernel r) taking ``src`` near ``dst``, applied to ``points``."""
    n = len(src)
    kernel = np.linalg.norm(src[:, None] - src[None], axis=-1) + smoothing * np.eye(n)
    affine = np.c_[np.ones(n), src]
    system = np.zeros((n + 4, n + 4))
    system[:n, :n], system[:n, n:], system[n:, :n] = kernel, affine, affine.T
    rhs = np.zeros((n + 4, 3))
    rhs[:n] = dst
    coeff = np.linalg.solve(system, rhs)
    out = np.empty_like(points)
    for start in range(0, len(points), 4096):
        chunk = points[start:start + 4096]
        k = np.linalg.norm(chunk[:, None] - src[None], axis=-1)
        out[start:start + 4096] = k @ coeff[:n] + np.c_[np.ones(len(chunk)), chunk] @ coeff[n:]
    return out


def closest_on_mesh(vertices: np.ndarray, triangles: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
             vertex_labels: np.ndarray, candidates: int = 12):
    """Each query's closest point on the mesh, among triangles none of whose corners has the opposite label
    (upper vs lower lip or lid): (triangle corners (Q, 3), barycentric (Q, 3), distance (Q,))."""
    from scipy.spatial import cKDTree

    opposite = {UPPER_LIP: LOWER_LIP, LOWER_LIP: UPPER_LIP, UPPER_LID: LOWER_LID, LOWER_LID: UPPER_LID}
    tri_labels = vertex_labels[triangles]
    out_tri = np.zeros((len(queries), 3), np.int64)
    out_bary = np.zeros((len(queries), 3))
    out_dist = np.full(len(queries), np.inf)
    for label in np.unique(query_labels):
        keep = ~(tri_labels == opposite.get(int(label), -1)).any(1)
        tris = triangles[keep]
        which = np.flatnonzero(query_labels == label)
        centroids = vertices[tris].mean(1)
        _, near = cKDTree(centroids).query(queries[which], k=min(candidates, len(tris)))
        best_d = np.full(len(which), np.inf)
        for j in range(near.shape[1]):
            corner = vertices[tris[near[:, j]]]
            point, bary = _point_on_triangle(queries[which], corner)
            d = np.linalg.norm(point - queries[which], axis=1)
            better = d < best_d
            best_d[better] = d[better]
            out_tri[which[better]] = tris[near[better, j]]
            out_bary[which[better]] = bary[better]
        out_dist[which] = best_d
    return out_tri, out_bary, out_dist


def _point_on_triangle(p: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closest point of each triangle (N, 3, 3) to each point (N, 3), and its barycentric coordinates."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac = b - a, c - a
    normal = np.cross(ab, ac)
    area = np.maximum((normal**2).sum(1), 1e-18)
    q = p - ((p - a) * normal).sum(1, keepdims=True) * normal / area[:, None]  # onto the plane
    bary = np.stack([(np.cross(b - q, c - q) * normal).sum(1), (np.cross(c - q, a - q) * normal).sum(1),
                     (np.cross(a - q, b - q) * normal).sum(1)], 1) / area[:, None]
    inside = (bary >= 0).all(1)
    if not inside.all():  # outside the triangle: the closest of its three edges
        best = np.full(len(p), np.inf)
        result = np.zeros((len(p), 3))
        for i, j in ((0, 1), (1, 2), (2, 0)):
            u, v = tri[:, i], tri[:, j]
            t = np.clip(((p - u) * (v - u)).sum(1) / np.maximum(((v - u) ** 2).sum(1), 1e-18), 0, 1)
            d = np.linalg.norm(u + t[:, None] * (v - u) - p, axis=1)
            better = (d < best) & ~inside
            best[better] = d[better]
            result[better] = 0.0
            result[better, i] = 1 - t[better]
            result[better, j] = t[better]
        bary = np.where(inside[:, None], bary, result)
    point = np.einsum("nk,nkc->nc", bary, tri)
    return point, bary
