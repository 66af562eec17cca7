"""The Blender add-on: scene maths (numpy), import graph of the zip, modal driver, and end to end in bpy.

Everything that touches ``bpy`` runs in a subprocess (``python`` with the ``bpy`` module) so Blender's
state never leaks between tests. The slow tests build the real zip (wheels from PyPI, cached in
``dist/wheel-cache``), install it into an isolated user folder (``BLENDER_USER_RESOURCES``) with the
development checkout hidden, and run the operator on a real photo with a bundle exported from an
untrained ``cpu.yaml`` network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facerecon_core import paths
from facerecon_core.export import blender as fb

REPO = paths.REPO_ROOT
ADDON = REPO / "blender_addon"
PYTHON = sys.executable
PHOTO_REL = Path("faces") / "3ddfa" / "samples__test1.jpg"
WHEEL_CACHE = REPO / "dist" / "wheel-cache"


def load_addon_package(name: str = "facerecon_addon_test"):
    """The add-on as a package without Blender (services.job / reconstruct / paths need no bpy)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ADDON / "__init__.py", submodule_search_locations=[str(ADDON)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def archive_member(path: Path, name: str):
    """A zip inside a zip, opened."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as outer, zipfile.ZipFile(io.BytesIO(outer.read(name))) as inner:
        yield inner


def run_bpy(script: str, *args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh Python with bpy; its last stdout line starting with RESULT is JSON."""
    import tempfile

    return subprocess.run([PYTHON, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=tempfile.gettempdir())


def result_of(proc: subprocess.CompletedProcess) -> dict:
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def rec(facemodel):
    r = fb.sample_reconstruction(facemodel, texture_size=64, photo_size=400, source="/photos/anna.jpg")
    return dataclasses.replace(r, angles=np.array([0.1, -0.3, 0.05]), translation=np.array([12.0, -8.0, -950.0]))


# ------------------------------------------------------------------------------ scene maths
def test_axes_face_minus_y_z_up():
    assert np.allclose(fb.to_blender([[0, 0, 1000]]), [[0, -1, 0]])  # toward the viewer → −Y
    assert np.allclose(fb.to_blender([[0, 1000, 0]]), [[0, 0, 1]])  # up → +Z
    assert np.allclose(fb.to_blender([[1000, 0, 0]]), [[1, 0, 0]])  # subject's left → +X
    assert np.isclose(np.linalg.det(fb.MODEL_TO_BLENDER), 1.0)  # a rotation: CCW triangles stay CCW
    pts = np.random.default_rng(0).normal(size=(5, 3)) * 50
    assert np.allclose(fb.from_blender(fb.to_blender(pts)), pts, atol=1e-3)


def test_face_mesh_data(rec, facemodel):
    data = fb.face_mesh_data(rec, facemodel.exp_basis, texture_size=32)
    assert data.n_vertices == 38365 and data.n_triangles == 76073
    assert data.loop_uvs.shape == (3 * 76073, 2) and data.texture.shape == (32 * 32 * 4,)
    assert list(data.exp_keys) == fb.exp_key_names(facemodel.n_exp) == [f"exp_{i:02d}" for i in range(facemodel.n_exp)]
    assert np.allclose(data.expression - data.basis, fb.to_blender(rec.expression_offsets), atol=1e-6)
    assert np.abs(data.expression - data.basis).max() > 1e-4
    # the face looks toward −Y: the mean normal of the front triangles points to −Y
    v = data.basis[data.triangles]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).sum(0)
    assert n[1] < -0.5 * np.linalg.norm(n)
    # albedo: row 0 of the texture (v = 1) is the last row of Blender's bottom-up pixels
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[0] = 255
    pixels = fb.albedo_pixels(tex).reshape(4, 4, 4)
    assert pixels[3, :, :3].min() == 1.0 and pixels[0, :, :3].max() == 0.0 and (pixels[..., 3] == 1).all()


def test_photo_camera_matches_the_pipeline_projection(rec):
    cam = fb.photo_camera(rec, (400, 300))
    expected = rec.project_to_photo(rec.camera_vertices()) + 0.5  # corner convention
    got = cam.project(fb.to_blender(rec.vertices()))
    assert np.abs(got - expected).max() < 1e-3
    assert np.allclose(cam.matrix_world[:3, :3] @ cam.matrix_world[:3, :3].T, np.eye(3), atol=1e-9)


def test_scene_properties_are_plain(rec):
    props = fb.scene_properties(rec, "test-model")
    assert props["facerecon_source"] == "/photos/anna.jpg" and props["facerecon_model_version"] == "test-model"
    assert len(props["facerecon_sh"]) == 27 and len(props["facerecon_pose_angles_rad"]) == 3
    json.dumps(props)
    assert fb.object_name("/x/anna.jpg") == "anna" and fb.object_name("/x/anna.jpg", 1, 2) == "anna.face01"


# ------------------------------------------------------------------------------- the zip
def test_import_graph_is_torch_free():
    sys.path.insert(0, str(REPO))
    import build_addon

    graph = build_addon.import_graph()
    assert graph.problems() == [] and build_addon.check_wheel_coverage(graph) == []
    for name in graph.shipped:
        assert not any(name.startswith(f"facerecon_core.{p}") for p in ("train", "model", "datasets", "fitting",
                                                                        "render"))
        assert "torch" not in {n.split(".")[0] for n in graph.shipped[name].top_level}
    assert {"facerecon_core.pipeline.reconstructor", "facerecon_core.export.blender",
            "facerecon_core.inference.bundle", "facerecon_core.head.build", "facerecon_core.video.track",
            "facerecon_core.video.livelink"} <= set(graph.shipped)
    assert "onnxruntime" in graph.third_party_lazy and "dlib" in graph.third_party_lazy
    text = build_addon.manifest_text("0.1.0", "linux-x64", ["a-1-py3-none-any.whl"])
    assert 'platforms = ["linux-x64"]' in text and '"./wheels/a-1-py3-none-any.whl"' in text
    assert 'id = "facerecon"' in text


def test_register_imports_no_inference():
    proc = run_bpy(f"""
        import sys, json, importlib.util
        import bpy
        spec = importlib.util.spec_from_file_location("facerecon_addon", {str(ADDON / '__init__.py')!r},
                                                      submodule_search_locations=[{str(ADDON)!r}])
        mod = importlib.util.module_from_spec(spec); sys.modules["facerecon_addon"] = mod; spec.loader.exec_module(mod)
        mod.register()
        ok = hasattr(bpy.ops.facerecon, "reconstruct_from_photo") and hasattr(bpy.types, "FACERECON_PT_main")
        loaded = sorted(m for m in sys.modules if m.startswith(("facerecon_core", "onnxruntime", "cv2", "dlib", "torch")))
        mod.unregister()
        print("RESULT " + json.dumps({{"ok": ok, "loaded": loaded}}))
    """)
    out = result_of(proc)
    assert out["ok"] and out["loaded"] == []


def test_every_option_has_a_tooltip_and_refinement_shows_only_where_it_runs():
    """Each property of the operator and of the sidebar's settings has a description; the panel draws
    "Refine steps" only where torch imports, and one line saying why otherwise."""
    proc = run_bpy(f"""
        import sys, json, importlib.util
        import bpy
        spec = importlib.util.spec_from_file_location("facerecon_addon", {str(ADDON / '__init__.py')!r},
                                                      submodule_search_locations=[{str(ADDON)!r}])
        mod = importlib.util.module_from_spec(spec); sys.modules["facerecon_addon"] = mod; spec.loader.exec_module(mod)
        mod.register()
        from facerecon_addon.ui import options
        res = {{"missing": []}}
        for owner in (bpy.ops.facerecon.reconstruct_from_photo.get_rna_type(), type(bpy.context.scene.facerecon).bl_rna):
            for prop in owner.properties:
                if prop.identifier != "rna_type" and not prop.is_hidden and not prop.description.strip():
                    res["missing"].append(owner.identifier + "." + prop.identifier)
        res["settings"] = sorted(p.identifier for p in type(bpy.context.scene.facerecon).bl_rna.properties)

        class Layout:
            def __init__(self, calls): self.calls = calls
            def row(self): return self
            def prop(self, data, name, **kw): self.calls.append(("prop", name))
            def label(self, text="", **kw): self.calls.append(("label", text))
        from types import SimpleNamespace as Key
        from facerecon_addon.ui.panels import strongest_keys
        blocks = [Key(name="k" + str(i), value=i / 20) for i in range(12)] + [Key(name="Expression residual", value=1.0)]
        res["strongest"] = [b.name for b in strongest_keys(blocks, count=3)]
        res["no_rig"] = len(strongest_keys(blocks[:4]))
        settings = bpy.context.scene.facerecon
        for available in (False, True):
            options.torch_available = lambda: available
            calls = []
            options.draw_options(Layout(calls), settings)
            res[str(available)] = calls
        mod.unregister()
        print("RESULT " + json.dumps(res))
    """)
    res = result_of(proc)
    assert res["missing"] == []
    assert {"match_render_size", "refine_steps", "texture_mode", "bfm_keys"} <= set(res["settings"])
    assert res["strongest"] == ["k11", "k10", "k9", "Expression residual"] and res["no_rig"] == 4
    without, with_torch = ([tuple(c) for c in res[k]] for k in ("False", "True"))
    assert ("prop", "refine_steps") not in without and ["label"] == [k for k, t in without if "PyTorch" in t]
    assert ("prop", "refine_steps") in with_torch and not any(k == "label" for k, _ in with_torch)
    assert ("prop", "match_render_size") in without and ("prop", "texture_size") in without


# ------------------------------------------------------------------------- modal driver
class FakeResult:
    faces = ["face"]


def test_modal_driver_progress_cancel_and_errors(monkeypatch):
    addon = load_addon_package()
    job_mod = importlib.import_module(addon.__name__ + ".services.job")
    rec_mod = importlib.import_module(addon.__name__ + ".services.reconstruct")
    release = threading.Event()

    def fake_run(photo, *, progress, cancel, **options):
        for i in range(50):
            if cancel.is_set():
                raise rec_mod.Cancelled()
            progress("network", i / 50)
            time.sleep(0.01)
            if Path(photo).name == "block.jpg":
                release.wait(5)
        if Path(photo).name == "noface.jpg":
            raise rec_mod.ReconstructionFailed("noface.jpg: no face found")
        return FakeResult()

    monkeypatch.setattr(rec_mod, "run", fake_run)

    def drive(photo, *, esc_after=None):
        reports, progress, built = [], [], []
        driver = job_mod.ModalDriver(job_mod.ReconstructionJob(photo), on_progress=lambda s, f: progress.append(f),
                                     on_done=lambda r: built.append(r) or "built",
                                     report=lambda level, msg: reports.append((level.pop(), msg)))
        driver.start()
        assert driver.event("MOUSEMOVE") == {"PASS_THROUGH"}
        for tick in range(1000):
            if esc_after is not None and tick == esc_after:
                ret = driver.event("ESC", "PRESS")
            else:
                ret = driver.event("TIMER")
            if ret != {"RUNNING_MODAL"}:
                break
            time.sleep(0.01)
        driver.job.thread.join(5)
        return ret, reports, progress, built, driver

    ret, reports, progress, built, driver = drive("ok.jpg")
    assert ret == {"FINISHED"} and built and reports == [("INFO", "built")]
    assert progress and progress == sorted(progress)
    assert job_mod.CURRENT is None

    ret, reports, _, built, _ = drive("noface.jpg")
    assert ret == {"CANCELLED"} and not built and reports == [("ERROR", "Face from Photo: noface.jpg: no face found")]

    # the worker blocks until released: the UI thread still ticks (RUNNING_MODAL) and takes ESC
    ret, reports, _, built, driver = drive("block.jpg", esc_after=3)
    release.set()
    assert ret == {"CANCELLED"} and not built and reports[0][0] == "WARNING" and "cancelled" in reports[0][1]
    assert not driver.job.thread.is_alive() and driver.job.snapshot().status == job_mod.CANCELLED


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def test_bundle(facemodel, tmp_path_factory):
    """A bundle exported from an untrained cpu.yaml network (as tests/test_bundle.py does)."""
    import torch

    from facerecon_core.inference.export import export_bundle
    from facerecon_core.train.checkpoint import checkpoint_state, save_checkpoint
    from facerecon_core.model import Config, DualStreamNet

    torch.manual_seed(0)
    config = Config.load(REPO / "training" / "configs" / "cpu.yaml")
    net = DualStreamNet(config, facemodel).eval()
    ckpt = checkpoint_state(net, config, facemodel.content_hash)
    folder = tmp_path_factory.mktemp("addon_bundle")
    save_checkpoint(folder / "ckpt.pt", ckpt)
    export_bundle(folder / "ckpt.pt", folder / "model", facemodel)
    return folder / "model"


@pytest.fixture(scope="module")
def addon_zip(facemodel_path, tmp_path_factory):
    """The zip as users get it: the bundled default model (facerecon_core/data/model)."""
    sys.path.insert(0, str(REPO))
    import build_addon

    from facerecon_core import paths

    bundle = paths.default_model_dir()
    assert (bundle / "manifest.json").is_file(), f"the bundled model is missing from {bundle}"
    out = tmp_path_factory.mktemp("dist")
    return build_addon.build("linux-x64", out, bundle, facemodel_path, WHEEL_CACHE, log=lambda *a: None)


# an isolated Blender user folder (``user``), the development checkout hidden: the add-on must run on what its
# zip installed
ISOLATED = """
    os.environ["BLENDER_USER_RESOURCES"] = user
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and not os.path.isfile(os.path.join(p, "build_addon.py"))]
    for absent in ("cv2", "scipy", "torch", "numba"):  # not in the zip: the add-on must run without them
        sys.modules[absent] = None
    import bpy
"""

INSTALLED_SCRIPT = """
    import json, os, sys, time
    user, zip_path, photo, bad, out_blend = sys.argv[1:6]
""" + ISOLATED + """    res = {}
    t = time.perf_counter()
    res["install"] = sorted(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                     enable_on_install=True))
    res["install_s"] = time.perf_counter() - t
    res["enabled"] = "bl_ext.user_default.facerecon" in bpy.context.preferences.addons
    res["loaded_at_register"] = sorted(m for m in sys.modules if m.startswith("facerecon_core"))
    bpy.ops.wm.read_homefile(use_empty=True)
    render = bpy.context.scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1920, 1080, 50
    t = time.perf_counter()
    res["op"] = sorted(bpy.ops.facerecon.reconstruct_from_photo(filepath=photo, texture_size="256", refine_steps=0,
                                                                add_camera=True))
    res["resolution_after"] = [render.resolution_x, render.resolution_y, render.resolution_percentage]
    res["op_s"] = time.perf_counter() - t
    import facerecon_core
    res["core_file"] = facerecon_core.__file__
    res["torch"] = sys.modules.get("torch") is not None
    obj = next(o for o in bpy.data.objects if o.type == "MESH")
    me = obj.data
    res["name"] = obj.name
    res["counts"] = [len(me.vertices), len(me.polygons)]
    res["uv"] = [u.name for u in me.uv_layers]
    res["smooth"] = all(p.use_smooth for p in me.polygons[:100])
    mat = me.materials[0]
    res["material"] = mat.name
    img = next(n.image for n in mat.node_tree.nodes if n.type == "TEX_IMAGE")
    res["image"] = [list(img.size), img.packed_file is not None]
    res["bsdf"] = any(n.type == "BSDF_PRINCIPLED" for n in mat.node_tree.nodes)
    res["confidence"] = [n.image.name for n in mat.node_tree.nodes if n.type == "TEX_IMAGE" and n.label == "Photo confidence"
                         and n.image.packed_file is not None]
    keys = me.shape_keys.key_blocks
    res["keys"] = [k.name for k in keys]
    res["key_values"] = {k.name: k.value for k in keys}
    import numpy as np
    def co(k):
        a = np.empty(len(me.vertices) * 3, np.float32); k.data.foreach_get("co", a); return a.reshape(-1, 3)
    res["expr_diff_m"] = float(np.abs(co(keys["jawOpen"]) - co(keys["Basis"])).max())
    basis = co(keys["Basis"])
    res["extent_m"] = (basis.max(0) - basis.min(0)).tolist()
    res["props"] = sorted(k for k in obj.keys() if k.startswith("facerecon_"))
    res["model_version"] = obj["facerecon_model_version"]
    cam = bpy.data.objects.get(obj.name + "_camera")
    res["camera"] = cam is not None and cam.type == "CAMERA" and len(cam.data.background_images) == 1
    bpy.context.scene.camera = cam
    render.resolution_x, render.resolution_y = cam.data.background_images[0].image.size  # the photo's, for the render
    render.resolution_percentage = 100
    bpy.ops.wm.save_as_mainfile(filepath=out_blend)
    # failures: a bad photo and a missing model are reported in one line, Blender keeps running
    errors = []
    for path in (bad, "/nonexistent/photo.jpg"):
        try:
            bpy.ops.facerecon.reconstruct_from_photo(filepath=path)
        except RuntimeError as exc:
            errors.append(str(exc))
    prefs = bpy.context.preferences.addons["bl_ext.user_default.facerecon"].preferences
    prefs.model_dir = os.path.dirname(bad)
    try:
        bpy.ops.facerecon.reconstruct_from_photo(filepath=photo)
    except RuntimeError as exc:
        errors.append(str(exc))
    res["errors"] = errors
    res["alive"] = len(bpy.data.objects)
    print("RESULT " + json.dumps(res))
"""

RENDER_SCRIPT = """
    import json, sys
    import bpy, numpy as np
    blend, png = sys.argv[1:3]
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    obj = next(o for o in bpy.data.objects if o.type == "MESH")
    cam = scene.camera
    res = {"objects": sorted(o.name for o in bpy.data.objects), "keys": len(obj.data.shape_keys.key_blocks)}
    img = next(n.image for n in obj.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    res["packed_after_reopen"] = img.packed_file is not None and list(img.size)
    # expected region: project the evaluated mesh with facerecon's camera maths
    deps = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(deps)
    me = ev.to_mesh()
    pts = np.empty(len(me.vertices) * 3, np.float32); me.vertices.foreach_get("co", pts); pts = pts.reshape(-1, 3)
    ev.to_mesh_clear()
    w, h = scene.render.resolution_x, scene.render.resolution_y
    inv = np.linalg.inv(np.array(cam.matrix_world))
    p = pts @ inv[:3, :3].T + inv[:3, 3]
    big = max(w, h); f = cam.data.lens / cam.data.sensor_width * big
    u = w / 2 - cam.data.shift_x * big + f * p[:, 0] / -p[:, 2]  # facerecon's camera maths (CameraSpec.project)
    v = h / 2 + cam.data.shift_y * big - f * p[:, 1] / -p[:, 2]
    scale = 160 / big
    scene.render.resolution_percentage = max(1, int(round(100 * scale)))
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.film_transparent = True
    scene.render.filepath = png
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    bpy.ops.render.render(write_still=True)
    im = bpy.data.images.load(png)
    rw, rh = im.size
    a = np.array(im.pixels[:], np.float32).reshape(rh, rw, 4)[::-1, :, 3]
    ys, xs = np.nonzero(a > 0.5)
    sx, sy = rw / w, rh / h
    res["render_bbox"] = [float(xs.min()) / sx, float(ys.min()) / sy, float(xs.max() + 1) / sx, float(ys.max() + 1) / sy]
    res["expected_bbox"] = [float(u.min()), float(v.min()), float(u.max()), float(v.max())]
    res["coverage"] = float((a > 0.5).mean())
    res["size"] = [rw, rh]
    res["crop_box"] = list(obj["facerecon_crop_box"])
    print("RESULT " + json.dumps(res))
"""


@pytest.mark.slow
def test_zip_installs_and_reconstructs_a_photo(addon_zip, shared_dir, tmp_path):
    sys.path.insert(0, str(REPO))
    import zipfile

    import build_addon

    assert 50e6 < addon_zip.stat().st_size <= build_addon.MAX_ZIP_BYTES  # 100 MB per platform

    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        manifest = archive.read("facerecon/blender_manifest.toml").decode()
        core = next(n for n in names if "facerecon_core_runtime" in n)
        with archive.open(core) as f, zipfile.ZipFile(f) as wheel:
            core_files = wheel.namelist()
    assert "facerecon/__init__.py" in names and "facerecon/data/model/manifest.json" in names
    assert "facerecon/data/facemodel.npz" in names and "facerecon/data/model/weights.safetensors" not in names
    assert "MIT License" in zipfile.ZipFile(addon_zip).read("facerecon/data/ICT-FaceKit-LICENSE.txt").decode()
    assert "bl_info" in zipfile.ZipFile(addon_zip).read("facerecon/__init__.py").decode()
    assert all(f"./wheels/{Path(n).name}" in manifest for n in names if n.endswith(".whl"))
    wheels = [Path(n).name.lower() for n in names if n.endswith(".whl")]
    assert not any(w.startswith(("opencv", "scipy", "torch", "numba")) for w in wheels), wheels
    face_models = next(n for n in names if "face_recognition_models" in n)
    with archive_member(addon_zip, face_models) as models:
        assert sorted(Path(n).name for n in models.namelist() if "/models/" in n) == [
            "mmod_human_face_detector.dat", "shape_predictor_68_face_landmarks.npz"]
    assert not any(f"facerecon_core/{p}/" in n for n in core_files for p in ("train", "model", "datasets", "fitting"))

    photo = shared_dir / PHOTO_REL
    bad = tmp_path / "bad" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_text("not an image")
    blend = tmp_path / "face.blend"
    proc = run_bpy(INSTALLED_SCRIPT, str(tmp_path / "user"), str(addon_zip), str(photo), str(bad), str(blend))
    res = result_of(proc)
    assert res["install"] == ["FINISHED"] and res["enabled"] and res["loaded_at_register"] == []
    assert res["op"] == ["FINISHED"] and res["name"] == photo.stem
    assert res["resolution_after"] == [1920, 1080, 50]  # the scene's render settings are the user's
    assert str(tmp_path / "user") in res["core_file"] and not res["torch"]  # the zip's own facerecon_core
    assert res["counts"] == [38365, 76073] and res["uv"] == ["UVMap"] and res["smooth"]
    assert res["material"] == "Face Albedo" and res["bsdf"] and res["image"] == [[256, 256], True]
    assert res["confidence"] == [f"{photo.stem}_confidence"]  # the photo texture's confidence, for painting over
    from facerecon_core.facemodel.arkit import ARKIT_NAMES

    assert res["keys"] == ["Basis", *ARKIT_NAMES, "Expression residual"]  # the face model's exp_NN: an option
    assert res["key_values"]["Expression residual"] == 1.0 and 0.0 <= min(res["key_values"].values())
    assert max(v for k, v in res["key_values"].items() if k != "Expression residual") <= 1.0
    assert res["expr_diff_m"] > 1e-3  # jawOpen moves the chin
    assert 0.05 < res["extent_m"][0] < 0.4 and 0.05 < res["extent_m"][2] < 0.4  # metres, a head-sized face
    for key in ("facerecon_pose_angles_rad", "facerecon_pose_translation_mm", "facerecon_sh", "facerecon_source",
                "facerecon_model_version"):
        assert key in res["props"]
    assert res["camera"]
    errors = res["errors"]
    assert len(errors) == 3 and all("\n" not in e.strip() for e in errors), errors
    assert "broken.jpg" in errors[0] and "not an image" in errors[0]
    assert "not found" in errors[1]
    assert "model" in errors[2].lower()
    assert res["alive"] >= 2

    png = tmp_path / "render.png"
    res2 = result_of(run_bpy(RENDER_SCRIPT, str(blend), str(png)))
    assert res2["packed_after_reopen"] == [256, 256] and res2["keys"] == 53
    rb, eb = np.array(res2["render_bbox"]), np.array(res2["expected_bbox"])
    width = eb[2] - eb[0]
    assert np.abs(rb - eb).max() < 0.1 * width + 4, (rb, eb)  # the face covers the expected region of the photo
    assert res2["coverage"] > 0.01
    left, top, side = res2["crop_box"]  # the network's crop of the photo holds the face
    cx, cy = (rb[0] + rb[2]) / 2, (rb[1] + rb[3]) / 2
    assert left < cx < left + side and top < cy < top + side


LEGACY_SCRIPT = """
    import json, os, sys
    user, zip_path, photo = sys.argv[1:4]
""" + ISOLATED + """    res = {"install": sorted(bpy.ops.preferences.addon_install(filepath=zip_path)),
           "enable": sorted(bpy.ops.preferences.addon_enable(module="facerecon"))}
    res["enabled"] = "facerecon" in bpy.context.preferences.addons
    res["loaded_at_register"] = sorted(m for m in sys.modules if m.startswith("facerecon_core"))
    bpy.ops.wm.read_homefile(use_empty=True)
    res["op"] = sorted(bpy.ops.facerecon.reconstruct_from_photo(filepath=photo, texture_size="256", refine_steps=0,
                                                                match_render_size=True))
    render = bpy.context.scene.render
    res["resolution"] = [render.resolution_x, render.resolution_y, render.resolution_percentage]
    import facerecon_core, onnxruntime
    res["core_file"], res["ort_file"] = facerecon_core.__file__, onnxruntime.__file__
    me = next(o for o in bpy.data.objects if o.type == "MESH").data
    res["counts"] = [len(me.vertices), len(me.polygons)]
    res["keys"] = len(me.shape_keys.key_blocks)
    folder, name = os.path.split(photo)  # "One person": several photos selected in the file browser
    try:
        bpy.ops.facerecon.reconstruct_from_photo(directory=folder, files=[{"name": name}, {"name": name}],
                                                 browse=False)
        res["several_error"] = ""
    except RuntimeError as exc:
        res["several_error"] = str(exc)
    bpy.ops.wm.read_homefile(use_empty=True)
    res["person_op"] = sorted(bpy.ops.facerecon.reconstruct_from_photo(
        directory=folder, files=[{"name": name}, {"name": name}], one_person=True, texture_size="256",
        refine_steps=0, browse=False))
    me = next(o for o in bpy.data.objects if o.type == "MESH").data
    res["person_keys"] = [k.name for k in me.shape_keys.key_blocks][-2:]
    print("RESULT " + json.dumps(res))
"""


@pytest.mark.slow
def test_zip_installs_as_a_legacy_addon(addon_zip, shared_dir, tmp_path):
    """The same zip through "Install legacy add-on" (bl_info): nothing installs the wheels, so the add-on
    unpacks them into its own ``_site`` on first use and runs from there."""
    user = tmp_path / "user"
    res = result_of(run_bpy(LEGACY_SCRIPT, str(user), str(addon_zip), str(shared_dir / PHOTO_REL)))
    assert res["install"] == ["FINISHED"] and res["enable"] == ["FINISHED"] and res["enabled"]
    assert res["loaded_at_register"] == [] and res["op"] == ["FINISHED"]
    site = user / "scripts" / "addons" / "facerecon" / "_site"
    assert Path(res["core_file"]).is_relative_to(site) and Path(res["ort_file"]).is_relative_to(site)
    assert (site / ".unpacked").is_file()
    assert res["counts"] == [38365, 76073] and res["keys"] == 53
    stem = PHOTO_REL.stem
    assert "2 photos selected" in res["several_error"] and "One person" in res["several_error"]
    assert res["person_op"] == ["FINISHED"] and res["person_keys"] == [stem, f"{stem}_2"]
    from PIL import Image, ImageOps

    with Image.open(shared_dir / PHOTO_REL) as photo:
        assert res["resolution"] == [*ImageOps.exif_transpose(photo).size, 100]  # "Match render size to photo"


def test_mirror_and_shift_options_reach_the_pipeline(test_bundle, facemodel_path, shared_dir):
    """The panel's / operator's "Mirror averaging" and "Shift averaging" and the batch script's --no-mirror
    and --no-shifts: the services run the cached Reconstructor with or without the mirrored / shifted crops."""
    addon = load_addon_package()
    rec_mod = importlib.import_module(addon.__name__ + ".services.reconstruct")
    batch = importlib.import_module(addon.__name__ + ".services.batch")
    photo = shared_dir / PHOTO_REL
    runs = {m: rec_mod.run(photo, mirror=m, texture_size=64, bundle_dir=test_bundle, facemodel=facemodel_path)
            for m in (False, True)}
    reconstructor, _, _ = rec_mod.load_reconstructor(test_bundle, facemodel_path)
    assert reconstructor.mirror is True
    plain, mirrored = (runs[m].faces[0].identity_vertices for m in (False, True))
    assert plain.shape == mirrored.shape and not np.allclose(plain, mirrored)
    assert batch.parse_args(["--input", "a", "--output", "b", "--no-mirror"]).no_mirror is True
    assert batch.parse_args(["--input", "a", "--output", "b"]).no_mirror is False
    unshifted = rec_mod.run(photo, shifts=False, texture_size=64, bundle_dir=test_bundle, facemodel=facemodel_path)
    assert reconstructor.shifts is False  # the run set it on the cached Reconstructor
    assert not np.allclose(unshifted.faces[0].identity_vertices, mirrored)
    assert batch.parse_args(["--input", "a", "--output", "b", "--no-shifts"]).no_shifts is True
    assert batch.parse_args(["--input", "a", "--output", "b"]).no_shifts is False
    assert batch.parse_args(["--input", "a", "--output", "b"]).texture == "photo"
    network = rec_mod.run(photo, texture="network", texture_size=64, bundle_dir=test_bundle, facemodel=facemodel_path)
    assert reconstructor.texture == "network" and network.faces[0].texture_confidence is None


@pytest.mark.slow
def test_batch_script_reports_failures(test_bundle, facemodel_path, shared_dir, tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "face.jpg").write_bytes((shared_dir / PHOTO_REL).read_bytes())
    (photos / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, str(ADDON / "scripts" / "batch_reconstruct.py"), "--input", str(photos),
                           "--output", str(out), "--glb", "--texture-size", "128"],
                          capture_output=True, text=True, timeout=900, cwd=str(tmp_path),
                          env={**os.environ, "FACERECON_MODEL": str(test_bundle),
                               "FACERECON_FACEMODEL": str(facemodel_path)})
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 photos: 1 ok, 1 failed" in proc.stdout
    assert "| FAILED | broken.png |" in proc.stdout and "| OK | face.jpg |" in proc.stdout
    assert (out / "face.blend").is_file() and (out / "face.glb").is_file()
    assert not (out / "broken.blend").exists()
    from facerecon_core.export.gltf import TARGET_NAME

    assert TARGET_NAME.encode() in (out / "face.glb").read_bytes()[:20000]


