"""Face from video in the add-on: tracking in a worker thread (as a photo's reconstruction) and the Live Link
Face CSV reader's glue. The numbers come from ``facerecon_core.video``; the scene from :mod:`.scene`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from . import reconstruct

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
VIDEO_GLOB = ";".join(f"*{e};*{e.upper()}" for e in VIDEO_EXTENSIONS)


def run(video: str | Path, *, mesh: str = "face", every: int = 1, max_frames: int = 0, smooth: bool = True,
        texture_size: int = 1024, progress=None, cancel: threading.Event | None = None,
        bundle_dir: Path | None = None, facemodel: Path | None = None, **_: Any):
    """Track the face of ``video`` (a :class:`facerecon_core.video.track.FaceTrack`); raises
    :class:`reconstruct.ReconstructionFailed` (one line) or :class:`reconstruct.Cancelled`."""
    video = Path(video)
    cancel = cancel or threading.Event()
    try:
        reconstructor, fm, _ = reconstruct.load_reconstructor(bundle_dir, facemodel)
        head_rig = reconstruct.load_head_rig(fm) if mesh == "head" else None
        from facerecon_core.video.smooth import SmoothConfig
        from facerecon_core.video.track import TrackConfig, track_video

        config = TrackConfig(every=int(every), max_frames=int(max_frames) or None,
                             smooth=SmoothConfig() if smooth else None)

        def report(done: int, expected: int) -> bool:
            if progress is not None:
                progress("tracking", done / max(expected, 1))
            return not cancel.is_set()

        with reconstruct._lock:
            reconstructor.head_rig = head_rig
            reconstructor.texture_size = int(texture_size)
            return track_video(reconstructor, video, config, report)
    except (reconstruct.Cancelled, reconstruct.ReconstructionFailed):
        raise
    except Exception as exc:
        if type(exc).__name__ == "TrackCancelled" or cancel.is_set():
            raise reconstruct.Cancelled() from None
        kind = type(exc).__name__
        if kind in ("VideoError", "NoFaceError"):
            raise reconstruct.ReconstructionFailed(reconstruct.one_line(exc)) from None
        raise reconstruct.ReconstructionFailed(f"{video.name}: {kind}: {reconstruct.one_line(exc)}") from exc


def read_live_link(path: str | Path) -> tuple[Any, dict]:
    """``(times (T,) s, column → values)`` of a Live Link Face CSV; ReconstructionFailed naming the file."""
    from facerecon_core.video.livelink import CsvError, read_csv

    try:
        return read_csv(path)
    except CsvError as exc:
        raise reconstruct.ReconstructionFailed(str(exc)) from None
