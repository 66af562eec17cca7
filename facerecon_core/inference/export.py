"""``facerecon export``: a training checkpoint → an inference bundle (see :mod:`facerecon_core.inference.bundle`).

The checkpoint is the trainer's ``torch.save`` dict (``format: facerecon-checkpoint-1``), read with
``torch.load(weights_only=True)``; its ``model`` may be a DDP state dict (``module.`` prefixes).
The network is rebuilt with the face model (the fixed mean-shape and albedo maps are taken from it,
so it must be the one the network was trained with: its content hash is compared with the
checkpoint's ``facemodel_hash``), traced to two ONNX graphs (opset ≥ 17, TorchScript exporter,
dynamic batch), optionally stored as float16, checked against torch with onnxruntime, and written
with ``manifest.json`` and (unless inference-only) ``weights.safetensors`` into a temporary folder
beside the target, which is then renamed: a failure leaves nothing behind.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facerecon_core import __version__
from facerecon_core.inference.bundle import (BUNDLE_FORMAT, GEOMETRY_INPUTS, GEOMETRY_OUTPUTS, GRAPHS, MANIFEST,
                                             N_LANDMARKS, TEXTURE_INPUTS, TEXTURE_OUTPUTS, WEIGHTS, sha256_file)
from facerecon_core.model import Config, ConfigError, DualStreamNet
from facerecon_core.model.backbones import IMAGENET_MEAN, IMAGENET_STD
from facerecon_core.model.geometry import POSE_T_SCALE, REFERENCE_DEPTH_MM
from facerecon_core.pose import FOCAL_PER_PIXEL

CHECKPOINT_FORMAT = "facerecon-checkpoint-1"
CHECKPOINT_KEYS = ("format", "stage", "config", "model", "step", "facemodel_hash")
MIN_OPSET = 17
VERIFY_ATOL = 1e-3  # max |ONNX − torch| accepted at export (mm / SH / [0, 1] units)
HALF_VERIFY_ATOL = 0.02  # the same with float16-stored weights (ASMs at the vertices in mm: ~2e-4 relative)
ASM_OUTPUTS = ("A_id", "A_exp")  # compared where the face model's vertices read them (see verify_graphs)
HALF_MIN_ELEMENTS = 1024  # smaller initializers (biases, BatchNorm) stay float32


class ExportError(RuntimeError):
    """The checkpoint cannot be exported (one-line message)."""


@dataclass
class ExportReport:
    out: Path
    files: dict[str, int]  # name → bytes
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    forced: bool = False

    def summary(self) -> str:
        total = sum(self.files.values()) / 1e6
        files = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in self.files.items())
        diff = max(self.max_abs_diff.values(), default=float("nan"))
        return (f"wrote {self.out} ({total:.1f} MB: {files}) in {self.seconds:.1f} s; "
                f"onnxruntime vs torch max |diff| {diff:.2e}" + (" [face-model hash check forced]" if self.forced else ""))


# ------------------------------------------------------------------------------------ checkpoint
def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate a trainer checkpoint (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (zip), EOFError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{path}: not a checkpoint loadable with torch.load(weights_only=True) ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ExportError(f"{path}: not a facerecon checkpoint (format {got!r}, expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ExportError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if not isinstance(ckpt["model"], dict) or not ckpt["model"]:
        raise ExportError(f"{path}: checkpoint has no model state dict")
    return ckpt


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the DDP ``module.`` (and torch.compile ``_orig_mod.``) prefixes when every key has them."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def build_network(ckpt: dict, facemodel, source: str = "checkpoint") -> tuple[DualStreamNet, Config]:
    from facerecon_core.inference.torch_runtime import inference_config

    try:
        config = Config.from_dict(ckpt["config"])
    except ConfigError as exc:
        raise ExportError(f"{source}: its config does not load ({exc})") from None
    net = DualStreamNet(inference_config(config), facemodel)
    state = strip_prefixes(dict(ckpt["model"]))
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ExportError(f"{source}: model weights do not fit its config (missing {result.missing_keys[:4]}, "
                          f"unexpected {result.unexpected_keys[:4]})")
    return net.eval(), config


# --------------------------------------------------------------------------------------- export
def export_bundle(checkpoint: str | os.PathLike, out: str | os.PathLike, facemodel=None, *, force: bool = False,
                  overwrite: bool = False, opset: int = MIN_OPSET, verify: bool = True, half: bool = False,
                  weights: bool = True) -> ExportReport:
    """Export ``checkpoint`` to the bundle folder ``out`` (atomically).

    ``facemodel``: a FaceModel or an asset path (default: the built asset). The export is refused when
    its content hash differs from the checkpoint's ``facemodel_hash`` unless ``force``.
    ``half``: store the graphs' large weight tensors as float16 (cast to float32 inside the graph, so
    inputs, outputs and arithmetic stay float32; about half the size). ``weights=False``: an
    inference-only bundle without ``weights.safetensors`` (``runtime="torch"`` then cannot load it).
    """
    from facerecon_core.facemodel import FaceModel

    start = time.perf_counter()
    checkpoint, out = Path(checkpoint), Path(out)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset}: the bundle needs opset ≥ {MIN_OPSET}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; remove it or pass --overwrite")
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not a model bundle; refusing to replace it")
    ckpt = load_checkpoint(checkpoint)
    model = facemodel if isinstance(facemodel, FaceModel) else FaceModel.load(facemodel)
    ckpt_hash = str(ckpt["facemodel_hash"])
    if ckpt_hash != model.content_hash and not force:
        raise ExportError(f"{checkpoint}: trained on face model {ckpt_hash[:12]}…, but {model.path} is "
                          f"{model.content_hash[:12]}…; pass the face model it was trained with (--facemodel), "
                          "or --force to export with this one anyway")
    net, config = build_network(ckpt, model, str(checkpoint))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        diffs = _write_bundle(tmp, net, config, ckpt, checkpoint, model, ckpt_hash, opset, verify, half, weights)
        os.chmod(tmp, 0o777 & ~_umask())
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return ExportReport(out, files, diffs, time.perf_counter() - start, forced=ckpt_hash != model.content_hash)


def _write_bundle(tmp: Path, net: DualStreamNet, config: Config, ckpt: dict, checkpoint: Path, model,
                  ckpt_hash: str, opset: int, verify: bool, half: bool, with_weights: bool) -> dict[str, float]:
    from safetensors.torch import save_file

    from facerecon_core.inference.torch_runtime import full_state

    specs = graph_specs(net, config.model.input_size, model)
    batch = {0: "batch"}
    graphs = {}
    for name, (module, args, inputs, outputs) in specs.items():
        path = tmp / GRAPHS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), opset_version=opset, dynamo=False, input_names=inputs,
                              output_names=outputs, dynamic_axes={n: batch for n in inputs + outputs},
                              do_constant_folding=True)
        if half:
            store_half(path)
        graphs[name] = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                        "inputs": inputs, "outputs": outputs}
    _check_graphs(tmp)
    diffs = verify_graphs(tmp, specs, model) if verify else {}
    tolerance = HALF_VERIFY_ATOL if half else VERIFY_ATOL
    if verify:
        worst = max(diffs.values(), default=0.0)
        if not worst <= tolerance:
            raise ExportError(f"onnxruntime disagrees with torch by {worst:.2e} (> {tolerance:g}); "
                              f"per output: {diffs}")

    weights = tmp / WEIGHTS if with_weights else None
    if weights is not None:
        save_file(full_state(net), str(weights), metadata={"format": BUNDLE_FORMAT})
    manifest = _manifest(config, ckpt, checkpoint, model, ckpt_hash, graphs, weights, opset, diffs, half, tolerance)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for path in tmp.iterdir():
        os.chmod(path, 0o666 & ~_umask())
    return diffs


def store_half(path: Path) -> None:
    """Rewrite the ONNX file at ``path`` with its float32 initializers of ≥ ``HALF_MIN_ELEMENTS``
    elements stored as float16, each followed by a Cast back to float32 (onnxruntime folds the casts
    when it loads the graph, so inference speed is unchanged)."""
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        array = numpy_helper.to_array(init)
        if array.size < HALF_MIN_ELEMENTS:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(array.astype(np.float16), name + "__fp16"))
        casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=name + "__to_fp32"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(graph_model, str(path))


def _check_graphs(folder: Path) -> None:
    import onnx

    for name in GRAPHS.values():
        try:
            onnx.checker.check_model(str(folder / name))
        except Exception as exc:
            raise ExportError(f"exported {name} fails the ONNX checker ({exc})") from None


def graph_specs(net: DualStreamNet, input_size: int, facemodel) -> dict[str, tuple]:
    """Per graph: (torch module, inputs (:func:`check_crops` and their landmarks, batch 2), input names,
    output names). The inputs trace the graphs and check them against torch."""
    from facerecon_core.inference.torch_runtime import GeometryGraph, TextureGraph

    image, lms = check_crops(facemodel, input_size)
    with torch.no_grad():
        p_t = GeometryGraph(net)(image)[2]
    return {"geometry": (GeometryGraph(net), (image,), GEOMETRY_INPUTS, GEOMETRY_OUTPUTS),
            "texture": (TextureGraph(net), (image, lms, p_t), TEXTURE_INPUTS, TEXTURE_OUTPUTS)}


def check_crops(facemodel, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two face crops rendered from ``facemodel`` (NHWC in [0, 1]) and their 68 landmarks (crop pixels).

    The export check feeds what the network is made for: a seeded random face (identity, expression
    and albedo drawn from the model's priors) seen frontally and turned (yaw 35°, pitch −10°, roll 5°),
    lit from the front-left, over a grey gradient. On uniform noise the activations leave the range
    faces give them, and float16-stored weights then differ by more than on any face (MODEL_CARD.md).
    """
    from facerecon_core.datasets.asm import render_face
    from facerecon_core.datasets.expressions import ExpressionPrior
    from facerecon_core.datasets.scene import place_in_crop
    from facerecon_core.pose import CropCamera, to_camera

    rng = np.random.default_rng(0)
    camera = CropCamera(size)
    identity = facemodel.vertices(0.7 * rng.standard_normal(facemodel.n_id).astype(np.float32))
    shape = identity + facemodel.expression_offsets(ExpressionPrior.from_model(facemodel).sample(rng))
    albedo = facemodel.albedo((0.5 * rng.standard_normal(facemodel.n_albedo)).astype(np.float32))
    sh = np.zeros((3, 9), np.float32)
    sh[:, 0], sh[:, 1:4] = 0.85, (0.1, 0.3, -0.2)  # basis order 1, y, z, x: ambient, key light from front-left
    ramp = np.linspace(70.0, 190.0, size, dtype=np.float32)
    background = np.repeat(((ramp[:, None] + ramp[None, ::-1]) / 2)[..., None], 3, axis=2).astype(np.uint8)
    images, landmarks = [], []
    for degrees in ((0.0, 0.0, 0.0), (-10.0, 35.0, 5.0)):  # (pitch, yaw, roll)
        angles = np.radians(degrees)
        translation = place_in_crop(shape[facemodel.landmark_indices], angles, size)
        verts_cam = to_camera(shape, angles, translation)
        image, _ = render_face(verts_cam, facemodel.triangles, albedo, sh, background, camera)
        images.append(image.astype(np.float32) / 255.0)
        landmarks.append(camera.project(verts_cam[facemodel.landmark_indices]).astype(np.float32))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(landmarks))


