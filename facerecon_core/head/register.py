"""Building the :class:`~facerecon_core.head.rig.HeadRig` from the ICT Face Model and our face model (scipy).

1. The ICT head is aligned to our mean face (a similarity on the inner landmarks) and its face warped onto it
   (:func:`facerecon_core.facemodel.arkit.warp_ict`, the ARKit keys' registration). ICT skin vertices whose
   warped position lies within :data:`FACE_DISTANCE_MM` of our surface, facing as it does and not at its rim,
   form the face area: each takes a point of one of our triangles (barycentric coordinates).
2. The base head: ICT's neutral head with its face area on our mean face, the difference carried smoothly over
   the rest (:func:`facerecon_core.head.shape.extend`).
3. ICT's first :data:`IDENTITY_COMPONENTS` identity components (our frame) and their ridge least-squares fit to
   a face-area displacement; the screened Laplacian that extends what the fit leaves; the interior parts'
   skin neighbours; ARKit's 51 keys from ICT's 53 expressions (as the face model's keys are made).
4. Texel maps for the per-photo textures: our face UV under each skin texel (the face area's points,
   interpolated), how much of the face texture shows there, and each eye texel's angle from the gaze axis.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from facerecon_core.facemodel import arkit
from facerecon_core.head import rig as head_rig

FACE_DISTANCE_MM = 6.0  # an ICT face vertex this close to our surface once warped onto it takes its closest point
FACING_COS = 0.5  # … and only where the two surfaces face the same way (not the lips' inner sides)
MAX_PAIR_MM = 6.0  # the warp's closest-point pairs: only those this close
PROJECTION_ROUNDS, SMOOTHING_STEPS = 3, 10  # closest points, their offsets smoothed over ICT's skin, again
IDENTITY_COMPONENTS = 30  # ICT's first (largest) identity components fitted to the face
RIDGE = 0.05  # the identity fit's ridge, × the mean diagonal of AᵀA
SCREENING = 0.03  # ε of the extension (L + εI): decays over about 1/√ε ≈ 6 edges
EYE_BAND_MM = 9.0  # the lids within this of the eye contour keep ICT's shape about its eyeballs
LIP_BAND_MM = 4.0  # the lips within this of the inner lip contour keep ICT's shape about its teeth
LIP_CLEARANCE_BAND_MM = 8.0  # the lip vertices kept in front of the teeth: this close to the inner lip contour
MOUTH_RIM_MM = 25.0  # our face's inner rim (the mouth's opening) lies within this of the mouth landmarks
RIM_MARGIN_MM = 10.0  # the face area keeps this far from our face's outer rim
TEXTURE_FADE_MM = 20.0  # the face texture fades in over this from the edge of where our face lies
FOLD_COS, FOLD_STRETCH, FOLD_ROUNDS = 0.5, 2.5, 6  # a triangle turned or stretched this much folds
INTERIOR_NEIGHBOURS = 6
SKIN_PARTS = ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right")
DROPPED_PARTS = ("lacrimal_left", "lacrimal_right", "eye_blend_left", "eye_blend_right", "eye_occlusion_left",
                 "eye_occlusion_right")
PART_MATERIAL = {"face": head_rig.SKIN, "head_neck": head_rig.SKIN, "mouth_socket": head_rig.SKIN,
                 "eye_socket_left": head_rig.SKIN, "eye_socket_right": head_rig.SKIN,
                 "gums_tongue": head_rig.GUMS, "teeth": head_rig.TEETH, "eyeball_left": head_rig.EYES,
                 "eyeball_right": head_rig.EYES, "eyelashes_left": head_rig.EYELASHES,
                 "eyelashes_right": head_rig.EYELASHES}
MATERIAL_TILE = {head_rig.SKIN: 0.0, head_rig.EYES: 0.0, head_rig.GUMS: 2.0, head_rig.TEETH: 3.0,
                 head_rig.EYELASHES: 6.0}  # ICT's UV tile (u offset) of each material
SKIN_PART_ID = {"face": 1, "head_neck": 2, "mouth_socket": 3, "eye_socket_left": 4, "eye_socket_right": 4}
LOWER_JAW_CM = 0.5  # teeth and gums that jawOpen moves this far are the lower jaw's
BFM_NOTICE = ("The head rig's face area holds points of the Basel Face Model's mean face (non-commercial "
              "research only; see the BFM's terms).\n\n")


def load_ict_head(folder: Path) -> dict[str, np.ndarray]:
    """Every ICT array the head needs, and ``"notice"`` (raises :class:`~facerecon_core.facemodel.arkit.RigError`
    naming what is missing)."""
    data = arkit.load_ict(folder)
    path = Path(folder) / arkit.ICT_FILE
    with np.load(path, allow_pickle=False) as raw:
        more = ("face_uvs", "uvs", "identity_deltas", "part_names", "part_vertex_ranges")
        missing = [k for k in more if k not in raw.files]
        if missing:
            raise arkit.RigError(f"{path}: lacks {', '.join(missing)} (needed for the head)")
        data.update({k: raw[k] for k in more})
    return data


def build_head_rig(model, ict: dict[str, np.ndarray], texture_height: int = 1024,
                   eye_size: int = 512) -> head_rig.HeadRig:
    """The head rig of face model ``model`` from the ICT arrays ``ict`` (:func:`load_ict_head`)."""
    from scipy.spatial import cKDTree

    from facerecon_core.eval.metrics import vertex_normals
    from facerecon_core.facemodel.topology import boundary_vertices
    from facerecon_core.head import shape

    names = [str(n) for n in ict["part_names"]]
    ranges = {n: tuple(int(x) for x in r) for n, r in zip(names, ict["part_vertex_ranges"])}
    for needed in (*SKIN_PARTS, *PART_MATERIAL):
        if needed not in ranges:
            raise arkit.RigError(f"the ICT parts lack {needed}")
    keep = np.ones(len(ict["neutral"]), bool)
    for part in DROPPED_PARTS:
        if part in ranges:
            keep[ranges[part][0]:ranges[part][1] + 1] = False
    new_id = np.cumsum(keep) - 1
    kept_parts = [n for n in names if n not in DROPPED_PARTS]
    part_ranges = np.array([[new_id[ranges[n][0]], new_id[ranges[n][1]]] for n in kept_parts], np.int64)
    skin_count = int(max(new_id[ranges[p][1]] for p in SKIN_PARTS)) + 1
    if any(new_id[ranges[p][0]] >= skin_count or not keep[ranges[p][0]] for p in SKIN_PARTS) or \
            min(new_id[ranges[p][0]] for p in SKIN_PARTS) != 0:
        raise arkit.RigError("the ICT skin parts are not the first vertices")

    # polygons of the kept parts, their materials and per-material UVs
    sizes = ict["face_sizes"].astype(np.int64)
    corners, corner_uvs = ict["face_vertices"].astype(np.int64), ict["face_uvs"].astype(np.int64)
    poly = np.repeat(np.arange(len(sizes)), sizes)
    poly_kept = np.ones(len(sizes), bool)
    np.logical_and.at(poly_kept, poly, keep[corners])
    vertex_part = np.full(len(keep), -1)
    for i, n in enumerate(names):
        vertex_part[ranges[n][0]:ranges[n][1] + 1] = i
    material_of_part = np.array([PART_MATERIAL.get(n, 255) for n in names])
    poly_material = material_of_part[vertex_part[corners[np.concatenate([[0], np.cumsum(sizes)[:-1]])]]]
    corner_kept = poly_kept[poly]
    sizes, poly_material = sizes[poly_kept], poly_material[poly_kept].astype(np.uint8)
    corners, corner_uvs = new_id[corners[corner_kept]], corner_uvs[corner_kept]
    corner_material = np.repeat(poly_material, sizes)
    # one UV per (ICT UV, material), shifted into [0, 1]; the skin's two tiles side by side, u halved
    pairs, corner_uvs = np.unique(corner_uvs * 8 + corner_material, return_inverse=True)
    uv_src, uv_material = pairs // 8, pairs % 8
    uvs = ict["uvs"][uv_src].astype(np.float64)
    uvs[:, 0] -= np.array([MATERIAL_TILE[int(m)] for m in uv_material])
    uvs[uv_material == head_rig.SKIN, 0] *= 0.5
    uvs = np.clip(uvs, 0.0, 1.0).astype(np.float32)

    # alignment and the face area
    warp = arkit.warp_ict(model, ict, max_pair_mm=MAX_PAIR_MM)
    aligned = warp.aligned[keep]
    skin = np.arange(skin_count)
    warped_skin = warp.warp(aligned[skin])
    ours = model.mean_shape.astype(np.float64)
    labels_ours = arkit.lip_lid_labels(ours, ours[model.landmark_indices])
    labels_ict = arkit.ict_labels(warp.aligned, ict)[keep][skin]
    triangles_skin = _triangles_of(sizes, corners, poly_material == head_rig.SKIN)
    tri, bary, distance = _smooth_projection(ours, model.triangles, warped_skin, labels_ict, labels_ours,
                                             triangles_skin, skin_count)
    normals_ict = vertex_normals(warped_skin, triangles_skin)
    normals_ours = vertex_normals(ours, model.triangles)
    at_normal = np.einsum("vk,vkc->vc", bary, normals_ours[tri])
    facing = (normals_ict * at_normal).sum(1) / np.maximum(np.linalg.norm(at_normal, axis=1), 1e-9) > FACING_COS
    rim = np.zeros(len(ours), bool)
    rim[boundary_vertices(model.triangles)] = True
    in_face = np.zeros(skin_count, bool)
    lo, hi = new_id[ranges["face"][0]], new_id[ranges["face"][1]]
    in_face[lo:hi + 1] = True
    face_area = in_face & (distance < FACE_DISTANCE_MM) & facing & ~rim[tri].any(1)
    # and not near our face's outer rim (its sides reach the ears, where ICT's head has its own shape)
    mouth = ours[model.landmark_indices[48:68]].mean(0)
    outer_rim = rim & (np.linalg.norm(ours - mouth, axis=1) > MOUTH_RIM_MM)
    rim_distance, _ = cKDTree(ours[outer_rim]).query(ours)
    face_area &= np.einsum("vk,vk->v", bary, rim_distance[tri]) > RIM_MARGIN_MM
    # the lids around the eye openings keep ICT's shape about its eyeballs (our face model has no lid margins: a
    # skin over the eyes), moved with the face around them
    lm = warp.aligned[ict["landmark_vertices"]]
    face_area &= ~_near_contours(aligned[skin], [lm[36:42], lm[42:48]], EYE_BAND_MM)
    face_area &= ~_near_contours(aligned[skin], [lm[60:68]], LIP_BAND_MM)  # likewise the lips about the teeth
    eye_centres = np.stack([shape.sphere_centre(aligned[new_id[ranges[p][0]]:new_id[ranges[p][1]] + 1])
                            for p in ("eyeball_left", "eyeball_right")])
    lids = [np.flatnonzero(_near_contours(aligned[skin], [contour], EYE_BAND_MM))
            for contour in (lm[42:48], lm[36:42])]  # the subject's left eye first, as eyeball_left
    targets = np.einsum("vk,vkc->vc", bary, ours[tri])
    interior = np.arange(skin_count, len(aligned))
    neighbours, weights = _interior_neighbours(aligned, skin_count, interior)

    # ARKit keys and identity components in our frame
    expression_names = [str(n) for n in ict["expression_names"]]
    deltas = []
    for key in arkit.ARKIT_NAMES:
        total = sum(ict["expression_deltas"][expression_names.index(s)] for s in arkit.ict_sources(key))
        deltas.append((np.asarray(total, np.float64)[keep] * arkit.CM_TO_MM) @ warp.rotation_scale.T)
    identity = (ict["identity_deltas"][:IDENTITY_COMPONENTS, keep].astype(np.float64) * arkit.CM_TO_MM) \
        @ warp.rotation_scale.T
    lip_vertices, lip_teeth, lip_clearance = _lip_clearance(aligned, skin, lm, new_id, ranges)
    lid_vertices = np.concatenate(lids)
    lid_eye = np.repeat([0, 1], [len(lids[0]), len(lids[1])])
    lid_radius = np.linalg.norm(aligned[lid_vertices] - eye_centres[lid_eye], axis=1)
    rig = head_rig.HeadRig(
        base=aligned.astype(np.float32), poly_sizes=sizes.astype(np.int32), poly_vertices=corners.astype(np.int32),
        poly_uvs=corner_uvs.astype(np.int32), uvs=uvs, poly_material=poly_material,
        part_names=np.array(kept_parts), part_ranges=part_ranges, face_vertices=np.zeros(0, np.int64),
        face_triangles=np.zeros((0, 3), np.int32), face_barycentric=np.zeros((0, 3), np.float32),
        face_region=face_area.copy(), source_vertices=np.flatnonzero(keep), ict_head=aligned.astype(np.float32),
        identity_basis=identity.astype(np.float16), fit_matrix=np.zeros((len(identity), 0), np.float32),
        skin_count=skin_count, free_vertices=np.zeros(0, np.int64), system=(), coupling=(),
        interior_vertices=interior, interior_neighbours=neighbours, interior_weights=weights,
        rigid_group=_rigid_groups(ict, keep, new_id, ranges, interior), eye_centres=eye_centres,
        lid_vertices=lid_vertices.astype(np.int64), lid_eye=lid_eye.astype(np.int64),
        lid_radius=lid_radius.astype(np.float32), lip_vertices=lip_vertices, lip_teeth=lip_teeth,
        lip_clearance=lip_clearance,
        arkit_names=np.array(arkit.ARKIT_NAMES), arkit_deltas=np.stack(deltas).astype(np.float16),
        skin_face_uv=np.zeros((1, 2, 2), np.uint16), skin_alpha=np.zeros((1, 2), np.uint8),
        skin_part=np.zeros((1, 2), np.uint8), eye_angle=np.zeros((1, 1), np.float16),
        face_model_hash=model.content_hash, notice=BFM_NOTICE + str(ict.get("notice", "")))
    # the base head: the mean face's surface in the face area, carried smoothly over the rest; face-area
    # vertices whose triangles that folds (against ICT's own shape) are left to the extension, until none does
    for _ in range(FOLD_ROUNDS):
        rig = _with_face_area(rig, face_area, tri, bary, triangles_skin, identity)
        base = shape.displace(rig, aligned, targets[face_area] - aligned[skin][face_area])
        folded = _folded(base[:skin_count], aligned[skin], triangles_skin) & face_area
        if not folded.any():
            break
        face_area &= ~folded
    # the face texture shows where our face lies under the head (not at its outer rim), fading in from that
    # region's edge over TEXTURE_FADE_MM (hair at the forehead and temples fades into the skin tone)
    covered = in_face & (distance < FACE_DISTANCE_MM) & ~outer_rim[tri].any(1)
    depth = _depth_inside(aligned[skin], triangles_skin, covered)
    alpha = np.clip(depth / TEXTURE_FADE_MM, 0.0, 1.0)
    maps = _texel_maps(rig, model, tri, bary, alpha * alpha * (3 - 2 * alpha), vertex_part_of(rig), texture_height,
                       eye_size)
    centres = np.stack([shape.sphere_centre(base[rig.part(p)]) for p in ("eyeball_left", "eyeball_right")])
    return dataclasses.replace(rig, base=base.astype(np.float32), eye_centres=centres, **maps)


def _with_face_area(rig, face_area, tri, bary, triangles_skin, identity):
    """``rig`` with the face area ``face_area`` (skin vertices): its points, the identity fit and the extension."""
    face_vertices = np.flatnonzero(face_area)
    a = identity[:, face_vertices].reshape(len(identity), -1).T  # (3F, K)
    normal = a.T @ a
    fit_matrix = np.linalg.solve(normal + RIDGE * np.trace(normal) / len(normal) * np.eye(len(normal)), a.T)
    system, coupling, free = _extension_system(triangles_skin, rig.skin_count, face_area)
    return dataclasses.replace(rig, face_vertices=face_vertices.astype(np.int64),
                               face_triangles=tri[face_area].astype(np.int32),
                               face_barycentric=bary[face_area].astype(np.float32),
                               fit_matrix=fit_matrix.astype(np.float32), free_vertices=free, system=system,
                               coupling=coupling)


def vertex_part_of(rig: head_rig.HeadRig) -> np.ndarray:
    """(N,) the part name of every vertex."""
    out = np.empty(rig.n_vertices, object)
    for name, (lo, hi) in zip(rig.part_names, rig.part_ranges):
        out[lo:hi + 1] = str(name)
    return out


# ------------------------------------------------------------------------------------------------ pieces
def _smooth_projection(ours, our_triangles, points, labels, our_labels, triangles, n):
    """Each point's place on our surface: its closest point, the offsets to them smoothed over the ICT skin and
    projected again (:data:`PROJECTION_ROUNDS` times), so that neighbours do not land on different folds.
    Returns (our triangle (n, 3), barycentric (n, 3), distance of the point itself (n,))."""
    from facerecon_core.facemodel.topology import one_ring

    indptr, indices = one_ring(triangles, n)
    owner = np.repeat(np.arange(n), np.diff(indptr))
    counts = np.maximum(np.diff(indptr), 1)[:, None]
    offsets = np.zeros_like(points)
    for _ in range(PROJECTION_ROUNDS):
        tri, bary, _ = arkit.closest_on_mesh(ours, our_triangles.astype(np.int64), points + offsets, labels,
                                             our_labels)
        offsets = np.einsum("vk,vkc->vc", bary, ours[tri]) - points
        for _ in range(SMOOTHING_STEPS):
            sums = np.zeros_like(offsets)
            for c in range(3):
                sums[:, c] = np.bincount(owner, weights=offsets[indices, c], minlength=n)
            offsets = 0.5 * offsets + 0.5 * sums / counts
    tri, bary, _ = arkit.closest_on_mesh(ours, our_triangles.astype(np.int64), points + offsets, labels, our_labels)
    distance = np.linalg.norm(np.einsum("vk,vkc->vc", bary, ours[tri]) - points, axis=1)
    return tri, bary, distance


def _folded(targets: np.ndarray, points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(n,) the vertices of the triangles that moving ``points`` to ``targets`` folds or stretches (normal turned
    by more than :data:`FOLD_COS`, an edge more than :data:`FOLD_STRETCH` × longer or shorter), and their
    neighbours."""
    t = triangles
    before = np.cross(points[t[:, 1]] - points[t[:, 0]], points[t[:, 2]] - points[t[:, 0]])
    after = np.cross(targets[t[:, 1]] - targets[t[:, 0]], targets[t[:, 2]] - targets[t[:, 0]])
    cos = (before * after).sum(1) / np.maximum(np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1), 1e-12)
    bad = cos < FOLD_COS
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ratio = np.linalg.norm(targets[t[:, a]] - targets[t[:, b]], axis=1) / np.maximum(
            np.linalg.norm(points[t[:, a]] - points[t[:, b]], axis=1), 1e-9)
        bad |= (ratio > FOLD_STRETCH) | (ratio < 1.0 / FOLD_STRETCH)
    out = np.zeros(len(points), bool)
    out[t[bad].reshape(-1)] = True
    grown = triangles[out[triangles].any(1)]  # and one ring around them
    out[grown.reshape(-1)] = True
    return out


