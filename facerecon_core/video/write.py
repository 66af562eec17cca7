"""The outputs of ``facerecon track``: ``NAME.csv`` (Live Link Face's layout), ``NAME.glb`` (the face or head
with the performance as an animation: morph-target weights and head rotation keyframes) and ``NAME.npz``
(the reference reconstruction's arrays and every per-frame value, ``track_*``). Each written atomically; on a
failure the files written so far are removed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.video.livelink import write_csv
from facerecon_core.video.track import FaceTrack

FORMATS = ("csv", "glb", "npz")


def rotations(angles: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions (x, y, z, w) of the head poses (T, 3) (pitch, yaw, roll; the face model's frame into the
    camera's, as ``FaceReconstruction.angles``)."""
    from facerecon_core.pose import euler_to_matrix

    out = np.empty((len(angles), 4))
    for t, a in enumerate(np.asarray(angles, np.float64)):
        m = euler_to_matrix(a)
        w = np.sqrt(max(1.0 + np.trace(m), 1e-12)) / 2.0
        out[t] = [(m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def track_arrays(track: FaceTrack) -> dict[str, np.ndarray]:
    """Every per-frame value as ``track_*`` arrays (loadable without pickle)."""
    return {
        "track_video": np.array(str(track.video.path), np.str_), "track_fps": np.float64(track.video.fps),
        "track_frame_size": np.array([track.video.width, track.video.height]),
        "track_frame_index": track.frame_index, "track_times": track.times, "track_has_face": track.has_face,
        "track_detected": track.detected, "track_confidence": track.confidence,
        "track_arkit_names": np.array(track.arkit_names, np.str_), "track_weights_raw": track.weights_raw,
        "track_weights": track.weights, "track_angles_raw": track.angles_raw, "track_angles": track.angles,
        "track_translation": track.translation, "track_landmarks": track.landmarks,
        "track_best_frame": np.int64(track.best_frame),
        "track_timing_stages": np.array(list(track.timings), np.str_),
        "track_timing_values": np.array(list(track.timings.values()), np.float64),
    }


def write_track(track: FaceTrack, outdir: str | os.PathLike, name: str | None = None,
                formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``outdir/NAME.{csv,glb,npz}`` (NAME: the track's); returns the paths."""
    from facerecon_core.export.gltf import animate, encode_glb, glb_document
    from facerecon_core.io.atomic import atomic_save_npz, atomic_write_bytes

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown track format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    name = name or track.name
    if not name or Path(name).name != name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    base = Path(outdir) / name
    Path(outdir).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if "csv" in formats:
            written.append(write_csv(base.with_suffix(".csv"), track.times, track.video.fps, track.arkit_names,
                                     track.weights, track.angles))
        if "glb" in formats:
            doc, data = glb_document(track.reference)
            targets = doc["meshes"][0]["extras"]["targetNames"]
            weights = np.zeros((track.n_frames, len(targets)), np.float32)
            for i, key in enumerate(track.arkit_names):
                if key in targets:
                    weights[:, targets.index(key)] = track.weights[:, i]
            doc, data = animate(doc, data, track.times, weights, rotations(track.angles))
            written.append(atomic_write_bytes(base.with_suffix(".glb"), encode_glb(doc, data)))
        if "npz" in formats:
            arrays = {**track.reference.to_arrays(), **track_arrays(track)}
            written.append(atomic_save_npz(base.with_suffix(".npz"), arrays))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
