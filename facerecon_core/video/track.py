"""Following a face through a video and reconstructing it frame by frame (``facerecon track``).

Tracking mode: the first frame's face is found by the detector; every later frame is cropped around the
landmarks the network predicted in the frame before (3DDFA_V2's crop), and the network runs once on it
(no mirror or shift averaging, no texture stream). The detector runs again only when the face is lost: the crop no
longer looks like the last frame's face (a 24² thumbnail's correlation under ``min_likeness``: the face left or
something covers it), the prediction leaves the frame, or its crop moves by more than ``lost_shift`` of its side
from the crop it came from (the face moved faster than the tracker). Frames without a face are marked and their values
interpolated from their neighbours afterwards (held at the ends), never invented silently.

One identity: the identities of up to ``identity_frames`` frames spread over the video (kept as a reservoir,
constant memory) combined robustly as for several photos (:func:`~facerecon_core.pipeline.same_person.combine_identities`).
The texture and light come from the best frame of each fifth of the video (frontal, confident, least expression),
reconstructed in full and joined as for several photos of one person.
Per frame: the ARKit weights of the expression, the head pose; both smoothed over time (:mod:`.smooth`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facerecon_core.video.reader import VideoInfo, frames, open_video, read_frame
from facerecon_core.video.smooth import SmoothConfig, fill_gaps, one_euro

Progress = Callable[[int, int], object]  # (frames done, frames expected); False cancels
TEXTURE_FRAMES = 5  # frames whose textures are joined (the best of each fifth of the video)
NEUTRAL_MM = 1.5  # the expression RMS (mm) at which a frame's texture score falls to 1/e


class TrackCancelled(RuntimeError):
    """The progress callback asked to stop."""


@dataclass(frozen=True)
class TrackConfig:
    every: int = 1  # every K-th frame
    max_frames: int | None = None  # at most N frames
    smooth: SmoothConfig | None = SmoothConfig()  # None: the raw per-frame values
    lost_shift: float = 0.2  # a crop moving more than this × its side from the one it came from: face lost
    min_likeness: float = 0.5  # the crop must look this much like the last frame's face (correlation): else lost
    identity_frames: int = 32  # frames whose identities are combined (spread over the video)

    def check(self) -> None:
        if self.every < 1:
            raise ValueError(f"--every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.smooth is not None:
            self.smooth.check()


@dataclass
class FaceTrack:
    """One face through a video: per-frame values (T frames) and the reconstruction they animate."""

    name: str
    video: VideoInfo
    frame_index: np.ndarray  # (T,) int: the video frame of each row
    times: np.ndarray  # (T,) seconds
    has_face: np.ndarray  # (T,) bool: a face was reconstructed in this frame (else the values are interpolated)
    detected: np.ndarray  # (T,) bool: the detector ran on this frame (first frame, face lost)
    confidence: np.ndarray  # (T,) in [0, 1]
    arkit_names: list[str]
    weights_raw: np.ndarray  # (T, K) the per-frame ARKit weights as solved (NaN without a face)
    weights: np.ndarray  # (T, K) filled and smoothed: what the outputs animate
    angles_raw: np.ndarray  # (T, 3) pitch, yaw, roll (radians), per frame (NaN without a face)
    angles: np.ndarray  # (T, 3) filled and smoothed
    translation: np.ndarray  # (T, 3) mm, the crop camera's (filled)
    landmarks: np.ndarray  # (T, 68, 2) predicted landmarks, video pixels (NaN without a face)
    reference: object  # FaceReconstruction: the combined identity, neutral, the best frames' texture (and head)
    best_frame: int  # the first of the video frames the texture comes from (the best of the first part)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> ms per frame (median) or in all

    @property
    def n_frames(self) -> int:
        return len(self.times)


@dataclass
class _Reservoir:
    """At most ``size`` frames' identities, spread evenly over the frames seen (every ``stride``-th kept)."""

    size: int
    stride: int = 1
    seen: int = 0
    items: list = field(default_factory=list)

    def offer(self, identity: np.ndarray, yaw: float, confidence: float) -> None:
        if self.seen % self.stride == 0:
            self.items.append((identity.astype(np.float32), yaw, confidence))
            if len(self.items) > self.size:
                self.items = self.items[::2]
                self.stride *= 2
        self.seen += 1


