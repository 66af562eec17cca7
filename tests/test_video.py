"""Face from video (``facerecon track``): the reader, the One Euro filter, the Live Link Face CSV, tracking a
synthetic video with known weights and pose (with frames without a face), the CLI and the Blender import."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon_core import paths
from facerecon_core.video.smooth import SmoothConfig, fill_gaps, one_euro


def _write_video(path, frames: list[np.ndarray], fps: float = 30.0) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_one_euro_smooths_still_signals_and_follows_steps():
    from facerecon_core.eval.video import step_lag

    times = np.arange(200) / 30.0
    rng = np.random.default_rng(0)
    noisy = 0.5 + 0.05 * rng.standard_normal((200, 3))
    smooth = one_euro(noisy, times)
    assert np.diff(smooth[50:], 2, axis=0).std() < 0.25 * np.diff(noisy[50:], 2, axis=0).std()
    np.testing.assert_allclose(one_euro(np.full((10, 2), 0.3), times[:10]), 0.3)
    assert step_lag(SmoothConfig()) <= 1  # the default follows a step within a frame (to half of it)
    with pytest.raises(ValueError, match="min_cutoff"):
        one_euro(noisy, times, SmoothConfig(min_cutoff=0.0))
    values = np.array([[0.0], [np.nan], [np.nan], [3.0], [np.nan]])
    np.testing.assert_allclose(fill_gaps(values, np.isfinite(values[:, 0]))[:, 0], [0, 1, 2, 3, 3])


def test_reader_streams_and_rejects_bad_files(tmp_path):
    from facerecon_core.video.reader import VideoError, frames, open_video

    video = tmp_path / "ramp.mp4"
    _write_video(video, [np.full((64, 96, 3), 8 * i, np.uint8) for i in range(12)])
    info = open_video(video)
    assert (info.width, info.height) == (96, 64) and info.fps == pytest.approx(30.0)
    got = list(frames(video, every=3, max_frames=3))
    assert [i for i, _ in got] == [0, 3, 6] and got[1][1].shape == (64, 96, 3)
    assert abs(int(got[2][1].mean()) - 48) <= 4  # the 7th frame's grey level, through the codec
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    for path, message in ((tmp_path / "none.mp4", "no such file"), (empty, "empty file"), (garbage, "not a readable")):
        with pytest.raises(VideoError, match=message):
            open_video(path)


def test_live_link_csv_round_trip(tmp_path):
    from facerecon_core.facemodel.arkit import ARKIT_NAMES
    from facerecon_core.video.livelink import LIVE_LINK_SHAPES, read_csv, timecode, write_csv

    rng = np.random.default_rng(1)
    weights = rng.uniform(0, 1, (5, len(ARKIT_NAMES)))
    angles = rng.uniform(-0.3, 0.3, (5, 3))
    times = np.arange(5) / 30.0
    path = write_csv(tmp_path / "take.csv", times, 30.0, list(ARKIT_NAMES), weights, angles)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"] and header[2:54] == list(LIVE_LINK_SHAPES)
    assert header[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"] and len(LIVE_LINK_SHAPES) == 52
    read_times, columns = read_csv(path, fps=30.0)
    np.testing.assert_allclose(read_times, times, atol=2e-3)
    np.testing.assert_allclose(columns["jawOpen"], weights[:, ARKIT_NAMES.index("jawOpen")], atol=1e-6)
    np.testing.assert_allclose(columns["HeadYaw"], angles[:, 1], atol=1e-6)
    assert np.all(columns["tongueOut"] == 0)
    assert timecode(3661.5, 30.0) == "01:01:01:15.000"


@pytest.fixture(scope="module")
def tracker(facemodel):
    from facerecon_core.pipeline import Reconstructor

    return Reconstructor(paths.default_model_dir(), facemodel=facemodel, texture_size=128)


@pytest.fixture(scope="module")
def synthetic_video(facemodel, tmp_path_factory):
    """36 frames of a known face through ARKit expressions and head turns at 640×360, frames 14–16 without it."""
    import cv2

    from facerecon_core.eval.video import render_synthetic_video

    folder = tmp_path_factory.mktemp("video")
    truth = render_synthetic_video(facemodel, folder / "full.mp4", frames=36, seed=3, size=(640, 360))
    capture = cv2.VideoCapture(str(folder / "full.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    for k in (14, 15, 16):  # the face leaves: a blank wall
        frames[k] = np.full_like(frames[k], 120)
    _write_video(folder / "gap.mp4", frames)
    return folder / "gap.mp4", truth


@pytest.mark.slow
def test_track_synthetic_video(tracker, synthetic_video, facemodel):
    from facerecon_core.eval.video import synthetic_accuracy
    from facerecon_core.video.track import TrackConfig, track_video

    path, truth = synthetic_video
    track = track_video(tracker, path, TrackConfig())
    assert track.n_frames == 36 and track.has_face.sum() == 33
    assert not track.has_face[14:17].any() and np.isnan(track.weights_raw[15]).all()
    assert track.detected[0] and track.detected[17]  # found again after the gap
    assert track.detected.sum() <= 6  # the rest tracked from the last frame's landmarks
    # the gap's values interpolated between its neighbours (then smoothed as every frame), not invented
    assert np.isfinite(track.weights[14:17]).all() and np.isfinite(track.angles[14:17]).all()
    accuracy = synthetic_accuracy(track, truth, facemodel)
    assert accuracy["weight_mae"] < 0.08 and accuracy["pose_error_deg"] < 6.0 and accuracy["identity_mm"] < 1.0, \
        accuracy


@pytest.mark.slow
def test_cli_track_writes_csv_glb_npz_and_rejects_bad_videos(facemodel_path, tmp_path, capsys):
    from facerecon_core.cli import main as cli
    from facerecon_core.export import gltf
    from facerecon_core.video.livelink import read_csv

    video = paths.shared_dir() / "faces" / "videos" / "dafoe.mp4"
    out = tmp_path / "out"
    rc = cli(["track", str(video), "-o", str(out), "--max-frames", "12", "--facemodel", str(facemodel_path),
              "--texture-size", "128"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["dafoe.csv", "dafoe.glb", "dafoe.npz"]
    times, columns = read_csv(out / "dafoe.csv")
    assert len(times) == 12 and columns["jawOpen"].max() > 0.05
    doc, data = gltf.read_glb_json(out / "dafoe.glb")
    animation = doc["animations"][0]
    assert {c["target"]["path"] for c in animation["channels"]} == {"weights", "rotation"}
    keys = gltf.accessor_array(doc, data, animation["samplers"][0]["input"])
    assert len(keys) == 12 and keys[0] == 0.0
    weights = gltf.accessor_array(doc, data, animation["samplers"][0]["output"])
    assert len(weights) == 12 * len(doc["meshes"][0]["extras"]["targetNames"])
    with np.load(out / "dafoe.npz") as npz:
        assert npz["track_weights"].shape == (12, 51) and npz["track_has_face"].all()
        assert npz["identity_vertices"].shape == (38365, 3)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.mp4"
    _write_video(blank, [np.full((120, 160, 3), 90, np.uint8)] * 4)
    for bad, message in ((empty, "empty file"), (blank, "no face")):
        rc = cli(["track", str(bad), "-o", str(tmp_path / "bad"), "--facemodel", str(facemodel_path)])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


@pytest.mark.slow
def test_blender_video_import_and_live_link_csv(tracker, synthetic_video, tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender_addon.services import scene
    from facerecon_core.video.livelink import read_csv, write_csv
    from facerecon_core.video.track import TrackConfig, track_video
    from facerecon_core.video.write import rotations

    from blender_addon.services import video as video_service

    path, _ = synthetic_video
    bpy.ops.wm.read_homefile(use_empty=True)
    folder = video_service.decoded(path, max_frames=20)  # the add-on decodes with Blender's FFmpeg, not OpenCV
    try:
        assert len(bpy.data.scenes) == 1  # its temporary scene is gone
        track = track_video(tracker, folder, TrackConfig(max_frames=20))
    finally:
        video_service.discard(folder)
    assert not folder.exists() and track.name == path.stem and track.video.path == path
    obj, _ = scene.build_track(track, scene=bpy.context.scene)
    sc = bpy.context.scene
    assert (sc.frame_start, sc.frame_end, sc.render.fps) == (1, 20, 30)
    camera = bpy.data.objects[obj["facerecon_camera"]]
    assert camera.data.background_images[0].source == "MOVIE_CLIP"
    jaw = track.arkit_names.index("jawOpen")
    for frame in (1, 10, 20):
        sc.frame_set(frame)
        assert obj.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(track.weights[frame - 1, jaw], abs=1e-5)
    # a Live Link Face CSV recorded elsewhere drives the same keys
    csv = write_csv(tmp_path / "take.csv", np.arange(5) / 30.0, 30.0, ["jawOpen"], np.linspace(0, 1, 5)[:, None],
                    np.zeros((5, 3)))
    times, columns = read_csv(csv)
    keyed = scene.keyframe_performance(obj, times, {k: v for k, v in columns.items() if k[:1].islower()}, 30.0,
                                       rotations(np.zeros((5, 3))), start_frame=101)
    assert keyed >= 51
    sc.frame_set(105)
    assert obj.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_batch_script_tracks_videos(synthetic_video, facemodel_path, tmp_path):
    import subprocess
    import sys

    pytest.importorskip("bpy")
    path, _ = synthetic_video
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "take.mp4").write_bytes(path.read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    proc = subprocess.run([sys.executable, str(paths.REPO_ROOT / "blender_addon" / "scripts" / "batch_reconstruct.py"),
                           "--input", str(folder), "--output", str(tmp_path / "out"), "--glb"],
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, paths.FACEMODEL_ENV: str(facemodel_path)})
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # one of the two failed
    assert "0 photos, 2 videos: 1 ok, 1 failed" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["take.blend", "take.csv", "take.glb"]