@pytest.mark.slow
def test_batch_script_makes_one_head_of_one_person(test_bundle, facemodel_path, shared_dir, tmp_path):
    """``--same-person``: every photo of the folder → one .blend whose face has a shape key per photo (at 0); a
    photo without a face is left out with a warning."""
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("front.jpg", "again.jpg"):
        (photos / name).write_bytes((shared_dir / PHOTO_REL).read_bytes())
    (photos / "zz_broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, str(ADDON / "scripts" / "batch_reconstruct.py"), "--input", str(photos),
                           "--output", str(out), "--same-person", "--name", "anna", "--texture-size", "64"],
                          capture_output=True, text=True, timeout=900, cwd=str(tmp_path),
                          env={**os.environ, "FACERECON_MODEL": str(test_bundle),
                               "FACERECON_FACEMODEL": str(facemodel_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| OK | again.jpg + 2 more (one person) | anna.blend |" in proc.stdout
    assert "zz_broken left out" in proc.stdout
    keys = result_of(run_bpy("""
        import bpy, json, sys
        bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
        face = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
        print("RESULT " + json.dumps({k.name: k.value for k in face.data.shape_keys.key_blocks}))
    """, str(out / "anna.blend")))
    assert keys["again"] == 0.0 and keys["front"] == 0.0 and "Expression residual" in keys


def test_scene_from_sample_reconstruction_and_camera_semantics(facemodel_path, tmp_path):
    """The scene built from the face model's mean (no network): counts, keys, and Blender's own
    projection (bpy_extras.world_to_camera_view) of the photo camera agrees with facerecon's."""
    proc = run_bpy(f"""
        import sys, json, importlib.util
        import bpy, numpy as np
        from bpy_extras.object_utils import world_to_camera_view
        spec = importlib.util.spec_from_file_location("facerecon_addon", {str(ADDON / '__init__.py')!r},
                                                      submodule_search_locations=[{str(ADDON)!r}])
        mod = importlib.util.module_from_spec(spec); sys.modules["facerecon_addon"] = mod; spec.loader.exec_module(mod)
        from facerecon_addon.services import scene
        from facerecon_core.facemodel import FaceModel
        from facerecon_core.export import blender as fb
        import dataclasses
        fm = FaceModel.load({str(facemodel_path)!r})
        rec = fb.sample_reconstruction(fm, texture_size=128, photo_size=400, source="/nowhere/mean.png")
        rec = dataclasses.replace(rec, angles=np.array([0.15, -0.4, 0.1]), translation=np.array([30.0, -20.0, -900.0]),
                                  crop_box=np.array([150.0, 40.0, 260.0]))
        bpy.ops.wm.read_homefile(use_empty=True)
        sc = bpy.context.scene
        sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 1920, 1080, 50
        untouched = scene.build_face(rec, name="untouched", texture_size=64, camera=True, photo_size=(640, 480))[0]
        kept = [sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage]
        first_camera = sc.camera.name
        obj, timings = scene.build_face(rec, name="mean", exp_basis=fm.exp_basis, texture_size=1024, camera=True,
                                        photo_size=(640, 480), match_render_size=True, bfm_keys=True)
        matched = [sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage]
        sc.camera = bpy.data.objects["mean_camera"]
        bpy.context.view_layer.update()  # matrix_world of the parented camera
        cam = bpy.data.objects["mean_camera"]
        spec = fb.photo_camera(rec, (640, 480))
        pts = fb.to_blender(rec.vertices())[::997]
        ours = spec.project(pts)
        theirs = []
        for p in pts:
            c = world_to_camera_view(sc, cam, obj.matrix_world @ __import__("mathutils").Vector(p.tolist()))
            theirs.append([c.x * 640, (1 - c.y) * 480])
        photo = rec.project_to_photo(rec.camera_vertices()[::997]) + 0.5
        keys = [k.name for k in obj.data.shape_keys.key_blocks]
        img = obj.data.materials[0].node_tree.nodes["Image Texture"].image
        print("RESULT " + json.dumps({{"blender_vs_ours": float(np.abs(np.array(theirs) - ours).max()),
                                       "ours_vs_photo": float(np.abs(ours - photo).max()),
                                       "counts": [len(obj.data.vertices), len(obj.data.polygons)], "keys": keys,
                                       "image": list(img.size), "packed": img.packed_file is not None,
                                       "kept": kept, "matched": matched, "first_camera": first_camera}}))
    """)
    res = result_of(proc)
    assert res["kept"] == [1920, 1080, 50], res["kept"]  # the user's render settings stay unless asked
    assert res["matched"] == [640, 480, 100] and res["first_camera"] == "untouched_camera"
    assert res["blender_vs_ours"] < 0.05 and res["ours_vs_photo"] < 0.05, res
    from facerecon_core.facemodel.arkit import ARKIT_NAMES

    assert res["counts"] == [38365, 76073] and res["keys"][0] == "Basis"
    assert res["keys"][1:53] == [*ARKIT_NAMES, "Expression residual"] and res["keys"][53] == "exp_00"
    assert res["image"] == [1024, 1024] and res["packed"]  # build time: benchmarks/bench_blender.py
