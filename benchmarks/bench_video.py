"""Face-from-video speed (``facerecon track``): frames per second in tracking mode on the shared 720p video,
split into its stages (decode, detection when the face is lost, network + decode, ARKit solve), and the time of
the reference reconstruction (the texture from five frames) apart. Prints a Markdown table and, as the last line,
JSON. Target: ≥ 10 frames/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_FPS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None, help="video (default: ../shared/faces/videos/dafoe.mp4)")
    parser.add_argument("--quick", action="store_true", help="the first 20 frames (tests/test_benchmarks.py)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from facerecon_core import paths
    from facerecon_core.pipeline import Reconstructor
    from facerecon_core.video.track import TrackConfig, track_video

    video = args.video or paths.shared_dir() / "faces" / "videos" / "dafoe.mp4"
    reconstructor = Reconstructor(texture_size=512)
    start = time.perf_counter()
    track = track_video(reconstructor, video, TrackConfig(max_frames=20 if args.quick else None))
    total = time.perf_counter() - start
    t = track.timings
    print(f"{video.name}: {track.video.width}×{track.video.height}, {track.n_frames} frames, "
          f"{int(track.detected.sum())} detection(s)\n")
    print("| frames/s (tracking) | decode ms | detect ms (when lost) | network + decode ms | ARKit solve ms "
          "| reference s | total s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {t['frames_per_s']:.1f} | {t['read_ms']:.1f} | {t['detect_ms']:.0f} | {t['network_ms']:.1f} | "
          f"{t['solve_ms']:.1f} | {t['reference_ms'] / 1000:.1f} | {total:.1f} |")
    summary = {"bench": "video", "frames": track.n_frames, "frames_per_s": round(t["frames_per_s"], 2),
               "network_ms": round(t["network_ms"], 1), "detections": int(track.detected.sum()),
               "target_fps": TARGET_FPS, "fps_ok": t["frames_per_s"] >= TARGET_FPS}
    print()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
