"""The head suite (``facerecon eval --suite head``): how well the whole head (``mesh="head"``) sits on the face.

- **Face area**: the distance of the head's face region (where ICT's face lies on ours, facing as it does) from
  the face it was built around (point to surface), mean and 95th percentile, mm.
- **Intersections**: triangle pairs that cross, eyeballs against the lids (at rest and with both ``eyeBlink*`` at
  1) and teeth against the lips (mouth closed, and ``jawOpen`` at 1), beyond as many as ICT's own head has in
  the same state (its lids' inner sides cut into its eyeballs by design); 0 is the bar.
- **Build time** per face (ms).

On synthetic faces (random identities of the face model, their true shape) and on photos (our reconstructions).
"""

from __future__ import annotations

import time

import numpy as np

EYE_RADIUS_MM = 22.0  # the lid triangles checked against an eyeball lie this close to its centre
MOUTH_RADIUS_MM = 35.0  # the lip triangles checked against the teeth lie this close to the mouth's centre
HEAD_PHOTOS = ("3ddfa/samples__emma_input.jpg", "photometric_ffhq/00001.png", "taiwan_expr_faces/0101a02.jpg",
               "jaffe/KA.HA2.30.tiff", "yalefaces/subject01.leftlight.gif", "prnet_aflw2000/image00251.jpg",
               "3ddfa/samples__test1.jpg", "taiwan_expr_faces/0111g04.jpg")
