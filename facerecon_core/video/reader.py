"""Reading a video as a stream of RGB frames, with clear errors for files that are not videos.

A video file is read with OpenCV. A *frame folder* (``FRAMES_FILE`` beside ``frame_000001.jpg`` …: what the
Blender add-on decodes a video into with Blender's own FFmpeg, since it ships without OpenCV) is read with Pillow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoError(ValueError):
    """A video that cannot be read (one line naming the file and what is wrong)."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # as the container says (may be an estimate)
    width: int
    height: int


FRAMES_FILE = "frames.json"  # a frame folder's facts: {"source", "fps", "width", "height", "frame_count"}


def frame_name(index: int) -> str:
    """A frame folder's file of video frame ``index`` (0-based)."""
    return f"frame_{index:06d}.jpg"


def open_video(path: str | os.PathLike) -> VideoInfo:
    """The video's facts; :class:`VideoError` for a missing, empty, unreadable or frameless file."""
    import cv2

    path = Path(path)
    if path.is_dir():
        return _folder_info(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoError(f"{path}: not a readable video (OpenCV cannot open it)")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: no frame could be decoded (corrupt or not a video)")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return VideoInfo(path, fps if np.isfinite(fps) and fps > 0 else 30.0, max(count, 1), frame.shape[1],
                         frame.shape[0])
    finally:
        capture.release()


def frames(path: str | os.PathLike, every: int = 1, max_frames: int | None = None,
           start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, H×W×3 uint8 RGB)`` of every ``every``-th frame from ``start``, at most ``max_frames`` of them,
    one at a time (constant memory); frames that fail to decode mid-stream end it."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if Path(path).is_dir():
        yield from _folder_frames(Path(path), every, max_frames, start)
        return
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if start:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        index, given = start, 0
        while max_frames is None or given < max_frames:
            if (index - start) % every:
                if not capture.grab():
                    return
            else:
                ok, frame = capture.read()
                if not ok or frame is None:
                    return
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                given += 1
            index += 1
    finally:
        capture.release()


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Frame ``index`` (RGB) of the video."""
    for _, frame in frames(path, start=index, max_frames=1):
        return frame
    raise VideoError(f"{path}: frame {index} could not be read")


def _folder_info(folder: Path) -> VideoInfo:
    import json

    try:
        facts = json.loads((folder / FRAMES_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise VideoError(f"{folder}: not a frame folder ({FRAMES_FILE}: {exc})") from None
    return VideoInfo(Path(facts.get("source", folder)), float(facts["fps"]), int(facts["frame_count"]),
                     int(facts["width"]), int(facts["height"]))


def _folder_frames(folder: Path, every: int, max_frames: int | None, start: int) -> Iterator[tuple[int, np.ndarray]]:
    from PIL import Image

    count = _folder_info(folder).frame_count
    given = 0
    for index in range(start, count, every):
        if max_frames is not None and given >= max_frames:
            return
        path = folder / frame_name(index)
        if not path.is_file():
            return
        with Image.open(path) as image:
            yield index, np.asarray(image.convert("RGB"))
        given += 1