def verify_graphs(folder: Path, specs: dict, facemodel) -> dict[str, float]:
    """Max |onnxruntime − torch| per output of the graphs in ``folder`` on the check crops (batch 2) and
    on a batch of 1 (``specs`` as :func:`graph_specs` gives). The ASMs are compared at ``facemodel``'s
    vertices (bilinear at their UVs), as every consumer reads them: texels outside the face region,
    which no vertex reads, are no part of the result (float16-stored weights move them by up to 40×
    more than the face's)."""
    import onnxruntime as ort

    diffs: dict[str, float] = {}
    for name, (module, args, inputs, outputs) in specs.items():
        sess = ort.InferenceSession(str(folder / GRAPHS[name]), providers=["CPUExecutionProvider"])
        for batch in (args, tuple(a[:1] for a in args)):
            got = sess.run(outputs, {n: a.numpy() for n, a in zip(inputs, batch)})
            with torch.no_grad():
                want = module(*batch)
            for o, g, w in zip(outputs, got, want):
                if g.shape != tuple(w.shape):
                    raise ExportError(f"{name} graph: {o} has shape {g.shape}, torch gives {tuple(w.shape)}")
                w = w.numpy()
                if o in ASM_OUTPUTS:
                    g, w = facemodel.from_uv_map(g), facemodel.from_uv_map(w)
                d = float(np.abs(g - w).max()) if g.size else 0.0
                diffs[o] = max(diffs.get(o, 0.0), d if math.isfinite(d) else math.inf)
    return diffs


