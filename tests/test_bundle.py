"""Inference bundle: ``facerecon export`` and the torch-free ``ModelBundle`` loader."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from facerecon_core import paths
from facerecon_core.inference import BundleError, ModelBundle, decode_pose, encode_pose
from facerecon_core.inference.export import (ExportError, build_network, check_crops, export_bundle, graph_specs,
                                             strip_prefixes, verify_graphs)
from facerecon_core.inference.mirror import (REFLECT_SH, average_rotations, mirror_images, reflect_asm,
                                             reflect_pose)
from facerecon_core.inference.bundle import read_manifest
from facerecon_core.inference.shift import shift_images, shift_offsets, unshift_pose
from facerecon_core.train.checkpoint import FORMAT, checkpoint_state
from facerecon_core.model import Config, DualStreamNet
from facerecon_core.model import decode_pose as torch_decode_pose
from facerecon_core.pose import CropCamera, to_camera

CPU_YAML = paths.REPO_ROOT / "training" / "configs" / "cpu.yaml"
K_ALBEDO = 3


@pytest.fixture(scope="module")
def fm(facemodel):
    """The test face model with a small random albedo basis (so p_t is not empty) and its own hash."""
    rng = np.random.default_rng(1)
    basis = (0.02 * rng.standard_normal((K_ALBEDO,) + facemodel.albedo_mean.shape)).astype(np.float32)
    return dataclasses.replace(facemodel, albedo_basis=basis, albedo_scale=np.ones(K_ALBEDO, np.float32),
                               content_hash="test-albedo3-" + facemodel.content_hash)


def make_checkpoint(net: DualStreamNet, config: Config, facemodel_hash: str, ddp: bool = True) -> dict:
    state = checkpoint_state(net, config, facemodel_hash, step=123, epoch=1, batch_in_epoch=7, best_metric=0.5)
    state["model"] = {("module." if ddp else "") + k: v for k, v in state["model"].items()}
    return {"format": FORMAT, **state}


@pytest.fixture(scope="module")
def trained(fm, tmp_path_factory):
    """A freshly initialised cpu.yaml network (BN statistics perturbed) and its checkpoint file."""
    torch.manual_seed(0)
    config = Config.load(CPU_YAML)
    net = DualStreamNet(config, fm)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.8, 1.2)
    net.eval()
    path = tmp_path_factory.mktemp("ckpt") / "step123.pt"
    torch.save(make_checkpoint(net, config, fm.content_hash, ddp=True), path)
    return net, config, path


@pytest.fixture(scope="module")
def bundle_dir(trained, fm, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "model"
    report = export_bundle(trained[2], out, fm)
    assert report.out == out and set(report.files) == {"manifest.json", "geometry.onnx", "texture.onnx",
                                                        "weights.safetensors"}
    return out


def inputs(batch: int = 2, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    lms = (size * (0.2 + 0.6 * rng.random((batch, 68, 2)))).astype(np.float32)
    return crops, lms


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------------------------------ export
def test_bundle_layout_and_manifest(bundle_dir, fm, trained):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["format"] == "facerecon-bundle-1"
    assert manifest["onnx"]["opset"] >= 17
    assert manifest["input"]["size"] == 128 and manifest["input"]["color_order"] == "RGB"
    assert manifest["asm"]["size"] == 128 and manifest["asm"]["units"] == "mm"
    assert manifest["texture"]["size"] == 128 and manifest["albedo"]["n_coefficients"] == K_ALBEDO
    assert manifest["facemodel"]["content_hash"] == fm.content_hash and not manifest["facemodel"]["forced"]
    assert manifest["training"]["stage"] == "geometry" and manifest["training"]["step"] == 123
    assert Config.from_dict(manifest["config"]).to_dict() == trained[1].to_dict()
    assert manifest["config"]["model"]["encoder"]["pretrained"] is True  # the config as trained, unmodified
    assert max(manifest["verification"]["max_abs_diff"].values()) < 1e-4
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_onnx_and_torch_runtimes_match_the_network(bundle_dir, trained, fm):
    net = trained[0]
    crops, lms = inputs(batch=3)
    onnx_out = ModelBundle.load(bundle_dir, facemodel=fm).run(crops, lms)
    torch_out = ModelBundle.load(bundle_dir, runtime="torch").run(crops, lms)
    image = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        a_id, a_exp, p_t, p_l, p_h, i_a = net.export_forward(image, torch.from_numpy(lms))
    angles, translation = torch_decode_pose(p_h)
    want = {"A_id": nhwc(a_id), "A_exp": nhwc(a_exp), "albedo_coefficients": p_t.numpy(), "sh": p_l.numpy(),
            "p_h": p_h.numpy(), "angles": angles.numpy(), "translation": translation.numpy(),
            "albedo_map": nhwc(i_a), "albedo_prior_map": nhwc(net.albedo_map(p_t))}
    assert want["albedo_coefficients"].shape == (3, K_ALBEDO)
    for out in (onnx_out, torch_out):
        for name, value in want.items():
            got = getattr(out, name)
            assert got.shape == value.shape and got.dtype == np.float32, name
            tol = 1e-4 * max(1.0, float(np.abs(value).max())) if name == "translation" else 1e-4  # ~900 mm
            np.testing.assert_allclose(got, value, rtol=0, atol=tol, err_msg=name)
    assert np.abs(onnx_out.shape_map - nhwc(a_id + a_exp)).max() < 1e-4
    # geometry only, and a single crop without a batch axis
    geo = ModelBundle.load(bundle_dir).run(crops[0], texture=False)
    assert geo.albedo_map is None and geo.A_id.shape == (1, 128, 128, 3)
    np.testing.assert_allclose(geo.A_id[0], want["A_id"][0], atol=1e-4)


def test_check_crops_are_faces(fm):
    """The export check feeds two rendered faces, framed as the landmark crop frames them: one frontal,
    one turned (its nose tip off the eyes' midline), skin-coloured at the nose, the same on every call."""
    image, lms = check_crops(fm, 96)
    assert image.shape == (2, 96, 96, 3) and image.dtype == torch.float32 and lms.shape == (2, 68, 2)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    lms = lms.numpy()
    assert (lms > 0).all() and (lms < 96).all() and (np.ptp(lms[:, :, 0], axis=1) > 40).all()
    off_midline = lms[:, 30, 0] - (lms[:, 36, 0] + lms[:, 45, 0]) / 2  # nose tip vs the outer eye corners
    assert abs(off_midline[0]) < 1.5 and abs(off_midline[1]) > 5
    for face, nose in zip(image.numpy(), lms[:, 30].round().astype(int)):
        r, g, b = face[nose[1], nose[0]]
        assert r > b + 0.05  # skin, not the grey background
    again, _ = check_crops(fm, 96)
    assert torch.equal(image, again)


def test_export_check_reads_the_asms_where_the_vertices_do(bundle_dir, trained, fm):
    """The ONNX-vs-torch check compares A_id and A_exp at the face model's vertices: a difference in
    texels that no vertex reads is no part of it, one on the face is, in full."""
    from scipy.ndimage import binary_dilation

    read = binary_dilation(fm.face_mask(128), iterations=2)  # the face region and its bilinear neighbours
    specs = graph_specs(trained[0], 128, fm)
    module, args, names, outputs = specs["geometry"]

    class Offset(torch.nn.Module):
        def __init__(self, where: np.ndarray):
            super().__init__()
            self.module, self.offset = module, torch.from_numpy(5.0 * where.astype(np.float32))[None, :, :, None]

        def forward(self, image):
            a_id, *rest = self.module(image)
            return (a_id + self.offset, *rest)

    assert verify_graphs(bundle_dir, specs, fm)["A_id"] < 1e-4
    outside = verify_graphs(bundle_dir, {"geometry": (Offset(~read), args, names, outputs)}, fm)
    inside = verify_graphs(bundle_dir, {"geometry": (Offset(read), args, names, outputs)}, fm)
    assert outside["A_id"] < 1e-4 and abs(inside["A_id"] - 5.0) < 1e-3 and inside["A_exp"] < 1e-4


def test_half_inference_only_bundle(bundle_dir, trained, fm, tmp_path):
    """--half --no-weights (the shipped model's form): float16-stored graphs about half the size, outputs
    within a few hundredths of a millimetre, no torch weights and a clear error for runtime='torch'."""
    import onnx

    out = tmp_path / "half"
    report = export_bundle(trained[2], out, fm, half=True, weights=False)
    assert set(report.files) == {"manifest.json", "geometry.onnx", "texture.onnx"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] is None and manifest["onnx"]["weights_storage"].startswith("float16")
    full = (bundle_dir / "geometry.onnx").stat().st_size
    assert (out / "geometry.onnx").stat().st_size < 0.6 * full
    graph = onnx.load(str(out / "geometry.onnx")).graph
    big = [i for i in graph.initializer if np.prod(i.dims) >= 1024]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    assert [i.elem_type for i in (v.type.tensor_type for v in graph.output)] == [onnx.TensorProto.FLOAT] * 5
    crops, lms = inputs(batch=2)
    half_out = ModelBundle.load(out, facemodel=fm).run(crops, lms)
    full_out = ModelBundle.load(bundle_dir, facemodel=fm).run(crops, lms)
    for name in ("A_id", "A_exp", "sh", "p_h", "albedo_map"):
        got, want = getattr(half_out, name), getattr(full_out, name)
        assert got.dtype == np.float32 and np.abs(got - want).max() < 0.1, name
    assert np.abs(half_out.shape_map - full_out.shape_map).mean() < 0.01  # mm
    with pytest.raises(BundleError, match="inference-only bundle.*without --no-weights"):
        ModelBundle.load(out, runtime="torch")


def test_numpy_pose_decoding_mirrors_torch():
    p_h = torch.randn(5, 6, dtype=torch.float64)
    angles, translation = torch_decode_pose(p_h)
    got_a, got_t = decode_pose(p_h.numpy())
    np.testing.assert_allclose(got_a, angles.numpy(), atol=1e-12)
    np.testing.assert_allclose(got_t, translation.numpy(), rtol=1e-12)
    np.testing.assert_allclose(encode_pose(got_a, got_t), p_h.numpy(), atol=1e-9)


@pytest.mark.parametrize("shifts", [False, True])
def test_mirror_averaging_is_exactly_mirror_symmetric(bundle_dir, fm, shifts):
    """``run(mirror=True)`` on mirrored crops gives the reflection of its prediction on the crops (the
    average is symmetric by construction, with the shifted copies too: their offsets are mirror symmetric),
    and without shifts the average lies between the two single predictions."""
    bundle = ModelBundle.load(bundle_dir, facemodel=fm)
    crops, _ = inputs(batch=2, seed=3)
    out = bundle.run(crops, texture=False, mirror=True, shifts=shifts)
    flipped = bundle.run(mirror_images(crops), texture=False, mirror=True, shifts=shifts)
    np.testing.assert_allclose(flipped.A_id, reflect_asm(out.A_id), atol=1e-4)
    np.testing.assert_allclose(flipped.A_exp, reflect_asm(out.A_exp), atol=1e-4)
    np.testing.assert_allclose(flipped.sh, out.sh * REFLECT_SH, atol=1e-5)
    angles, translation = reflect_pose(out.angles, out.translation)
    np.testing.assert_allclose(flipped.angles, angles, atol=1e-5)
    np.testing.assert_allclose(flipped.translation, translation, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(bundle.decode_pose(out.p_h)[1], out.translation, rtol=1e-5, atol=1e-3)
    if shifts:
        return
    single = bundle.run(crops, texture=False)
    mirror_single = bundle.run(mirror_images(crops), texture=False)
    np.testing.assert_allclose(out.A_id, 0.5 * (single.A_id + reflect_asm(mirror_single.A_id)), atol=1e-4)
    np.testing.assert_array_equal(out.albedo_coefficients, single.albedo_coefficients)  # p_t: the crops' own


def test_shifted_crop_prediction_is_moved_back_to_the_crop(bundle_dir, fm):
    """:func:`unshift_pose` by (−dx, −dy) moves the head origin's image by exactly (dx, dy) and the face's
    landmarks by that to within their depth's ratio to the origin's (perspective); ``shift_images`` moves the
    content and repeats the edge; ``run(shifts=True)`` averages the five views: near the plain prediction,
    the same p_t."""
    camera, size, t_scale = CropCamera(128), 128, 10.0
    angles, translation = np.array([[0.1, -0.4, 0.05]]), np.array([[8.0, -5.0, -950.0]])
    points = np.vstack([np.zeros((1, 3)), fm.vertices(np.zeros(fm.n_id, np.float32))[fm.landmark_indices]])
    where = camera.project(to_camera(points, angles[0], translation[0]))
    dx, dy = 3, -2
    moved = camera.project(to_camera(points, angles[0], decode_pose(unshift_pose(encode_pose(angles, translation),
                                                                                 -dx, -dy, size, t_scale))[1][0]))
    np.testing.assert_allclose(moved[0], where[0] + [dx, dy], atol=1e-6)
    np.testing.assert_allclose(moved[1:], where[1:] + [dx, dy], atol=0.08 * np.hypot(dx, dy))
    image = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3)
    shifted = shift_images(image, 1, 2)
    np.testing.assert_array_equal(shifted[:, 2:, 1:], image[:, :3, :4])
    np.testing.assert_array_equal(shifted[:, :2, 0], np.repeat(image[:, :1, 0], 2, axis=1))
    assert shift_offsets(128) == [(0, 0), (2, 2), (-2, -2), (-2, 2), (2, -2)] and shift_offsets(16)[1] == (1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        shift_images(image, 5, 0)
    bundle = ModelBundle.load(bundle_dir, facemodel=fm)
    crops, _ = inputs(batch=2, seed=3)
    plain, averaged = bundle.run(crops, texture=False), bundle.run(crops, texture=False, shifts=True)
    np.testing.assert_array_equal(averaged.albedo_coefficients, plain.albedo_coefficients)
    assert averaged.A_id.shape == plain.A_id.shape and averaged.p_h.shape == plain.p_h.shape
    assert 0 < np.abs(averaged.A_id - plain.A_id).max() < 0.5 * np.abs(plain.A_id).max()


def test_reflected_pose_projects_to_the_mirror_image(facemodel):
    """The reflection the mirror average relies on: the reflected shape (x negated) posed by
    ``reflect_pose`` projects every point to the mirror image (x → S − 1 − x) of where the face projects it;
    ``reflect_asm`` is that reflection on the UV map; rotations average as expected."""
    rng = np.random.default_rng(5)
    shape = facemodel.vertices(rng.standard_normal(facemodel.n_id).astype(np.float32))
    camera, size = CropCamera(128), 128
    angles, translation = np.array([0.2, 0.5, -0.1]), np.array([6.0, -4.0, -900.0])
    lms = camera.project(to_camera(shape[facemodel.landmark_indices], angles, translation))
    r_angles, r_translation = reflect_pose(angles, translation)
    mirrored_shape = shape * np.array([-1.0, 1.0, 1.0])  # P S: the reflected face's vertices
    r_lms = camera.project(to_camera(mirrored_shape[facemodel.landmark_indices], r_angles, r_translation))
    np.testing.assert_allclose(r_lms[:, 0], size - 1 - lms[:, 0], atol=1e-6)
    np.testing.assert_allclose(r_lms[:, 1], lms[:, 1], atol=1e-6)
    # on the UV map (symmetric about u = 0.5): the near-symmetric mean face moved 5 mm to the right
    # comes back 5 mm to the left
    mean = facemodel.vertices(np.zeros(facemodel.n_id, np.float32)) + np.float32([5.0, 0.0, 0.0])
    back = facemodel.from_uv_map(reflect_asm(facemodel.to_uv_map(mean, 128)[None])[0])
    error = np.linalg.norm(back - (mean - [10.0, 0.0, 0.0]), axis=1)
    assert error.mean() < 1.5 and error[facemodel.landmark_indices].mean() < 1.5  # mm (the BFM mean's asymmetry)
    # averaging a rotation with itself, or with its reflection twice over, returns it
    np.testing.assert_allclose(average_rotations(angles[None], angles[None])[0], angles, atol=1e-9)
    a, b = np.array([[0.1, 0.3, 0.0]]), np.array([[0.1, 0.5, 0.0]])
    np.testing.assert_allclose(average_rotations(a, b), [[0.1, 0.4, 0.0]], atol=1e-3)


def test_loader_imports_and_runs_without_torch(bundle_dir):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from facerecon_core.inference import ModelBundle
        bundle = ModelBundle.load({str(bundle_dir)!r})
        rng = np.random.default_rng(0)
        out = bundle.run(rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8),
                         rng.random((2, 68, 2)).astype(np.float32) * 128)
        assert out.albedo_map.shape == (2, 128, 128, 3) and out.translation.shape == (2, 3)
        assert sys.modules["torch"] is None and not [m for m in sys.modules if m.startswith("torch.")]
        print("ok", bundle.providers)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=paths.REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")


# ------------------------------------------------------------------------------------------ errors
def test_face_model_hash_mismatch_is_refused_unless_forced(trained, fm, tmp_path):
    net, config, _ = trained
    ckpt = tmp_path / "other.pt"
    torch.save(make_checkpoint(net, config, "0" * 64, ddp=False), ckpt)
    with pytest.raises(ExportError, match="trained on face model 000000000000.*--force"):
        export_bundle(ckpt, tmp_path / "refused", fm)
    assert not (tmp_path / "refused").exists()
    report = export_bundle(ckpt, tmp_path / "forced", fm, force=True, verify=False)
    manifest = json.loads((report.out / "manifest.json").read_text())
    assert manifest["facemodel"]["forced"] and manifest["facemodel"]["checkpoint_hash"] == "0" * 64
    # the loader refuses a face model other than the bundle's
    with pytest.raises(BundleError, match="trained on face model"):
        ModelBundle.load(report.out, facemodel="deadbeef" * 8)


def test_corrupt_or_missing_bundle_is_a_clear_error(bundle_dir, tmp_path):
    with pytest.raises(BundleError, match="not found"):
        ModelBundle.load(tmp_path / "nowhere")
    with pytest.raises(BundleError, match="manifest.json is missing"):
        ModelBundle.load(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    data = bytearray((copy / "texture.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "texture.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"texture.onnx: corrupt bundle file \(sha256"):
        ModelBundle.load(copy)
    (copy / "geometry.onnx").unlink()
    with pytest.raises(BundleError, match="geometry.onnx is missing"):
        ModelBundle.load(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt manifest"):
        ModelBundle.load(copy)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    del manifest["pose"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lacks 'pose'"):
        ModelBundle.load(copy)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["rest"] = {"arkit": {"jawOpen": "wide"}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'rest' is malformed"):
        read_manifest(copy)


def test_bad_inputs_are_clear_errors(bundle_dir):
    bundle = ModelBundle.load(bundle_dir)
    crops, lms = inputs(batch=2)
    with pytest.raises(BundleError, match=r"crops must be \(B, 128, 128, 3\)"):
        bundle.run(crops[:, :64], lms)
    with pytest.raises(BundleError, match=r"landmarks must be \(2, 68, 2\)"):
        bundle.run(crops, lms[:1])
    with pytest.raises(BundleError, match="needs the 68 landmarks"):
        bundle.run(crops)


def test_failed_export_leaves_nothing(trained, fm, tmp_path, monkeypatch):
    import facerecon_core.inference.export as export_mod

    def broken(folder):
        raise ExportError("simulated failure")

    monkeypatch.setattr(export_mod, "_check_graphs", broken)
    with pytest.raises(ExportError, match="simulated"):
        export_bundle(trained[2], tmp_path / "model", fm, verify=False)
    assert list(tmp_path.iterdir()) == []
    # an existing folder is never replaced without --overwrite
    (tmp_path / "model").mkdir()
    with pytest.raises(ExportError, match="exists"):
        export_bundle(trained[2], tmp_path / "model", fm)


def test_checkpoint_validation(trained, fm, tmp_path):
    net, config, path = trained
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ExportError, match="not a facerecon checkpoint"):
        export_bundle(bad, tmp_path / "m", fm)
    with pytest.raises(ExportError, match="checkpoint not found"):
        export_bundle(tmp_path / "missing.pt", tmp_path / "m", fm)
    # DDP and plain state dicts give the same network
    ddp = make_checkpoint(net, config, fm.content_hash, ddp=True)
    assert set(strip_prefixes(ddp["model"])) == set(net.state_dict())
    rebuilt, _ = build_network(ddp, fm)
    for (name, a), b in zip(net.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(a, b), name
    wrong = dict(ddp, model={k: v for k, v in list(ddp["model"].items())[1:]})
    with pytest.raises(ExportError, match="do not fit"):
        build_network(wrong, fm)


def test_cli_reports_errors(trained, tmp_path, capsys):
    from facerecon_core.cli import export as export_cli

    parser = argparse.ArgumentParser()
    export_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--checkpoint", str(trained[2]), "--out", str(tmp_path / "m"),
                              "--facemodel", str(tmp_path / "no-facemodel.npz")])
    with pytest.raises(Exception, match="face-model asset not found"):
        args.run(args)  # FaceModelError: the CLI's main() prints it
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = parser.parse_args(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m")])
    assert args.run(args) == 2
    assert "facerecon export: error:" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
