"""Face from video in the add-on: decoding with Blender's own FFmpeg (the add-on ships without OpenCV), tracking
in a worker thread (as a photo's reconstruction) and the Live Link Face CSV reader's glue. The numbers come from
``facerecon_core.video``; the scene from :mod:`.scene`.

Decoding (:func:`decode`, UI thread: it renders through ``bpy``) writes the frames the tracker needs as JPEGs into
a temporary frame folder (``facerecon_core.video.reader``'s format) through a temporary scene with the video as a
sequencer strip; the user's scenes are not touched, and the temporary scene is removed afterwards."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from . import reconstruct

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
VIDEO_GLOB = ";".join(f"*{e};*{e.upper()}" for e in VIDEO_EXTENSIONS)


def decoded(video: str | Path, every: int = 1, max_frames: int = 0, progress=None) -> Path:
    """A temporary frame folder of ``video`` (:func:`decode`); the caller removes it (:func:`discard`)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="facerecon-video-"))
    try:
        decode(video, folder, every, max_frames, progress)
    except BaseException:
        discard(folder)
        raise
    return folder


def discard(folder: str | Path | None) -> None:
    """Remove a frame folder made by :func:`decoded`."""
    import shutil

    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def run(video: str | Path, *, mesh: str = "face", every: int = 1, max_frames: int = 0, smooth: bool = True,
        texture_size: int = 1024, progress=None, cancel: threading.Event | None = None,
        bundle_dir: Path | None = None, facemodel: Path | None = None, **_: Any):
    """Track the face of ``video`` (a file, or a frame folder from :func:`decoded`; a
    :class:`facerecon_core.video.track.FaceTrack`); raises
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


def decode(video: str | Path, folder: str | Path, every: int = 1, max_frames: int = 0, progress=None) -> int:
    """Write ``video``'s every ``every``-th frame (at most ``max_frames``, 0: all) into ``folder`` as a frame folder;
    returns the number written. Raises :class:`reconstruct.ReconstructionFailed` for a file Blender cannot play."""
    import json

    import bpy

    from facerecon_core.video.reader import FRAMES_FILE, frame_name

    video, folder = Path(video), Path(folder)
    if not video.is_file():
        raise reconstruct.ReconstructionFailed(f"{video}: no such file")
    if video.stat().st_size == 0:
        raise reconstruct.ReconstructionFailed(f"{video}: empty file (0 bytes)")
    folder.mkdir(parents=True, exist_ok=True)
    scene = bpy.data.scenes.new("facerecon decode")
    try:
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.4+ / 4.2
        try:
            strip = strips.new_movie("video", str(video), channel=1, frame_start=1)
        except RuntimeError as exc:
            raise reconstruct.ReconstructionFailed(f"{video}: not a video Blender can read ({exc})") from None
        count = int(strip.frame_final_duration)
        element = strip.elements[0] if len(strip.elements) else None
        width, height = (int(element.orig_width), int(element.orig_height)) if element is not None else (0, 0)
        if count < 1 or width < 1:
            raise reconstruct.ReconstructionFailed(f"{video}: no frame could be decoded (corrupt or not a video)")
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.image_settings.file_format = "JPEG"
        render.image_settings.quality = 95
        render.use_sequencer, render.use_compositing = True, False
        indices = list(range(0, count, max(int(every), 1)))[: int(max_frames) or None]
        for done, index in enumerate(indices):
            if progress is not None:
                progress("decoding", done / len(indices))
            scene.frame_current = index + 1
            render.filepath = str(folder / frame_name(index))
            bpy.ops.render.render(write_still=True, scene=scene.name)
        fps = float(strip.fps) if getattr(strip, "fps", 0) else render.fps / render.fps_base
        (folder / FRAMES_FILE).write_text(json.dumps({"source": str(video), "fps": fps, "width": width,
                                                      "height": height, "frame_count": count}))
        return len(indices)
    finally:
        bpy.data.scenes.remove(scene)


def read_live_link(path: str | Path) -> tuple[Any, dict]:
    """``(times (T,) s, column → values)`` of a Live Link Face CSV; ReconstructionFailed naming the file."""
    from facerecon_core.video.livelink import CsvError, read_csv

    try:
        return read_csv(path)
    except CsvError as exc:
        raise reconstruct.ReconstructionFailed(str(exc)) from None