def _manifest(config: Config, ckpt: dict, checkpoint: Path, model, ckpt_hash: str, graphs: dict,
              weights: Path | None, opset: int, diffs: dict[str, float], half: bool, tolerance: float) -> dict:
    cfg = config.model
    best = ckpt.get("best_metric")
    return {
        "format": BUNDLE_FORMAT,
        "facerecon_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "onnx": {"opset": opset, "torch_version": torch.__version__.split("+")[0], "dynamic_axes": {"batch": 0},
                 "why_two_graphs": "the texture stream only runs when a texture is wanted; it takes p_t from "
                                   "the geometry graph",
                 "weights_storage": "float16 (cast to float32 in the graph)" if half else "float32"},
        "graphs": graphs,
        "weights": None if weights is None else {
            "file": weights.name, "sha256": sha256_file(weights), "bytes": weights.stat().st_size,
            "content": "every DualStreamNet parameter and buffer (incl. the fixed face-model maps), "
                       "names as in DualStreamNet.named_parameters()/named_buffers()"},
        "input": {
            "size": cfg.input_size, "layout": "NHWC", "dtype": "float32", "color_order": "RGB",
            "value_range": [0.0, 1.0], "from_uint8": "x / 255",
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
            "in_graph_normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                                       "note": "the encoder applies (x - mean) / std to x in [0, 1] inside "
                                               "the graph; feed x in [0, 1] only"},
            "crop": "square face crop from facerecon_core.detect (the training crops' framing)",
        },
        "landmarks": {"count": N_LANDMARKS, "order": "iBUG-68", "units": "crop pixels",
                      "convention": "OpenCV: pixel centres on integers, (0, 0) the top-left pixel, x right, y down",
                      "used_by": "texture graph only (landmark heatmaps of the SSRPM)"},
        "asm": {"size": cfg.geometry.asm_size, "layout": "NHWC, channels x/y/z", "units": "mm",
                "scaling_in_graph": True, "id_scale_mm": cfg.geometry.id_scale_mm,
                "exp_scale_mm": cfg.geometry.exp_scale_mm, "A_id_includes_mean_shape": True,
                "shape_map": "A_id + A_exp",
                "frame": "face-model frame: x to the subject's left, y up, z out of the face, origin at the "
                         "mean shape's centroid",
                "uv": "UV image convention (OpenGL/Blender UVs): row 0 at v = 1, column 0 at u = 0; sample at "
                      "the face model's vertex UVs for the vertices"},
        "texture": {"size": cfg.texture.tex_size, "layout": "NHWC RGB", "value_range": [0.0, 1.0],
                    "outputs": {"I_a": "synthesised albedo map (texture stream)",
                                "I_u": "face-model albedo from p_t (mean + basis · p_t)"},
                    "uv": "same UV image convention as the ASMs"},
        "albedo": {"n_coefficients": model.n_albedo, "units": "standard deviations of the face model's albedo prior"},
        "sh": {"shape": [3, 9], "per": "colour channel (R, G, B)",
               "basis_order": ["1", "y", "z", "x", "xy", "yz", "3z^2-1", "xz", "x^2-y^2"],
               "normalisation": "Lambertian-convolved real SH divided by A0·Y00, so (1, 0, …, 0) is irradiance 1 "
                                "(facerecon_core.render.sh_basis)",
               "normals": "camera space (OpenGL axes)", "shading": "colour = albedo · (sh[c] · basis(n))"},
        "pose": {
            "vector": "p_h", "dim": 6, "t_scale": POSE_T_SCALE, "reference_depth_mm": REFERENCE_DEPTH_MM,
            "focal_per_pixel": FOCAL_PER_PIXEL,
            "angles": "p_h[0:3] = (pitch, yaw, roll) rad, R = Rz(roll) Ry(yaw) Rx(pitch)",
            "decode": "depth = reference_depth_mm · exp(−p_h[5] / t_scale); (t_x, t_y) = p_h[3:5] / t_scale · "
                      "depth / focal_per_pixel; t_z = −depth (mm)",
            "camera": f"facerecon_core.pose.CropCamera({cfg.input_size}): focal focal_per_pixel·size px, principal "
                      "point at the crop centre; camera space OpenGL (x right, y up, looking down −z); "
                      "v_cam = R v + t",
            "numpy": "facerecon_core.inference.decode_pose",
        },
        "facemodel": {"content_hash": model.content_hash, "checkpoint_hash": ckpt_hash,
                      "forced": ckpt_hash != model.content_hash, "n_vertices": model.n_vertices,
                      "n_albedo": model.n_albedo, "source": str(model.source)},
        "training": {"stage": str(ckpt.get("stage")), "step": int(ckpt.get("step", 0)),
                     "epoch": int(ckpt.get("epoch", 0)), "batch_in_epoch": int(ckpt.get("batch_in_epoch", 0)),
                     "best_metric": float(best) if isinstance(best, (int, float)) and math.isfinite(best) else None,
                     "checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint)},
        "verification": {"max_abs_diff": diffs, "tolerance": tolerance,
                         "what": "onnxruntime (CPU) vs torch on two rendered face crops (check_crops), "
                                 "batches 2 and 1; A_id and A_exp at the face model's vertices"},
        "config": config.to_dict(),
    }


# -------------------------------------------------------------------------------------- helpers
def _replace_dir(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed afterwards."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