"""Photos of different people, poses, expressions and light (a greyscale one, a near-profile, an open mouth)."""
STATES = {"rest": {}, "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, "jaw open": {"jawOpen": 1.0}}


# ------------------------------------------------------------------------------------------ intersections
def crossing_pairs(vertices: np.ndarray, tris_a: np.ndarray, tris_b: np.ndarray, eps: float = 1e-9) -> set:
    """The (a, b) triangle pairs (indices into ``tris_a``, ``tris_b``; no shared vertex) that cross: an edge of
    one passes through the other (Möller–Trumbore, touching at an end not counted)."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, np.float64)
    if not len(tris_a) or not len(tris_b):
        return set()
    ca, cb = v[tris_a].mean(1), v[tris_b].mean(1)
    ra = np.linalg.norm(v[tris_a] - ca[:, None], axis=2).max()
    rb = np.linalg.norm(v[tris_b] - cb[:, None], axis=2).max()
    pairs = cKDTree(ca).query_ball_tree(cKDTree(cb), r=ra + rb)
    ia = np.repeat(np.arange(len(tris_a)), [len(p) for p in pairs])
    ib = np.fromiter((j for p in pairs for j in p), np.int64, count=len(ia))
    if not len(ia):
        return set()
    shared = (tris_a[ia][:, :, None] == tris_b[ib][:, None, :]).any((1, 2))
    ia, ib = ia[~shared], ib[~shared]
    ta, tb = tris_a[ia], tris_b[ib]
    hit = np.zeros(len(ta), bool)
    for first, second in ((ta, tb), (tb, ta)):
        for i, j in ((0, 1), (1, 2), (2, 0)):
            hit |= _segment_hits(v[first[:, i]], v[first[:, j]], v[second], eps)
    return set(zip(ia[hit].tolist(), ib[hit].tolist()))


def _segment_hits(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray, eps: float) -> np.ndarray:
    d = p1 - p0
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    h = np.cross(d, e2)
    a = (e1 * h).sum(1)
    ok = np.abs(a) > eps
    f = np.where(ok, 1.0 / np.where(ok, a, 1.0), 0.0)
    s = p0 - tri[:, 0]
    u = f * (s * h).sum(1)
    q = np.cross(s, e1)
    w = f * (d * q).sum(1)
    t = f * (e2 * q).sum(1)
    return ok & (u > eps) & (w > eps) & (u + w < 1 - eps) & (t > eps) & (t < 1 - eps)


def intersections(head, rig) -> dict[str, int]:
    """Crossing triangle pairs of ``head`` (a :class:`~facerecon_core.head.mesh.HeadMesh`) beyond as many as ICT's own
    head has (``rig.ict_head`` with ICT's keys: its lids' inner sides cut into its eyeballs by design, more so
    as they close) in each of :data:`STATES`: eyeballs against the lids (``"eyes rest"``, …), teeth against the
    lips (``"teeth rest"``, …); and ICT's own counts (``"eyes rest, ICT"``, …)."""
    tris = head.triangles
    part = np.full(head.n_vertices, "", object)
    for name, (lo, hi) in zip(head.part_names, head.part_ranges):
        part[lo:hi + 1] = str(name)
    first = part[tris[:, 0]]
    eyeballs = tris[(first == "eyeball_left") | (first == "eyeball_right")]
    teeth = tris[first == "teeth"]
    face = tris[first == "face"]
    arkit = [str(n) for n in rig.arkit_names]
    out = {}
    for state, keys in STATES.items():
        weights = np.zeros(len(head.key_names), np.float32)
        reference = rig.ict_head.astype(np.float64).copy()
        for key, value in keys.items():
            weights[head.key_names.index(key)] = value
            reference += value * rig.arkit_deltas[arkit.index(key)].astype(np.float64)
        ours = head.expressive(weights).astype(np.float64)
        for label, inner, radius in (("eyes", eyeballs, EYE_RADIUS_MM), ("teeth", teeth, MOUTH_RADIUS_MM)):
            centres = ([ours[head.part(p)].mean(0) for p in ("eyeball_left", "eyeball_right")] if label == "eyes"
                       else [ours[teeth].reshape(-1, 3).mean(0)])
            near = np.zeros(len(face), bool)
            for c in centres:
                near |= np.linalg.norm(ours[face].mean(1) - c, axis=1) < radius
            own = len(crossing_pairs(reference, inner, face[near]))
            out[f"{label} {state}"] = max(len(crossing_pairs(ours, inner, face[near])) - own, 0)
            out[f"{label} {state}, ICT"] = own
    return out


# -------------------------------------------------------------------------------------------- face area
def face_area_distance(head_vertices: np.ndarray, rig, face_vertices: np.ndarray, triangles: np.ndarray):
    """(mean, 95th percentile) mm: the head's face region (``rig.face_region``: where its face lies on ours,
    including the folds left to the extension) against the face's surface (``face_vertices``, ``triangles``)."""
    from facerecon_core.facemodel.arkit import closest_on_mesh

    ids = np.flatnonzero(rig.face_region)
    points = np.asarray(head_vertices, np.float64)[ids]
    _, _, distance = closest_on_mesh(np.asarray(face_vertices, np.float64), np.asarray(triangles, np.int64), points,
                                     np.zeros(len(points), np.int64), np.zeros(len(face_vertices), np.int64))
    return float(distance.mean()), float(np.percentile(distance, 95))


# ------------------------------------------------------------------------------------------------ suite
def head_suite(ours, model, rig, photos: list, *, synthetic: int = 12, seed: int = 0, verbose: bool = True) -> dict:
    """The measures on ``synthetic`` random faces of ``model`` and on ``photos`` reconstructed by ``ours`` (an
    :class:`~facerecon_core.eval.peers.OursPeer`, or None for the synthetic faces alone)."""
    from facerecon_core.export.blender import sample_reconstruction
    from facerecon_core.head.build import build_head

    rng = np.random.default_rng(seed)
    rows = {"synthetic": [], "photos": []}
    for _ in range(synthetic):
        rec = sample_reconstruction(model, exp_coeff=np.zeros(model.n_exp, np.float32))
        rec.identity_vertices = model.vertices(rng.standard_normal(model.n_id).astype(np.float32))
        rows["synthetic"].append(_measure(rig, rec, build_head, model))
    if ours is not None and photos:
        from facerecon_core.pipeline import Reconstructor

        reconstructor = Reconstructor(ours.bundle, facemodel=model, mesh="face", texture_size=512)
        for photo in photos:
            try:
                rec = reconstructor.reconstruct(str(photo))[0]
            except Exception as exc:  # a photo without a face is left out, named
                if verbose:
                    print(f"head suite: {photo}: {exc}")
                continue
            rows["photos"].append(_measure(rig, rec, build_head, model))
            if verbose:
                print(f"head suite: {photo.name}: {rows['photos'][-1]}")
    return {name: _summary(r) for name, r in rows.items() if r}


def _measure(rig, rec, build_head, model) -> dict:
    t = time.perf_counter()
    head = build_head(rig, rec)
    ms = 1000.0 * (time.perf_counter() - t)
    mean, p95 = face_area_distance(head.vertices, rig, rec.identity_vertices, model.triangles)
    return {"face_mean_mm": mean, "face_p95_mm": p95, "build_ms": ms, **intersections(head, rig)}


def _summary(rows: list[dict]) -> dict:
    """Medians of the distances and times; the most crossings of any face and how many faces have any."""
    out = {"count": len(rows)}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], np.float64)
        if key.startswith(("eyes", "teeth")):
            out[key] = float(values.max())
            out[key + " faces"] = int((values > 0).sum())
        else:
            out[key] = float(np.median(values))
            out[key + " max"] = float(values.max())
    return out