def _lip_clearance(aligned, skin, lm, new_id, ranges):
    """The lip vertices near the mouth opening that lie in front of a tooth on ICT's own head, that tooth (its
    nearest vertex) and their distance in z."""
    from scipy.spatial import cKDTree

    teeth = np.arange(new_id[ranges["teeth"][0]], new_id[ranges["teeth"][1]] + 1)
    lips = np.flatnonzero(_near_contours(aligned[skin], [lm[60:68]], LIP_CLEARANCE_BAND_MM))
    _, nearest = cKDTree(aligned[teeth]).query(aligned[lips])
    clearance = aligned[lips, 2] - aligned[teeth[nearest], 2]
    front = clearance > 0
    return lips[front].astype(np.int64), teeth[nearest[front]].astype(np.int64), clearance[front].astype(np.float32)


def _near_contours(points: np.ndarray, contours: list[np.ndarray], band: float) -> np.ndarray:
    """(n,) whether each point lies within ``band`` mm of one of the closed polylines ``contours``."""
    out = np.zeros(len(points), bool)
    for contour in contours:
        for a, b in zip(contour, np.roll(contour, -1, axis=0)):
            t = np.clip(((points - a) @ (b - a)) / max(float((b - a) @ (b - a)), 1e-12), 0.0, 1.0)
            out |= np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1) < band
    return out


