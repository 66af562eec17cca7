"""The reconstruction pipeline (``facerecon_core.reconstruct`` / ``Reconstructor``) and ``facerecon reconstruct``.

The model bundle is exported from a freshly initialised ``training/configs/cpu.yaml`` network, so the
faces are untrained guesses but every stage (detection, two-pass crops, both runtimes, decoding,
texture, refinement, writers, CLI) is real. What needs a trained model (landmarks on the face,
the second crop following the face) is not asserted here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facerecon_core import paths

from conftest import PHOTO


# ------------------------------------------------------------------------------------- fixtures
# recon_facemodel, recon_bundle, photos and reconstructor are in conftest.py (test_same_person.py shares them)
@pytest.fixture(scope="session")
def result(reconstructor, photos):
    """(reconstructions, run details, progress calls) of the test photo."""
    calls = []
    recs = reconstructor.reconstruct(photos / PHOTO, progress=lambda stage, f: calls.append((stage, f)))
    return recs, list(reconstructor.last_run), calls


def cli(argv: list[str]) -> int:
    from facerecon_core.cli import reconstruct as reconstruct_cli

    parser = argparse.ArgumentParser()
    reconstruct_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------------ fast unit tests
def test_import_is_cheap_and_torch_free():
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        import facerecon_core
        assert "facerecon_core.pipeline" not in sys.modules
        from facerecon_core import reconstruct, Reconstructor
        import facerecon_core.cli.reconstruct
        assert callable(reconstruct) and not [m for m in sys.modules if m.startswith("torch.")]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=paths.REPO_ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_push_pull_fill_keeps_known_texels_and_is_smooth():
    from facerecon_core.pipeline.texture import push_pull_fill

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    known = (xx - 32) ** 2 + (yy - 32) ** 2 < 20 ** 2
    image = np.where(known[..., None], rng.random((64, 64, 3)).astype(np.float32) * 0.1 + 0.5, 0.0)
    filled = push_pull_fill(image, known)
    np.testing.assert_array_equal(filled[known], image[known])
    assert np.isfinite(filled).all() and filled.min() > 0.45 and filled.max() < 0.65
    # no hard seam: neighbouring texels across the region's border differ little
    assert np.abs(np.diff(filled, axis=1)).max() < 0.12 and np.abs(np.diff(filled, axis=0)).max() < 0.12


def test_albedo_texture_size_and_fill(recon_facemodel):
    from facerecon_core.pipeline.texture import albedo_texture, face_region

    albedo = np.full((128, 128, 3), 0.25, np.float32)
    albedo[~face_region(recon_facemodel, 128)] = np.nan  # garbage outside the face must not leak
    tex = albedo_texture(albedo, recon_facemodel, 300)
    assert tex.shape == (300, 300, 3) and tex.dtype == np.uint8
    assert np.abs(tex.astype(int) - 64).max() <= 1


def test_second_crop_falls_back_when_the_prediction_is_implausible():
    from facerecon_core.detect import Crop, DetectedFace, FaceBox
    from facerecon_core.pipeline.crop import contains, first_crop, second_crop

    rng = np.random.default_rng(0)
    lms = (np.array([100.0, 120.0]) + 80 * rng.random((68, 2))).astype(np.float32)
    face = DetectedFace(FaceBox(95, 110, 185, 205, 1.0), lms)
    c1 = first_crop(face, 128)
    assert contains(c1, face.box)
    c2, ok = second_crop(lms + 2.0, face, c1)
    assert ok and contains(c2, face.box) and c2 != c1
    for bad in (np.full((68, 2), np.nan), lms * 0.1, lms * 10.0):
        assert second_crop(bad, face, c1) == (c1, False)
    assert isinstance(c2, Crop)


def test_output_names_are_unique():
    from facerecon_core.cli.reconstruct import output_names

    names = output_names([Path("a/x.jpg"), Path("b/x.png"), Path("c/y.jpg"), Path("d/X.jpg")])
    assert list(names.values()) == ["x", "x_2", "y", "X_3"]


def test_missing_default_model_is_a_clear_error(recon_facemodel, tmp_path, monkeypatch):
    from facerecon_core.pipeline import ModelMissingError, Reconstructor

    monkeypatch.setenv(paths.MODEL_ENV, str(tmp_path / "model"))
    with pytest.raises(ModelMissingError, match=r"no model at .*model; train and export one with `facerecon "
                                                r"train` / `facerecon export` or pass --model"):
        Reconstructor(facemodel=recon_facemodel)
    monkeypatch.delenv(paths.MODEL_ENV)
    assert paths.default_model_dir() == paths.PACKAGE_DIR / "data" / "model"


# --------------------------------------------------------------------------------- the pipeline
def test_reconstruction_of_a_real_photo(result, reconstructor):
    recs, details, calls = result
    assert len(recs) == 1
    rec, run = recs[0], details[0]
    assert rec.n_vertices == 38365 and rec.triangles.shape == (76073, 3)
    assert rec.identity_vertices.dtype == np.float32 and np.isfinite(rec.vertices()).all()
    assert rec.albedo.shape == (256, 256, 3) and rec.albedo.dtype == np.uint8
    assert rec.landmarks_2d.shape == (68, 2) and np.isfinite(rec.landmarks_2d).all()
    assert rec.landmarks_3d.shape == (68, 3) and np.isfinite(rec.landmarks_3d).all()
    np.testing.assert_allclose(rec.landmarks_3d, rec.vertices()[reconstructor.facemodel.landmark_indices], atol=1e-4)
    # the detected face is inside both crops (with a trained model the predicted landmarks also fall
    # inside the detected box; an untrained network only guarantees this through the fallback)
    box = run.detection.box
    for crop in (run.first_crop, run.second_crop):
        left, top, right, bottom = crop.box
        assert left <= box.left and top <= box.top and right >= box.right and bottom >= box.bottom
    np.testing.assert_allclose(rec.crop_box, [run.second_crop.left, run.second_crop.top, run.second_crop.side])
    assert rec.crop_size == reconstructor.input_size == 128
    assert 0.0 <= rec.confidence <= 1.0
    assert {"detect", "crop", "network", "decode", "texture", "light", "total"} <= set(rec.timings)
    assert all(v >= 0 for v in rec.timings.values())
    assert rec.source.endswith(PHOTO)
    assert [s for s, _ in calls] == ["load", "detect", "crop", "network", "decode", "texture", "light", "done"]
    assert run.second_crop == run.first_crop and not run.recropped  # one pass unless recrop=True
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # the predicted landmarks project through the pose into the photo where rec says they are
    np.testing.assert_allclose(rec.project_to_photo(rec.camera_vertices()[reconstructor.facemodel.landmark_indices]),
                               rec.landmarks_2d, atol=1e-3)


def test_cancel_between_stages(reconstructor, photos):
    from facerecon_core.pipeline import ReconstructionCancelled

    with pytest.raises(ReconstructionCancelled, match="before network"):
        reconstructor.reconstruct(photos / PHOTO, progress=lambda stage, f: stage != "network")


def test_array_input_and_functional_api(reconstructor, photos, result, recon_bundle, recon_facemodel, monkeypatch):
    import facerecon_core
    from facerecon_core.io.photo import load_photo

    recs = reconstructor.reconstruct(load_photo(photos / PHOTO))
    assert recs[0].source == "image"
    np.testing.assert_array_equal(recs[0].identity_vertices, result[0][0].identity_vertices)
    monkeypatch.setenv(paths.FACEMODEL_ENV, str(recon_facemodel.path))
    again = facerecon_core.reconstruct(str(photos / PHOTO), model=reconstructor.bundle)
    np.testing.assert_array_equal(again[0].albedo.shape, (512, 512, 3))
    np.testing.assert_allclose(again[0].vertices(), result[0][0].vertices(), atol=1e-5)


def spy_on_runs(monkeypatch, bundle, keyword: str) -> list:
    """The value of ``keyword`` in every later ``ModelBundle.run`` call, in order."""
    calls = []
    real = type(bundle).run

    def spy(self, crops, *a, **kw):
        calls.append(kw.get(keyword))
        return real(self, crops, *a, **kw)

    monkeypatch.setattr(type(bundle), "run", spy)
    return calls


def test_mirror_averaging_is_on_by_default_and_can_be_turned_off(reconstructor, recon_bundle, recon_facemodel,
                                                                  photos, result, monkeypatch):
    """The pipeline runs the geometry stream on each crop and its mirror image; ``mirror=False`` (CLI
    ``--no-mirror``) runs it on the crops only."""
    from facerecon_core.pipeline import Reconstructor

    calls = spy_on_runs(monkeypatch, reconstructor.bundle, "mirror")
    single = Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, texture_size=256, mirror=False)
    plain = single.reconstruct(photos / PHOTO)[0]
    assert calls == [False]
    averaged = result[0][0]
    assert not np.allclose(plain.identity_vertices, averaged.identity_vertices, atol=1e-3)
    from facerecon_core.cli import build_parser

    cli_args = ["--no-mirror", str(photos / PHOTO), "-o", "x"]
    parser = build_parser()
    assert parser.parse_args(["reconstruct", *cli_args]).no_mirror is True
    assert parser.parse_args(["reconstruct", *cli_args[1:]]).no_mirror is False


def test_shift_averaging_is_on_by_default_and_can_be_turned_off(reconstructor, recon_facemodel, photos, result,
                                                                 monkeypatch):
    """The pipeline also averages over shifted crops; ``shifts=False`` (CLI ``--no-shifts``) does not."""
    from facerecon_core.cli import build_parser
    from facerecon_core.pipeline import Reconstructor

    assert reconstructor.shifts is True
    calls = spy_on_runs(monkeypatch, reconstructor.bundle, "shifts")
    plain = Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, texture_size=256, shifts=False)
    unshifted = plain.reconstruct(photos / PHOTO)[0]
    assert calls == [False]
    assert not np.allclose(unshifted.identity_vertices, result[0][0].identity_vertices, atol=1e-3)
    parser = build_parser()
    assert parser.parse_args(["reconstruct", "--no-shifts", "x.jpg", "-o", "x"]).no_shifts is True
    assert parser.parse_args(["reconstruct", "x.jpg", "-o", "x"]).no_shifts is False
    assert parser.parse_args(["eval", "--no-shifts", "--out", "x"]).no_shifts is True


def test_light_is_fitted_to_the_photo_by_default(reconstructor, recon_facemodel, photos, result, monkeypatch):
    """The default light is fitted to the photo (it changes ``sh``, and the photo texture, de-lit by it, but not the
    geometry or the network's map); ``light="network"`` (CLI ``--light network``) keeps the network's prediction."""
    from facerecon_core.cli import build_parser
    from facerecon_core.pipeline import Reconstructor

    outputs = []
    run = reconstructor.bundle.run
    monkeypatch.setattr(reconstructor.bundle, "run", lambda *a, **kw: outputs.append(run(*a, **kw)) or outputs[-1])
    network = Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, texture_size=256, light="network")
    stages = []
    plain = network.reconstruct(photos / PHOTO, progress=lambda stage, f: stages.append(stage))[0]
    fitted = result[0][0]
    assert "light" not in stages and "light" not in plain.timings
    np.testing.assert_allclose(plain.sh, outputs[-1].sh[0], rtol=1e-6)
    assert np.abs(fitted.sh - plain.sh).max() > 0.05
    np.testing.assert_array_equal(fitted.identity_vertices, plain.identity_vertices)
    assert not np.array_equal(fitted.albedo, plain.albedo)  # the photo de-lit by another light
    maps = [Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, texture_size=256, light=light,
                          texture="network").reconstruct(photos / PHOTO)[0].albedo for light in ("fit", "network")]
    np.testing.assert_array_equal(*maps)
    with pytest.raises(ValueError, match="light 'baked': expected one of fit, network"):
        Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, light="baked")
    cli_args = ["reconstruct", str(photos / PHOTO), "-o", "x"]
    assert build_parser().parse_args(cli_args).light == "fit"
    assert build_parser().parse_args(cli_args).texture == "photo"
    assert build_parser().parse_args([*cli_args, "--texture", "network"]).texture == "network"
    assert build_parser().parse_args([*cli_args, "--light", "network"]).light == "network"


def test_recrop_adds_a_pass_on_the_predicted_landmarks(reconstructor, recon_facemodel, photos, monkeypatch):
    """``recrop=True`` (CLI ``--recrop``): a geometry-only pass on the first crop, then the full network
    on the crop around its landmarks (when they are plausible; else the first crop again)."""
    from facerecon_core.cli import build_parser
    from facerecon_core.pipeline import Reconstructor

    calls = spy_on_runs(monkeypatch, reconstructor.bundle, "texture")
    twice = Reconstructor(reconstructor.bundle, facemodel=recon_facemodel, texture_size=64, recrop=True)
    stages = []
    rec = twice.reconstruct(photos / PHOTO, progress=lambda stage, f: stages.append(stage))[0]
    run = twice.last_run[0]
    assert calls == [False, True] and "recrop" in stages
    np.testing.assert_allclose(rec.crop_box, [run.second_crop.left, run.second_crop.top, run.second_crop.side])
    assert run.recropped == (run.second_crop != run.first_crop)
    cli_args = ["reconstruct", str(photos / PHOTO), "-o", "x"]
    assert build_parser().parse_args([*cli_args, "--recrop"]).recrop is True
    assert build_parser().parse_args(cli_args).recrop is False


def test_no_face_is_reported(reconstructor):
    from facerecon_core.detect import NoFaceError

    with pytest.raises(NoFaceError, match="image: no face found"):
        reconstructor.reconstruct(np.full((200, 200, 3), 128, np.uint8))


@pytest.mark.slow
def test_onnx_and_torch_runtimes_agree(result, recon_bundle, recon_facemodel, photos):
    from facerecon_core.pipeline import Reconstructor

    torch_rec = Reconstructor(recon_bundle, facemodel=recon_facemodel, runtime="torch", device="cpu",
                              texture_size=256).reconstruct(photos / PHOTO)[0]
    onnx_rec = result[0][0]
    np.testing.assert_allclose(torch_rec.identity_vertices, onnx_rec.identity_vertices, atol=1e-2)  # mm
    np.testing.assert_allclose(torch_rec.expression_offsets, onnx_rec.expression_offsets, atol=1e-2)
    np.testing.assert_allclose(torch_rec.landmarks_2d, onnx_rec.landmarks_2d, atol=0.05)
    np.testing.assert_allclose(torch_rec.crop_box, onnx_rec.crop_box, atol=0.05)
    assert np.abs(torch_rec.albedo.astype(int) - onnx_rec.albedo).max() <= 2


@pytest.mark.slow
def test_inference_runs_without_torch(recon_bundle, recon_facemodel, photos, tmp_path):
    argv = ["reconstruct", str(photos / PHOTO), "-o", str(tmp_path), "--model", str(recon_bundle),
            "--facemodel", str(recon_facemodel.path), "--texture-size", "128"]
    script = textwrap.dedent(f"""
        import argparse, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from facerecon_core.cli import reconstruct as cli
        parser = argparse.ArgumentParser()
        cli.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args({argv!r})
        assert args.run(args) == 0
        assert sys.modules["torch"] is None and not [m for m in sys.modules if m.startswith("torch.")]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=paths.REPO_ROOT)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    assert listing(tmp_path) == ["image00050.glb", "image00050.mtl", "image00050.npz", "image00050.obj",
                                 "image00050.ply", "image00050_albedo.png", "image00050_overlay.png"]