def track_video(reconstructor, path: str | os.PathLike, config: TrackConfig = TrackConfig(),
                progress: Progress | None = None, name: str | None = None) -> FaceTrack:
    """Follow the face of the video at ``path`` with ``reconstructor`` (a :class:`~facerecon_core.pipeline.Reconstructor`;
    its ``head_rig`` gives the reference a head). Raises :class:`~facerecon_core.video.reader.VideoError` for a file
    that is not a readable video, ``NoFaceError`` when no frame shows a face, :class:`TrackCancelled`."""
    from facerecon_core.detect import Crop, NoFaceError
    from facerecon_core.pipeline.arkit import ArkitSolver
    from facerecon_core.pipeline.crop import first_crop
    from facerecon_core.pipeline.detect import find_faces
    from facerecon_core.pipeline.reconstructor import confidence

    config.check()
    info = open_video(path)
    name = name or info.path.stem  # a frame folder names its source video
    expected = len(range(0, info.frame_count, config.every))
    expected = min(expected, config.max_frames) if config.max_frames else expected
    size = reconstructor.input_size
    solver = ArkitSolver.of(reconstructor.facemodel) if reconstructor.facemodel.has_arkit else None
    names = list(solver.names) if solver else []
    rows: dict[str, list] = {k: [] for k in ("index", "has", "detected", "conf", "weights", "angles", "translation",
                                             "landmarks", "expression_rms")}
    reservoir = _Reservoir(config.identity_frames)
    stage_ms: dict[str, list[float]] = {"read": [], "detect": [], "network": [], "solve": []}
    previous: np.ndarray | None = None  # the last frame's predicted landmarks (video pixels)
    looks: np.ndarray | None = None  # the last frame's face crop, as a small normalised thumbnail
    start = time.perf_counter()
    t_read = time.perf_counter()
    for count, (index, frame) in enumerate(frames(path, config.every, config.max_frames)):
        stage_ms["read"].append(1000 * (time.perf_counter() - t_read))
        if progress is not None and progress(count, expected) is False:
            raise TrackCancelled(f"cancelled at frame {index}")
        result, detected, conf = None, False, 0.0
        if previous is not None:
            crop = Crop.from_landmarks(previous, size)
            if _likeness(_thumbnail(crop, frame), looks) >= config.min_likeness:
                result = _reconstruct(reconstructor, frame, crop, size, stage_ms)
                conf = _follows(result, frame.shape, config.lost_shift, size)
                if conf is None:
                    result = None
        if result is None:  # first frame, or the face was lost: the detector
            t0 = time.perf_counter()
            try:
                face = find_faces(frame, f"frame {index}", reconstructor.detector, reconstructor.landmarker)[0]
            except NoFaceError:
                face = None
            stage_ms["detect"].append(1000 * (time.perf_counter() - t0))
            if face is not None:
                detected = True
                result = _reconstruct(reconstructor, frame, first_crop(face, size), size, stage_ms)
                conf = confidence(face, result[3])
        rows["index"].append(index)
        rows["detected"].append(detected)
        if result is None:
            previous = None
            for key, shape in (("weights", (len(names),)), ("angles", (3,)), ("translation", (3,)),
                               ("landmarks", (68, 2))):
                rows[key].append(np.full(shape, np.nan))
            rows["has"].append(False)
            rows["conf"].append(0.0)
            rows["expression_rms"].append(np.nan)
        else:
            dec, angles, translation, landmarks, _ = result
            t0 = time.perf_counter()
            solution = solver.solve(dec.expression) if solver else None
            stage_ms["solve"].append(1000 * (time.perf_counter() - t0))
            rows["weights"].append(np.array(list(solution.weights.values())) if solution else np.zeros(0))
            rows["angles"].append(angles)
            rows["translation"].append(translation)
            rows["landmarks"].append(landmarks)
            rows["has"].append(True)
            rows["conf"].append(conf)
            rows["expression_rms"].append(float(np.sqrt((dec.expression ** 2).sum(1).mean())))
            reservoir.offer(dec.identity, float(angles[1]), conf)
            previous = landmarks
            looks = _thumbnail(Crop.from_landmarks(landmarks, size), frame)
        t_read = time.perf_counter()
    if progress is not None:
        progress(len(rows["index"]), len(rows["index"]))
    has = np.array(rows["has"], bool)
    if not has.any():
        raise NoFaceError(f"{path}: no face found in {len(has)} frame(s)")
    tracked_s = time.perf_counter() - start
    return _finish(reconstructor, path, info, name, rows, has, names, reservoir, config, stage_ms, tracked_s)


def _reconstruct(reconstructor, frame: np.ndarray, crop, size: int, stage_ms: dict):
    """The network once on ``crop`` of ``frame``: (decoded face, angles, translation, landmarks in video pixels,
    the crop)."""
    t0 = time.perf_counter()
    out = reconstructor.bundle.run(crop.apply(frame)[None], texture=False, mirror=False, shifts=False)
    dec = reconstructor.decoder.decode(out, size)[0]
    stage_ms["network"].append(1000 * (time.perf_counter() - t0))
    landmarks = crop.to_image(dec.landmarks_crop)
    return dec, out.angles[0].astype(np.float64), out.translation[0].astype(np.float64), landmarks, crop


THUMBNAIL = 24


def _thumbnail(crop, frame: np.ndarray) -> np.ndarray:
    """The crop of ``frame`` as a THUMBNAIL² grey image, zero mean and unit variance (zeros where it is flat)."""
    from facerecon_core.detect import Crop

    small = Crop(crop.left, crop.top, crop.side, THUMBNAIL).apply(frame).astype(np.float64).mean(axis=2)
    small -= small.mean()
    spread = small.std()
    return small / spread if spread > 2.0 else np.zeros_like(small)


def _likeness(a: np.ndarray, b: np.ndarray | None) -> float:
    """Correlation of two thumbnails (1: alike; 0 where either is flat; 1 when there is no last one)."""
    return 1.0 if b is None else float((a * b).mean())