def _triangles_of(sizes: np.ndarray, corners: np.ndarray, which: np.ndarray) -> np.ndarray:
    tris = head_rig.triangulate(sizes, corners)
    return tris[np.repeat(which, sizes - 2)]


def _extension_system(triangles: np.ndarray, n: int, fixed: np.ndarray):
    import scipy.sparse as sp

    t = np.asarray(triangles, np.int64)
    i = np.concatenate([t[:, 0], t[:, 1], t[:, 2]])
    j = np.concatenate([t[:, 1], t[:, 2], t[:, 0]])
    adjacency = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    laplacian = sp.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency
    free = np.flatnonzero(~fixed)
    face = np.flatnonzero(fixed)
    system = (laplacian[free][:, free] + SCREENING * sp.identity(len(free))).tocsr()
    coupling = (-laplacian[free][:, face]).tocsr()
    system.sort_indices()
    coupling.sort_indices()
    return ((system.indptr.astype(np.int64), system.indices.astype(np.int64), system.data),
            (coupling.indptr.astype(np.int64), coupling.indices.astype(np.int64), coupling.data), free)


def _interior_neighbours(aligned: np.ndarray, skin_count: int, interior: np.ndarray):
    from scipy.spatial import cKDTree

    distance, index = cKDTree(aligned[:skin_count]).query(aligned[interior], k=INTERIOR_NEIGHBOURS)
    weights = 1.0 / np.maximum(distance, 1e-3) ** 2
    return index.astype(np.int64), (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def _rigid_groups(ict, keep, new_id, ranges, interior) -> np.ndarray:
    """Eyeballs (0 left, 1 right), the upper jaw's teeth and gums (2) and the lower jaw's with the tongue (3)
    move as wholes; the eyelashes (−1) follow the lids."""
    groups = np.full(len(interior), -1, np.int64)
    offset = interior[0]
    for group, part in ((0, "eyeball_left"), (1, "eyeball_right")):
        lo, hi = ranges[part]
        groups[new_id[lo] - offset:new_id[hi] - offset + 1] = group
    jaw = np.linalg.norm(ict["expression_deltas"][[str(n) for n in ict["expression_names"]].index("jawOpen")], axis=1)
    for part in ("teeth", "gums_tongue"):
        lo, hi = ranges[part]
        ids = np.arange(lo, hi + 1)
        groups[new_id[ids] - offset] = np.where(jaw[ids] > LOWER_JAW_CM, 3, 2)
    return groups


def _depth_inside(vertices: np.ndarray, triangles: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(n,) the distance (mm, along the mesh's edges) of each ``region`` vertex from the region's edge; 0 outside."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    t = np.asarray(triangles, np.int64)
    i = np.concatenate([t[:, 0], t[:, 1], t[:, 2]])
    j = np.concatenate([t[:, 1], t[:, 2], t[:, 0]])
    length = np.linalg.norm(vertices[i] - vertices[j], axis=1)
    graph = sp.coo_matrix((length, (i, j)), shape=(len(vertices),) * 2).tocsr()
    graph = graph.maximum(graph.T)
    edge = np.unique(np.concatenate([i[region[i] & ~region[j]], j[region[j] & ~region[i]]]))
    if not len(edge):
        return np.where(region, np.inf, 0.0)
    depth = dijkstra(graph, indices=edge, min_only=True)
    return np.where(region, depth, 0.0)


def _texel_maps(rig, model, tri, bary, face_share, part_of, height: int, eye_size: int) -> dict[str, np.ndarray]:
    """The skin texture's per-texel face UV, face share and part; the eye texture's angle from the gaze."""
    from facerecon_core.facemodel.uvmap import UVRaster

    uv_vertex = np.zeros(len(rig.uvs), np.int64)
    uv_vertex[rig.poly_uvs] = rig.poly_vertices
    uv_tris = head_rig.triangulate(rig.poly_sizes, rig.poly_uvs)
    tri_material = np.repeat(rig.poly_material, rig.poly_sizes - 2)

    # skin: our face's UV at every skin vertex (its closest point on our mean face), the face share
    face_uv = np.zeros((rig.n_vertices, 2))
    face_uv[: rig.skin_count] = np.einsum("vk,vkc->vc", bary, model.uv.astype(np.float64)[tri])
    alpha = np.zeros(rig.n_vertices)
    alpha[: rig.skin_count] = face_share
    part_id = np.array([SKIN_PART_ID.get(p, 0) for p in part_of], np.float64)
    skin_raster = UVRaster.build(rig.uvs, uv_tris[tri_material == head_rig.SKIN], (height, 2 * height))
    attr = np.c_[face_uv, alpha, part_id][uv_vertex]
    values = np.einsum("hwk,hwkc->hwc", skin_raster.weights, attr[skin_raster.corners])
    flat = values.reshape(-1, 4)[skin_raster.fill_index].reshape(values.shape)
    # eyes: the left eyeball's texels, by the angle of their point from its gaze axis (+z)
    lo, hi = rig.part_ranges[[str(n) for n in rig.part_names].index("eyeball_left")]
    direction = rig.base[lo:hi + 1].astype(np.float64) - rig.eye_centres[0]
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    angle = np.zeros(rig.n_vertices)
    angle[lo:hi + 1] = np.degrees(np.arccos(np.clip(direction[:, 2], -1.0, 1.0)))
    left = (tri_material == head_rig.EYES) & (uv_vertex[uv_tris] >= lo).all(1) & (uv_vertex[uv_tris] <= hi).all(1)
    eye_raster = UVRaster.build(rig.uvs, uv_tris[left], (eye_size, eye_size))
    eye = np.einsum("hwk,hwk->hw", eye_raster.weights, angle[uv_vertex][eye_raster.corners])
    eye = eye.reshape(-1)[eye_raster.fill_index].reshape(eye.shape)
    shows = (flat[..., 2:3] * 255 >= 0.5)  # the face UV only where the face texture shows (compresses)
    return {"skin_face_uv": np.where(shows, np.round(np.clip(flat[..., :2], 0, 1) * 65535), 0).astype(np.uint16),
            "skin_alpha": np.round(np.clip(flat[..., 2], 0, 1) * 255).astype(np.uint8),
            "skin_part": np.round(flat[..., 3]).astype(np.uint8),
            "eye_angle": eye.astype(np.float16)}