@pytest.mark.slow
def test_refinement_starts_from_the_network(reconstructor, photos, result):
    steps_seen = []
    recs = reconstructor.reconstruct(photos / PHOTO, refine=3,
                                     on_refine_step=lambda step, steps, terms: steps_seen.append((step, terms)))
    rec, base = recs[0], result[0][0]
    assert [s for s, _ in steps_seen] == [0, 1, 2]
    terms = steps_seen[-1][1]
    assert {"landmarks", "photometric", "id_prior", "offset_smooth"} <= set(terms)
    assert all(np.isfinite(v) for v in terms.values())
    assert reconstructor.last_run[0].refine_losses.keys() == terms.keys()
    assert "refine" in rec.timings and np.isfinite(rec.vertices()).all()
    # a few small steps move the face a little from where the network put it
    change = np.abs(rec.vertices() - base.vertices()).max()
    assert 0 < change < 20.0
    np.testing.assert_allclose(rec.crop_box, base.crop_box)


# ------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_writes_every_format_that_loads_back(recon_bundle, recon_facemodel, photos, tmp_path, capsys):
    import trimesh

    from facerecon_core.export import gltf
    from facerecon_core.reconstruction import FaceReconstruction

    out = tmp_path / "out"
    rc = cli(["reconstruct", str(photos / PHOTO), "-o", str(out), "--model", str(recon_bundle),
              "--facemodel", str(recon_facemodel.path), "--texture-size", "128", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert listing(out) == ["image00050.glb", "image00050.mtl", "image00050.npz", "image00050.obj",
                            "image00050.ply", "image00050_albedo.png", "image00050_overlay.png"]
    assert "1 of 1 input(s) done (1 face(s))" in capsys.readouterr().out
    rec = FaceReconstruction.load(out / "image00050.npz")
    for name in ("image00050.obj", "image00050.glb"):
        loaded = trimesh.load(out / name, process=False)
        mesh = next(iter(loaded.geometry.values())) if isinstance(loaded, trimesh.Scene) else loaded
        assert mesh.vertices.shape == (38365, 3) and mesh.faces.shape == (76073, 3)
        np.testing.assert_allclose(mesh.visual.uv, rec.uvs, atol=1e-5)
        material = mesh.visual.material
        image = material.image if hasattr(material, "image") and material.image is not None \
            else material.baseColorTexture
        assert image.size == (128, 128)
    doc, data = gltf.read_glb_json(out / "image00050.glb")
    from facerecon_core.facemodel.arkit import ARKIT_NAMES

    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == [*ARKIT_NAMES, "Expression residual"]
    assert mesh["weights"] == pytest.approx([*rec.arkit_weights.values(), 1.0])
    targets = [gltf.accessor_array(doc, data, t["POSITION"]) for t in mesh["primitives"][0]["targets"]]
    posed = sum(w * t for w, t in zip(mesh["weights"], targets))  # what a viewer shows at the default weights
    assert np.abs(posed - rec.expression_offsets * 1e-3).max() < 5e-4  # within the sparse cut (0.05 mm a key)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, photos) -> dict[str, Path]:
    """One of each kind of bad input."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad")
    good = (photos / PHOTO).read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    Image.new("RGB", (20, 20), (128, 128, 128)).save(folder / "tiny.png")
    Image.new("RGB", (200, 160), (90, 140, 200)).save(folder / "sky.png")
    (folder / "empty").mkdir()
    (folder / "empty" / "readme.txt").write_text("no photos here")
    return {
        "truncated": folder / "truncated.jpg", "not an image": folder / "notes.jpg",
        "unsupported": folder / "photo.heic", "too small": folder / "tiny.png", "no face": folder / "sky.png",
        "empty folder": folder / "empty", "missing": folder / "missing.jpg",
    }


EXPECTED = {
    "truncated": "cannot read the image",
    "not an image": "not an image, or a format that cannot be read",
    "unsupported": "unsupported image format .heic",
    "too small": "image too small (20×20",
    "no face": "no face found",
    "empty folder": "folder contains no photos",
    "missing": "no such file or folder",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_cli_bad_input_message_and_exit_code(kind, bad_inputs, recon_bundle, recon_facemodel, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(bad_inputs[kind]), "-o", str(out), "--model", str(recon_bundle),
              "--facemodel", str(recon_facemodel.path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if line.startswith("facerecon reconstruct: ")]
    assert len(lines) == 1, err
    assert str(bad_inputs[kind]) in lines[0] and EXPECTED[kind] in lines[0], lines[0]
    assert listing(out) == []  # nothing written, nothing half-written


@pytest.mark.slow
def test_cli_batch_continues_past_bad_inputs(bad_inputs, recon_bundle, recon_facemodel, photos, tmp_path, capsys):
    from PIL import Image

    # a photo with two faces side by side, in a folder with a bad file
    folder = tmp_path / "in"
    folder.mkdir()
    a, b = (np.asarray(Image.open(photos / n).convert("RGB")) for n in (PHOTO, "image00081.jpg"))
    Image.fromarray(np.concatenate([a, b[: a.shape[0], : a.shape[1]]], axis=1)).save(folder / "pair.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(folder), str(bad_inputs["missing"]), "-o", str(out), "--model", str(recon_bundle),
              "--facemodel", str(recon_facemodel.path), "--format", "npz", "--all-faces", "--texture-size", "64"])
    captured = capsys.readouterr()
    assert rc == 1
    assert listing(out) == ["pair_face1.npz", "pair_face1_overlay.png", "pair_face2.npz", "pair_face2_overlay.png"]
    assert "1 of 3 input(s) done (2 face(s))" in captured.out and "2 failed" in captured.out
    assert str(folder / "broken.png") in captured.out and str(bad_inputs["missing"]) in captured.out


def test_cli_usage_and_model_errors(recon_facemodel, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(paths.MODEL_ENV, str(tmp_path / "nowhere"))
    args = [str(photos / PHOTO), "-o", str(tmp_path / "out"), "--facemodel", str(recon_facemodel.path)]
    assert cli(["reconstruct", *args]) == 2
    assert "error: no model at" in capsys.readouterr().err
    assert cli(["reconstruct", *args, "--format", "obj,fbx"]) == 2
    assert "unknown --format fbx" in capsys.readouterr().err
    assert listing(tmp_path / "out") == []


def test_failed_write_leaves_nothing(recon_bundle, recon_facemodel, photos, tmp_path, capsys, monkeypatch):
    def broken(rec, path):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr("facerecon_core.export.write_ply", broken)
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(photos / PHOTO), "-o", str(out), "--model", str(recon_bundle),
              "--facemodel", str(recon_facemodel.path), "--texture-size", "64"])
    assert rc == 1 and "disk full (simulated)" in capsys.readouterr().err
    assert listing(out) == []


def test_calibrate_stores_the_rest_and_the_pipeline_reads_expressions_from_it(recon_bundle, recon_facemodel,
                                                                               shared_dir, tmp_path, capsys):
    import json
    import shutil

    from facerecon_core.cli import main
    from facerecon_core.pipeline import Reconstructor
    from facerecon_core.datasets.people import neutral_photos

    photos = neutral_photos(shared_dir)[:3]
    model = tmp_path / "model"
    shutil.copytree(recon_bundle, model)
    common = ["--model", str(model), "--shared", str(shared_dir), "--facemodel", str(recon_facemodel.path)]
    assert main(["calibrate", *common, "--sets", "jaffe"]) == 2  # the held-out people: refused, nothing written
    assert "kept out for reporting" in capsys.readouterr().err
    assert "rest" not in json.loads((model / "manifest.json").read_text())
    assert main(["calibrate", *common, "--limit", "3"]) == 0
    assert "rest of 3 photos" in capsys.readouterr().out
    rest = json.loads((model / "manifest.json").read_text())["rest"]
    assert rest["photos"] == 3 and rest["sets"] == ["taiwan_expr_faces", "yalefaces"]

    def run(bundle):
        recon = Reconstructor(bundle, facemodel=recon_facemodel, device="cpu", texture="network", light="network",
                              texture_size=8)
        return recon.reconstruct(photos[0])[0]

    plain, calibrated = run(recon_bundle), run(model)
    np.testing.assert_allclose(calibrated.identity_vertices + calibrated.expression_offsets,
                               plain.identity_vertices + plain.expression_offsets, atol=1e-3)  # the same posed face
    for name, w in plain.arkit_weights.items():  # each key measured from the rest
        assert abs(calibrated.arkit_weights[name] - max(w - rest["arkit"][name], 0.0)) < 0.02
    rms = [float(np.sqrt((r.expression_offsets ** 2).sum(1).mean())) for r in (plain, calibrated)]
    assert rms[1] < rms[0]
    np.testing.assert_allclose(calibrated.arkit_residual, 0.0, atol=1e-4)  # the expression is the rig's keys
    assert np.abs(plain.arkit_residual).max() > 1e-3