def _follows(result, shape: tuple, lost_shift: float, size: int) -> float | None:
    """The confidence (0–1) that the prediction on a crop around the last frame's landmarks still holds the face,
    or None when it does not: not finite, out of the frame, or its own crop further than ``lost_shift`` × side from
    (or more than that much larger or smaller than) the one it came from."""
    from facerecon_core.detect import Crop

    _, _, _, landmarks, crop = result
    if not np.all(np.isfinite(landmarks)):
        return None
    h, w = shape[:2]
    if (landmarks[:, 0].max() < 0 or landmarks[:, 1].max() < 0 or landmarks[:, 0].min() > w
            or landmarks[:, 1].min() > h):
        return None
    new = Crop.from_landmarks(landmarks, size)
    shift = np.hypot(new.left + new.side / 2 - (crop.left + crop.side / 2),
                     new.top + new.side / 2 - (crop.top + crop.side / 2)) / crop.side
    growth = abs(np.log(new.side / crop.side))
    if shift > lost_shift or growth > lost_shift:
        return None
    return float(np.exp(-0.5 * ((shift + growth) / (0.5 * lost_shift)) ** 2))


def _finish(reconstructor, path, info, name, rows, has, names, reservoir, config, stage_ms, tracked_s) -> FaceTrack:
    from facerecon_core.pipeline.same_person import combine_identities

    index = np.array(rows["index"], np.int64)
    times = index / info.fps
    weights_raw = np.array(rows["weights"], np.float64).reshape(len(index), len(names))
    angles_raw = np.array(rows["angles"], np.float64)
    translation = fill_gaps(np.array(rows["translation"], np.float64), has)
    confidence = np.where(has, np.array(rows["conf"], np.float64), 0.0)
    weights = fill_gaps(np.nan_to_num(weights_raw, nan=0.0), has) if names else weights_raw
    angles = fill_gaps(np.nan_to_num(angles_raw, nan=0.0), has)
    if config.smooth is not None and len(index) > 1:
        weights = np.clip(one_euro(weights, times, config.smooth), 0.0, 1.0) if names else weights
        angles = one_euro(np.unwrap(angles, axis=0), times, config.smooth)
    # one identity of the reservoir's frames
    identities = np.stack([item[0] for item in reservoir.items])
    yaws = np.array([item[1] for item in reservoir.items])
    confs = np.array([item[2] for item in reservoir.items])
    region = np.flatnonzero(reconstructor.facemodel.face_vertices())
    identity, _ = combine_identities(identities, yaws, np.where(confs > 0, confs, 1.0), region)
    # the texture: the best frames (frontal, confident, little expression), one from each part of the video,
    # reconstructed in full and joined as for several photos of one person
    expression = np.array(rows["expression_rms"], np.float64)
    score = np.where(has, np.cos(np.nan_to_num(angles_raw[:, 1])) ** 4 * np.exp(-np.nan_to_num(expression, nan=99) /
                                                                            NEUTRAL_MM) * confidence, -1.0)
    parts = np.array_split(np.arange(len(index)), min(TEXTURE_FRAMES, len(index)))
    chosen = [int(index[p[np.argmax(score[p])]]) for p in parts if len(p) and score[p].max() > 0]
    t0 = time.perf_counter()
    reference = _reference(reconstructor, [read_frame(path, i) for i in chosen], chosen, identity, name)
    reference_ms = 1000 * (time.perf_counter() - t0)
    best = chosen[0]
    timings = {f"{k}_ms": float(np.median(v)) if v else 0.0 for k, v in stage_ms.items()}
    timings.update(reference_ms=reference_ms, frames_per_s=len(index) / max(tracked_s, 1e-9))
    return FaceTrack(name=name, video=info, frame_index=index, times=times, has_face=has,
                     detected=np.array(rows["detected"], bool), confidence=confidence, arkit_names=names,
                     weights_raw=weights_raw, weights=weights, angles_raw=angles_raw, angles=angles,
                     translation=translation, landmarks=np.array(rows["landmarks"], np.float64), reference=reference,
                     best_frame=best, timings=timings)


def _reference(reconstructor, images: list[np.ndarray], indices: list[int], identity: np.ndarray, name: str):
    """The chosen frames reconstructed in full and joined (texture, light: ``reconstruct_person``), with the video's
    identity, neutral (ARKit keys at 0); with the reconstructor's head rig, its head."""
    from facerecon_core.head.build import build_head

    rig, reconstructor.head_rig = reconstructor.head_rig, None
    try:
        person = reconstructor.reconstruct_person(images, name=name, sources=[f"{name}_frame{i}" for i in indices])
    finally:
        reconstructor.head_rig = rig
    rec = person.reconstruction()
    rec.identity_vertices = identity.astype(np.float32)
    rec.expression_offsets = np.zeros_like(rec.identity_vertices)
    rec.photo_expressions = rec.photo_arkit = None
    rec.source = name
    if rec.arkit_weights is not None:
        rec.arkit_residual = np.zeros_like(rec.identity_vertices)
    if rig is not None:
        rec.head = build_head(rig, rec, images[0])
    return rec
