"""Measures of ``facerecon track`` (``facerecon eval --suite video``).

- **Jitter**: the mean frame-to-frame acceleration of the face's vertices (mm / frame², the identity with the ARKit
  weights' expression, posed), on a real video, with and without the smoothing.
- **Lag**: frames until the smoothed value of a synthetic 0 → 1 step reaches half of it.
- **Synthetic video**: a face of the face model animated by known ARKit weights and head turns over a moving
  background, rendered to a video and tracked: weight MAE, pose error (degrees), and the identity's error
  (point-to-plane, mm) beside the single-photo pipeline's on the video's middle frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerecon_core.video.smooth import SmoothConfig, one_euro

JITTER_STRIDE = 7  # every 7th vertex of the face (the measure needs no more)
SMOOTHING_GRID = {"min_cutoff": (0.5, 1.0, 1.5, 2.5, 4.0), "beta": (0.0, 0.2, 0.5, 1.0, 2.0)}


def posed_faces(model, identity: np.ndarray, weights: np.ndarray, angles: np.ndarray,
                stride: int = JITTER_STRIDE) -> np.ndarray:
    """(T, V', 3) the face (every ``stride``-th vertex) with each frame's weights (T, K) and pose (T, 3)."""
    from facerecon_core.pose import euler_to_matrix

    keys = model.arkit_basis[:, ::stride]
    base = np.asarray(identity, np.float64)[::stride]
    out = np.empty((len(weights), len(base), 3))
    for t, (w, a) in enumerate(zip(weights, angles)):
        out[t] = (base + np.tensordot(w, keys, axes=(0, 0))) @ euler_to_matrix(a).T
    return out


def jitter(faces: np.ndarray) -> float:
    """Mean |second difference| of the vertices over frames (mm / frame²)."""
    return float(np.linalg.norm(faces[2:] - 2 * faces[1:-1] + faces[:-2], axis=2).mean())


def step_lag(config: SmoothConfig, fps: float = 30.0, frames: int = 20) -> int:
    """Frames after a 0 → 1 step until the filtered value reaches 0.5."""
    times = np.arange(frames) / fps
    values = (np.arange(frames) >= frames // 2).astype(np.float64)[:, None]
    out = one_euro(values, times, config)[:, 0]
    return int(np.argmax(out[frames // 2:] >= 0.5))


def smoothing_table(model, track, grid: dict = SMOOTHING_GRID) -> list[dict]:
    """Jitter (against the raw values) and step lag of each (min_cutoff, beta) of ``grid`` on ``track``'s raw
    per-frame values (frames with a face)."""
    from facerecon_core.video.smooth import fill_gaps

    has = track.has_face
    weights = fill_gaps(np.nan_to_num(track.weights_raw), has)
    angles = fill_gaps(np.nan_to_num(track.angles_raw), has)
    identity = track.reference.identity_vertices
    raw = jitter(posed_faces(model, identity, weights, angles))
    rows = []
    for cutoff in grid["min_cutoff"]:
        for beta in grid["beta"]:
            config = SmoothConfig(cutoff, beta)
            smooth = jitter(posed_faces(model, identity, np.clip(one_euro(weights, track.times, config), 0, 1),
                                        one_euro(angles, track.times, config)))
            rows.append({"min_cutoff": cutoff, "beta": beta, "jitter_mm": smooth, "raw_jitter_mm": raw,
                         "reduction": raw / max(smooth, 1e-12), "lag_frames": step_lag(config, track.video.fps)})
    return rows


def choose(rows: list[dict], max_lag: int = 1) -> dict:
    """The row with the largest jitter reduction among those lagging at most ``max_lag`` frames (a blink lasts
    about five frames at 30 fps: a filter lagging more cuts it)."""
    fast = [r for r in rows if r["lag_frames"] <= max_lag]
    return max(fast, key=lambda r: r["reduction"])


def render_synthetic_video(model, path: Path, frames: int = 60, seed: int = 0, size: tuple[int, int] = (1280, 720),
                           fps: float = 30.0, background: np.ndarray | None = None) -> dict:
    """Write a video of a random face of ``model`` whose ARKit weights and head pose change over time (smooth
    curves through the basic emotions' presets), over ``background`` panning sideways; return the truth:
    ``identity`` (V, 3), ``weights`` (T, K), ``angles`` (T, 3)."""
    import cv2

    from facerecon_core.datasets.expressions import ARKIT_PRESETS
    from facerecon_core.facemodel.preview import frontal_light
    from facerecon_core.pose import euler_to_matrix
    from facerecon_core.render.camera import PerspectiveCamera
    from facerecon_core.render.numpy_render import render_mesh_numpy

    rng = np.random.default_rng(seed)
    names = [str(n) for n in model.arkit_names]
    identity = model.vertices(np.clip(rng.standard_normal(model.n_id), -2, 2).astype(np.float32)).astype(np.float64)
    presets = list(ARKIT_PRESETS.values())
    keyframes = [np.zeros(len(names))] + [_preset(names, presets[rng.integers(len(presets))]) for _ in range(3)]
    t = np.linspace(0, len(keyframes) - 1, frames)
    weights = np.stack([np.interp(t, np.arange(len(keyframes)), [k[i] for k in keyframes]) for i in range(len(names))], 1)
    phase = np.linspace(0, 2 * np.pi, frames)
    angles = np.stack([np.radians(8) * np.sin(phase), np.radians(25) * np.sin(phase + 1.0),
                       np.radians(5) * np.sin(2 * phase)], 1)
    width, height = size
    focal = 1.2 * width
    camera = PerspectiveCamera(focal, width, height, near=10.0, far=1e5)
    albedo = np.clip(model.albedo_mean, 0, 1)
    sh = frontal_light(ambient=0.8, diffuse=0.35, direction=(-0.3, 0.4, 1.0)).astype(np.float32)
    if background is None:
        background = rng.uniform(0.2, 0.8, (height // 48, (width + frames * 4) // 48, 3)).astype(np.float32)
        background = cv2.resize(background, (width + frames * 4, height), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write mp4 here")
    try:
        for f in range(frames):
            verts = identity + np.tensordot(weights[f], model.arkit_basis, axes=(0, 0))
            # the face about 40 % of the frame's height (150 mm), sliding sideways
            cam = verts @ euler_to_matrix(angles[f]).T + [30.0 * np.sin(phase[f]), 0.0, -focal * 150.0 / (0.4 * height)]
            shift = 4 * f
            image, _ = render_mesh_numpy(cam.astype(np.float32), model.triangles, camera, vertex_colors=albedo, sh=sh,
                                         background=background[:, shift:shift + width])
            frame = (np.clip(image[0], 0, 1) * 255 + 0.5).astype(np.uint8)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return {"identity": identity, "weights": weights, "angles": angles, "names": names}


def _preset(names: list[str], preset: dict) -> np.ndarray:
    out = np.zeros(len(names))
    for key, value in preset.items():
        if key in names:
            out[names.index(key)] = value
    return out


def synthetic_accuracy(track, truth: dict, model) -> dict:
    """Weight MAE (over keys and frames), pose error (mean absolute degrees over pitch, yaw, roll) and the tracked
    identity's point-to-plane error against the truth."""
    from facerecon_core.eval import metrics

    index = track.frame_index
    names = [n for n in track.arkit_names if n in truth["names"]]
    ours = track.weights[:, [track.arkit_names.index(n) for n in names]]
    true = truth["weights"][index][:, [truth["names"].index(n) for n in names]]
    pose = np.degrees(np.abs(np.unwrap(track.angles, axis=0) - truth["angles"][index])).mean()
    identity = metrics.geometry_error(track.reference.identity_vertices, model.triangles, truth["identity"],
                                      pred_landmarks=track.reference.identity_vertices[model.landmark_indices],
                                      gt_landmarks=truth["identity"][model.landmark_indices])
    return {"weight_mae": float(np.abs(ours - true).mean()), "pose_error_deg": float(pose),
            "identity_mm": float(identity.mean)}


REAL_VIDEO = "faces/videos/dafoe.mp4"


def video_suite(ours, model, shared: Path, out_dir: Path, *, frames: int = 60, seed: int = 0,
                real_frames: int | None = None, verbose: bool = True) -> dict:
    """The real video's jitter (raw, with the default smoothing, and the grid behind the default; its first
    ``real_frames``, default all) and the synthetic video's accuracy (``frames``) beside the single-photo pipeline,
    with ``ours`` (an OursPeer)."""
    from facerecon_core.pipeline import Reconstructor
    from facerecon_core.video.reader import read_frame
    from facerecon_core.video.track import TrackConfig, track_video

    reconstructor = Reconstructor(ours.bundle, facemodel=model, texture_size=256)
    out: dict = {}
    real = shared / REAL_VIDEO
    if real.is_file():
        track = track_video(reconstructor, real, TrackConfig(max_frames=real_frames))
        rows = smoothing_table(model, track)
        default = SmoothConfig()
        smoothed = jitter(posed_faces(model, track.reference.identity_vertices, track.weights, track.angles))
        out["real"] = {"video": REAL_VIDEO, "frames": track.n_frames, "detections": int(track.detected.sum()),
                       "without_face": int((~track.has_face).sum()), "frames_per_s": track.timings["frames_per_s"],
                       "stage_ms": {k: v for k, v in track.timings.items() if k.endswith("_ms")},
                       "raw_jitter_mm": rows[0]["raw_jitter_mm"], "jitter_mm": smoothed,
                       "reduction": rows[0]["raw_jitter_mm"] / max(smoothed, 1e-12),
                       "lag_frames": step_lag(default, track.video.fps),
                       "default": [default.min_cutoff, default.beta], "grid": rows, "best": choose(rows)}
        if verbose:
            print(f"video suite: {REAL_VIDEO}: jitter {out['real']['raw_jitter_mm']:.3f} → {smoothed:.3f} mm/frame²")
    path = out_dir / "synthetic_video.mp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = render_synthetic_video(model, path, frames=frames, seed=seed)
    track = track_video(reconstructor, path, TrackConfig())
    row = synthetic_accuracy(track, truth, model)
    middle = frames // 2
    single = reconstructor.reconstruct(read_frame(path, middle))[0]
    from facerecon_core.eval import metrics

    row["single_photo_identity_mm"] = float(metrics.geometry_error(
        single.identity_vertices, model.triangles, truth["identity"],
        pred_landmarks=single.identity_vertices[model.landmark_indices],
        gt_landmarks=truth["identity"][model.landmark_indices]).mean)
    row.update(frames=frames, seed=seed, frames_per_s=track.timings["frames_per_s"])
    out["synthetic"] = row
    if verbose:
        print(f"video suite: synthetic video: {row}")
    return out
