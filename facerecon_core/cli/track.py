"""``facerecon track``: a video → one identity, and the performance as ARKit keyframes (CSV, GLB, NPZ)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facerecon_core import paths


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "track", help="track a face through a video: ARKit keyframes as CSV, GLB and NPZ",
        description="Follow the face of VIDEO (read as a stream), reconstruct one identity from its frames and, per "
                    "frame, the head pose and the 51 ARKit weights, smoothed over time. Writes OUT/NAME.csv (Live "
                    "Link Face's layout), OUT/NAME.glb (the face or head animated: morph-target weights and head "
                    "rotation keyframes) and OUT/NAME.npz (every per-frame value, which frames had no face).")
    parser.add_argument("video", type=Path, metavar="VIDEO", help="video file (anything OpenCV reads: mp4, mov, avi …)")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT", help="output folder")
    parser.add_argument("--name", default=None, help="output name (default: the video's)")
    parser.add_argument("--every", type=int, default=1, metavar="K", help="every K-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="at most N frames (default: all)")
    parser.add_argument("--smooth", type=float, nargs=2, default=None, metavar=("MIN_CUTOFF", "BETA"),
                        help="One Euro filter on the weights and the pose: the cutoff of a still signal (Hz) and how "
                             "fast it rises with speed (default 1.0 0.2, chosen on data: README, 'Face from video')")
    parser.add_argument("--no-smooth", action="store_true", help="the raw per-frame values")
    parser.add_argument("--mesh", choices=("face", "head"), default="face",
                        help="the animated mesh of the GLB: the face (default) or the whole head (`--mesh head` of "
                             "facerecon reconstruct)")
    parser.add_argument("--model", type=Path, default=None,
                        help=f"model bundle folder (default: ${paths.MODEL_ENV}, else facerecon_core/data/model/)")
    parser.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    parser.add_argument("--texture-size", type=int, default=512, help="texture side in pixels (default 512)")
    parser.set_defaults(run=_run)


def _error(message: str) -> int:
    print(f"facerecon track: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from facerecon_core.detect import NoFaceError
    from facerecon_core.facemodel import FaceModelError
    from facerecon_core.head.rig import HeadError
    from facerecon_core.inference import BundleError
    from facerecon_core.video.reader import VideoError, open_video
    from facerecon_core.video.smooth import SmoothConfig
    from facerecon_core.video.track import TrackConfig, track_video
    from facerecon_core.video.write import write_track

    if args.no_smooth and args.smooth:
        return _error("--smooth and --no-smooth exclude each other")
    if args.name is not None and (not args.name or Path(args.name).name != args.name):
        return _error(f"--name {args.name!r}: a plain file name")
    if args.out.exists() and not args.out.is_dir():
        return _error(f"{args.out}: exists and is not a folder")
    smooth = None if args.no_smooth else (SmoothConfig(*args.smooth) if args.smooth else SmoothConfig())
    config = TrackConfig(every=args.every, max_frames=args.max_frames, smooth=smooth)
    try:
        config.check()
        open_video(args.video)  # a bad file fails here, before the model loads
    except (ValueError, VideoError) as exc:
        return _error(str(exc))
    from facerecon_core.pipeline import Reconstructor

    try:
        reconstructor = Reconstructor(args.model, facemodel=args.facemodel, texture_size=args.texture_size,
                                      mesh=args.mesh)
    except (BundleError, FaceModelError, HeadError) as exc:
        return _error(str(exc))
    start = time.perf_counter()
    bar = tqdm(desc="track", unit="frame", disable=None)

    def progress(done: int, expected: int) -> None:
        bar.total = max(expected, done)
        bar.update(done - bar.n)

    try:
        track = track_video(reconstructor, args.video, config, progress, name=args.name)
    except (VideoError, NoFaceError) as exc:
        bar.close()
        return _error(str(exc))
    bar.close()
    written = write_track(track, args.out, args.name)
    missing = int((~track.has_face).sum())
    print(f"facerecon track: {track.n_frames} frame(s) of {args.video.name} ({missing} without a face, "
          f"{int(track.detected.sum())} detection(s); {track.timings['frames_per_s']:.1f} frames/s tracking) in "
          f"{time.perf_counter() - start:.1f} s: {', '.join(p.name for p in written)} in {args.out}")
    return 0
