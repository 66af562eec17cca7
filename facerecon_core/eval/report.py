"""The evaluation report: ``report.md``, ``results.json``, ``per_vertex.npz`` and plots (matplotlib, Agg).

Plots: per-vertex error heat maps on the mean face (:mod:`facerecon_core.render.numpy_render`),
cumulative error curves (synthetic geometry, landmark NME), example overlays (synthetic crops and
photos with every method's landmarks; photometric renders).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from facerecon_core.facemodel import FaceModel

HEAT_MAX_MM = 3.0


def _plain(obj):
    """JSON-able copy without the private (``_``-prefixed) entries."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render_heat(model: FaceModel, values: np.ndarray, yaw_deg: float = 0.0, size: int = 256,
                vmax: float = HEAT_MAX_MM) -> np.ndarray:
    """The mean face coloured by per-vertex ``values`` (NaN: grey), lightly shaded: (size, size, 3) float."""
    import matplotlib

    from facerecon_core.pose import CropCamera, euler_to_matrix
    from facerecon_core.render.numpy_render import render_mesh_numpy

    cmap = matplotlib.colormaps["jet"]
    v = np.asarray(values, np.float64)
    colors = cmap(np.clip(np.nan_to_num(v, nan=0.0) / vmax, 0.0, 1.0))[:, :3]
    colors[np.isnan(v)] = 0.6
    cam = CropCamera(size)
    depth = cam.focal * 190.0 / size
    verts = model.mean_shape.astype(np.float64) @ euler_to_matrix(np.radians([0.0, yaw_deg, 0.0])).T
    verts = (verts + [0.0, 0.0, -depth]).astype(np.float32)
    sh = np.zeros((3, 9), np.float32)
    sh[:, 0], sh[:, 2] = 0.75, 0.35
    image, _ = render_mesh_numpy(verts, model.triangles, cam.render_camera(),
                                 vertex_colors=colors.astype(np.float32), sh=sh, background=np.ones((size, size, 3)))
    return np.clip(image[0], 0.0, 1.0)


def _heatmaps(per_vertex: dict, model: FaceModel, path: Path) -> None:
    plt = _pyplot()
    names = list(per_vertex)
    fig, axes = plt.subplots(len(names), 3, figsize=(7.5, 2.6 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        panels = [(per_vertex[name]["geometry"], 0.0, "point-to-plane"), (per_vertex[name]["geometry"], 50.0,
                  "point-to-plane, 50°"), (per_vertex[name]["expression"], 0.0, "expression-only")]
        for c, (vals, yaw, title) in enumerate(panels):
            axes[r, c].imshow(render_heat(model, vals, yaw))
            axes[r, c].set_title(f"{name}: {title}\nmean {np.nanmean(vals):.2f} mm", fontsize=8)
            axes[r, c].axis("off")
    import matplotlib

    sm = matplotlib.cm.ScalarMappable(cmap="jet", norm=matplotlib.colors.Normalize(0, HEAT_MAX_MM))
    fig.colorbar(sm, ax=axes, fraction=0.03, label="mean error (mm)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cumulative(curves: dict[str, np.ndarray], xlabel: str, path: Path, xmax: float | None = None) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, vals in curves.items():
        vals = np.sort(np.asarray(vals, np.float64))
        if len(vals):
            ax.plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of faces")
    if xmax:
        ax.set_xlim(0, xmax)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _landmark_overlays(images, landmarks: dict[str, list], path: Path) -> None:
    plt = _pyplot()
    n = len(images)
    if n == 0:
        return
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.2), squeeze=False)
    colours = ["lime", "red", "cyan", "yellow", "magenta", "orange", "white"]
    for i, (image, gt) in enumerate(images):
        ax = axes[0, i]
        ax.imshow(image)
        ax.scatter(gt[:, 0], gt[:, 1], s=4, c="white", label="ground truth")
        for k, (name, lms) in enumerate(landmarks.items()):
            if i < len(lms):
                ax.scatter(lms[i][:, 0], lms[i][:, 1], s=3, c=colours[k % len(colours)], label=name)
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _photometric_overlays(examples, path: Path) -> None:
    plt = _pyplot()
    if not examples:
        return
    fig, axes = plt.subplots(len(examples), 3, figsize=(6.6, 2.3 * len(examples)), squeeze=False)
    for r, (photo, ours, linear, region) in enumerate(examples):
        panels = [(photo, "photo"), (ours, "ours"), (linear, "linear (mean albedo + SH)")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            if img is not None:
                shown = np.asarray(img, np.float64)
                shown = shown / 255.0 if shown.max() > 1.5 else shown
                if c > 0:
                    shown = np.where(region[..., None], np.clip(shown, 0, 1), np.asarray(photo) / 255.0 * 0.4)
                ax.imshow(np.clip(shown, 0, 1))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _arkit_heatmaps(expressions: dict, path: Path) -> None:
    """Per method, a heat map of the mean weight of each ARKit key (columns) per posed label (rows)."""
    plt = _pyplot()
    methods = expressions["methods"]
    keys = expressions["keys"]
    fig, axes = plt.subplots(len(methods), 1, figsize=(12, 2.2 * len(methods) + 0.8), squeeze=False)
    for ax, (name, m) in zip(axes[:, 0], methods.items()):
        labels = list(m["mean_weights"])
        grid = np.array([[m["mean_weights"][label][k] for k in keys] for label in labels])
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(0.3, float(grid.max())))
        ax.set_yticks(range(len(labels)), [f"{label} ({m['labels'][label]})" for label in labels], fontsize=7)
        ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=6)
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _same_person_plot(curves: dict, path: Path) -> None:
    """Identity error against the number of photos of one person combined, per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for name, c in curves.items():
        ax.errorbar(c["photos"], c["mean_mm"], yerr=np.array(c["std_mm"]) / np.sqrt(c["groups"]), marker="o",
                    capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    ax.set_xlabel("photos of the person combined")
    ax.set_ylabel("identity error, point-to-plane (mm)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _albedo_bars(summary: dict, path: Path) -> None:
    """Grouped bars: each method's albedo error over the seen texels and the whole face, raw and after gain."""
    plt = _pyplot()
    keys = [("seen_mae", "seen"), ("seen_mae_gain", "seen, after gain"), ("face_mae", "whole face"),
            ("face_mae_gain", "whole face, after gain")]
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    width = 0.8 / len(summary)
    for k, (name, values) in enumerate(summary.items()):
        ax.bar(np.arange(len(keys)) + k * width, [values[key] for key, _ in keys], width, label=name)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, [label for _, label in keys], fontsize=8)
    ax.set_ylabel("albedo MAE (0–1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------- markdown
def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _markdown(results: dict) -> str:
    meta = results["meta"]
    lines = ["# facerecon evaluation", "",
             f"Methods: {', '.join(meta['methods'])}. Suites: {', '.join(meta['suites'])}. Seed {meta['seed']}. "
             f"Total time {_f(meta.get('total_s'), 0)} s.", ""]
    if meta.get("model"):
        lines += [f"Model bundle(s): {meta['model']}", ""]
    syn = results.get("synthetic")
    if syn:
        lines += ["## Synthetic geometry (Table I protocol)", "",
                  f"{syn['count']} held-out synthetic faces (seed {syn['seed']}; yaw ±60°, large expressions; "
                  f"crop jitter ±{syn['crop_jitter'][0]:g} in size, σ {syn['crop_jitter'][1]:g} of the side in "
                  "position" + ("; the whole head rendered around each face" if syn.get("head") else "")
                  + (f"; {100 * syn['arkit']:g} % of them with ARKit expressions" if syn.get("arkit") else "") + "). "
                  "Ground truth cropped to 95 mm around the nose tip; prediction aligned by its 68 landmarks, then "
                  "ICP with scale; point-to-plane distance per ground-truth vertex (mm). Expression-only error: "
                  "|sR(pred − pred neutral) − (gt − gt neutral)| per vertex (mm). Landmark-driven peers get the "
                  f"ground-truth 2D landmarks plus {syn['landmark_noise'] * 256:.1f} px noise (at 256 px).", "",
                  "| method | geometry mean (mm) | std over faces | median | per-face vertex std "
                  "| expression-only (mm) | NME 2D | ms / face |", "|---|---|---|---|---|---|---|---|"]
        for name, r in syn["methods"].items():
            lines.append(f"| {name} | {_f(r['geometry_mean_mm'])} | {_f(r['geometry_std_mm'])} | "
                         f"{_f(r['geometry_median_mm'])} | {_f(r['geometry_vertex_std_mm'])} | "
                         f"{_f(r['expression_mean_mm'])} | {_f(r['nme_2d'], 4)} | {_f(r['ms_per_face'], 1)} |")
        for key, title in (("by_yaw", "|yaw| (°)"), ("by_expression", "GT expression size (mean mm)")):
            first = next(iter(syn["methods"].values()))[key]
            lines += ["", f"By {title}: geometry / expression-only error (mm), n per bin in the header", "",
                      "| method | " + " | ".join(f"{b} (n={v['n']})" for b, v in first.items()) + " |",
                      "|---|" + "---|" * len(first)]
            for name, r in syn["methods"].items():
                lines.append(f"| {name} | " + " | ".join(
                    f"{_f(v['geometry_mean_mm'])} / {_f(v['expression_mean_mm'])}" for v in r[key].values()) + " |")
        tm = syn.get("timing", {})
        if tm:
            method_s = sum(r["ms_per_face"] for r in syn["methods"].values()) * syn["count"] / 1000.0
            lines += ["", f"Suite time {_f(tm.get('total_s'), 0)} s: generating faces {_f(tm.get('generate_s'), 0)} s, "
                      f"methods {_f(method_s, 0)} s, metrics (ICP, point-to-plane) {_f(tm.get('metrics_s'), 0)} s."]
        lines += ["", "![heat maps](heatmaps.png)", "", "![cumulative geometry error](cumulative_geometry.png)", "",
                  "![synthetic examples](examples_synthetic.png)", ""]
    lm = results.get("landmarks")
    if lm:
        names = list(next(iter(lm["sets"].values()))["nme_2d"])
        lines += ["## Landmarks (68-point NME, normalised by sqrt(w·h) of the annotation's box)", "",
                  "Every method gets the same crop (3DDFA_V2 crop of the detected landmarks); `detector` is the "
                  "dlib landmarks themselves. ffhq_fan: landmarks predicted by FAN (not hand-annotated), not in "
                  "`all_annotated`.", "",
                  "| set | n | " + " | ".join(f"{n} 2D" for n in names) + " |", "|---|---|" + "---|" * len(names)]
        for set_name, s in lm["sets"].items():
            n = f"{s['n']} ({s['undetected']} boxed from the annotation)" if s.get("undetected") else f"{s['n']}"
            lines.append(f"| {set_name} | {n} | " + " | ".join(_f(100 * s['nme_2d'][n], 2) + "%" for n in names)
                         + " |")
        with3d = {k: v for k, v in lm["sets"].items() if "nme_3d" in v}
        for set_name, s in with3d.items():
            lines += ["", f"3D NME on {set_name} (x, y, z after removing the mean depth offset): " + ", ".join(
                f"{n} {100 * v:.2f}%" for n, v in s["nme_3d"].items())]
        lines += ["", "![cumulative NME](cumulative_nme.png)", "", "![photo examples](examples_photos.png)", ""]
    ph = results.get("photometric")
    if ph:
        lines += ["## Texture (paper Table II)", "",
                  "Photo vs render inside the common face region R_s (face-region triangles of our predicted mesh "
                  "∩ photo), both rendered with our geometry and pose. E_pho = Σ‖R_s ⊙ (I_o − I_r)‖² / N_p (0–255); "
                  "E_pho (L2) = mean per-pixel RGB distance (0–255); MAE per channel on [0, 1].", "",
                  "Detail: the high-frequency energy of the texture's render relative to the photo's, in the face "
                  "region of a 512² crop (1: as detailed as the photo).", "",
                  "| method | n | E_pho | E_pho (L2) | MAE | detail |", "|---|---|---|---|---|---|"]
        for name, s in ph["summary"].items():
            label = {"ours_photo": "ours, photo texture (the default: the photo's detail, de-lit, over the map)",
                     "ours": "ours, network texture (the texture stream's map; the pipeline's light: fitted)",
                     "ours_network_light": "ours, network texture with the network's light",
                     "linear": "linear (mean albedo + fitted SH)"}[name]
            lines.append(f"| {label} | {s['n']} | {_f(s['e_pho'], 1)} | {_f(s['e_pho_l2'], 2)} | {_f(s['mae'], 4)} | "
                         f"{_f(s['detail'], 3) if 'detail' in s else '–'} |")
        lines += ["", "![photometric examples](examples_photometric.png)", ""]
        rec = ph.get("albedo_recovery")
        if rec:
            lines += ["### Albedo recovery (synthetic faces with a known albedo texture)", "",
                      f"{rec['n']} faces (`facerecon_core/eval/albedo.py`, seed {rec['seed']}): mean absolute error per "
                      "channel of the UV albedo, [0, 1], over the texels the image shows and over the whole face; "
                      "'after gain': after one gain per channel (one photo cannot tell a brighter albedo from a "
                      "brighter light).", "",
                      "| method | seen | seen, after gain | whole face | whole face, after gain |",
                      "|---|---|---|---|---|"]
            labels = {"ours_photo": "ours, photo texture", "ours": "ours, network texture",
                      "linear": "linear (mean albedo)"}
            for name, s in rec["summary"].items():
                lines.append(f"| {labels[name]} | {_f(s['seen_mae'], 4)} | {_f(s['seen_mae_gain'], 4)} | "
                             f"{_f(s['face_mae'], 4)} | {_f(s['face_mae_gain'], 4)} |")
            lines += ["", "![albedo recovery](albedo_recovery.png)", ""]
    ex = results.get("expressions")
    if ex:
        lines += ["## Expressions as ARKit keys", "",
                  f"Every {ex['every']}-th labelled photo of taiwan_expr_faces and jaffe: each method's expression "
                  "(shape − neutral) solved into the 51 ARKit keys; RMS residual over the face region and the share "
                  "of the offsets' energy the keys explain; then, per posed label, whether the keys the label should "
                  "raise rise above the neutral photos' (mean weight difference).", "",
                  "| method | photos | RMS residual (mm) | energy explained |", "|---|---|---|---|"]
        for name, m in ex["methods"].items():
            lines.append(f"| {name} | {m['n']} | {_f(m['rms_mm'], 3)} | {_f(100 * m['explained'], 1)} % |")
        for name, m in ex["methods"].items():
            if m["expected"]:
                lines += ["", f"{name}: " + "; ".join(
                    f"{label} {'yes' if e['met'] else 'NO'} (" + ", ".join(
                        f"{k} {v:+.3f}" for k, v in e["rise_over_neutral"].items()) + ")"
                    for label, e in m["expected"].items())]
            lines += ["", f"{name}, the five strongest keys per label (mean weight):", "",
                      "| label | photos | keys |", "|---|---|---|"]
            for label, weights in m["mean_weights"].items():
                top = sorted(weights.items(), key=lambda kv: -kv[1])[:5]
                lines.append(f"| {label} | {m['labels'][label]} | " + ", ".join(f"{k} {v:.2f}" for k, v in top) + " |")
        lines += ["", "![mean ARKit weights per label](arkit_weights.png)", ""]
    ident = results.get("identity")
    if ident:
        lines += ["## Identity across expressions and photos", "",
                  f"Every {ident['every']}-th labelled photo of taiwan_expr_faces and jaffe ({ident['photos']} photos, "
                  f"{ident['people']} people, labels {', '.join(ident['labels'])}). Retrieval: the share of photos "
                  "whose nearest other photo with another expression label, by the similarity-aligned neutral shape "
                  "(higher is better) or by the expression offsets (leak: lower is better), shows the same person. "
                  "Expression accuracy: leave-one-person-out nearest neighbour (chance "
                  f"{100 / max(len(ident['labels']), 1):.0f} %). Spread: mean RMS distance (mm) of the aligned "
                  "neutral shapes within one person and between people. Spurious expression: RMS of the expression "
                  "offsets over the face region on the neutral-labelled photos (mm).", "",
                  "| method | identity retrieval | identity leak into expression | expression accuracy (ARKit) | "
                  "expression accuracy (offsets) | spread within / between (mm) | spurious expression (mm) |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in ident["methods"].items():
            for label, row in ((name, m), (f"{name}, held-out people ({ident.get('heldout_people', 0)}, "
                                           f"{ident.get('heldout_photos', 0)} photos)", m.get("heldout"))):
                if row:
                    lines.append(
                        f"| {label} | {100 * row['identity_retrieval']:.1f} % | {100 * row['expression_leak']:.1f} % | "
                        f"{100 * row['expression_accuracy_arkit']:.1f} % | "
                        f"{100 * row['expression_accuracy_offsets']:.1f} % | {row['within_mm']:.2f} / "
                        f"{row['between_mm']:.2f} | {row.get('spurious_expression_mm', float('nan')):.2f} |")
        curves = ident.get("same_person", {})
        if curves:
            first = next(iter(curves.values()))
            lines += ["", f"Several photos of one person (synthetic, seed {first['seed']}): {first['people']} people "
                      f"× {first['per_person']} photos, each with its own expression, pose and light; the identity "
                      "combined from n photos as `--same-person` does, point-to-plane error to the true neutral "
                      "face (mm), mean over disjoint groups:", "",
                      "| method | " + " | ".join(f"{n} photo{'s' if n > 1 else ''}" for n in first["photos"]) + " |",
                      "|---|" + "---|" * len(first["photos"])]
            for name, c in curves.items():
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in c["mean_mm"]) + " |")
            lines += ["", "![identity error against photos combined](same_person.png)", ""]
    head = results.get("head")
    if head:
        lines += _head_lines(head)
    video = results.get("video")
    if video:
        lines += _video_lines(video)
    sp = results.get("speed")
    if sp:
        lines += ["## Speed (this machine)", "", "| method | ms / face (one at a time) | ms / face (batches of 16) |",
                  "|---|---|---|"]
        for name, s in sp.items():
            if not name.startswith("_"):
                lines.append(f"| {name} | {_f(s['single_ms'], 1)} | {_f(s['batched_ms'], 1)} |")
        metric_ms = _f(sp.get("_metric_geometry_ms"), 0)
        lines += ["", f"Geometry metric (crop + ICP + point-to-plane): {metric_ms} ms / face."]
        if "_detect_ms" in sp:
            lines.append(f"Face + landmark detection (dlib): {_f(sp['_detect_ms'], 0)} ms / photo (median).")
        lines.append("")
    return "\n".join(lines)


def _head_lines(head: dict) -> list[str]:
    if "skipped" in head:
        return ["## Whole head (`--mesh head`)", "", f"Skipped: {head['skipped']}", ""]
    lines = ["## Whole head (`--mesh head`)", "",
             "The head's face region (where ICT's face lies on ours) against the face it was built around, point to "
             "surface (median over faces of the mean and 95th percentile, mm); crossing triangle pairs, eyeballs "
             "against the lids and teeth against the lips, beyond as many as ICT's own head has in the same state "
             "(its lids' inner sides cut into its eyeballs by design; the most of any face, and in brackets how many "
             "faces have any); the time to build a head (median ms, on this machine).", "",
             "| faces | n | face mean / p95 (mm) | eyes: rest / blink / jaw open | teeth: rest / blink / jaw open "
             "| ms / head |", "|---|---|---|---|---|---|"]
    for name, r in head.items():
        if name == "timing_s":
            continue

        def crossings(part: str, r=r) -> str:
            return " / ".join(f"{r[f'{part} {s}']:.0f} ({r[f'{part} {s} faces']})" for s in ("rest", "blink", "jaw open"))

        lines.append(f"| {name} | {r['count']} | {r['face_mean_mm']:.2f} / {r['face_p95_mm']:.2f} | {crossings('eyes')} "
                     f"| {crossings('teeth')} | {r['build_ms']:.0f} |")
    return lines + [""]


def _video_lines(video: dict) -> list[str]:
    lines = ["## Face from video (`facerecon track`)", ""]
    real = video.get("real")
    if real:
        lines += [f"{real['video']} ({real['frames']} frames, {real['detections']} detection(s), "
                  f"{real['without_face']} without a face; {real['frames_per_s']:.1f} frames/s tracking, per frame "
                  + ", ".join(f"{k[:-3]} {v:.0f} ms" for k, v in real["stage_ms"].items() if k != "reference_ms")
                  + f"). Jitter, the mean frame-to-frame acceleration of the posed face's vertices: "
                  f"{real['raw_jitter_mm']:.3f} mm/frame² raw, {real['jitter_mm']:.3f} with the default One Euro "
                  f"filter (min_cutoff {real['default'][0]:g} Hz, beta {real['default'][1]:g}): "
                  f"{real['reduction']:.1f}× lower; its lag on a 0 → 1 step: {real['lag_frames']} frame(s) to half.",
                  "", "| min_cutoff (Hz) | beta | jitter (mm/frame²) | × lower | step lag (frames) |", "|---|---|---|---|---|"]
        for row in real["grid"]:
            lines.append(f"| {row['min_cutoff']:g} | {row['beta']:g} | {row['jitter_mm']:.3f} | {row['reduction']:.1f} "
                         f"| {row['lag_frames']} |")
        lines.append("")
    syn = video.get("synthetic")
    if syn:
        lines += [f"Synthetic video ({syn['frames']} frames at 720p, seed {syn['seed']}: a face of the face model "
                  "through ARKit expressions and head turns over a moving background): ARKit weight MAE "
                  f"{syn['weight_mae']:.3f}, pose error {syn['pose_error_deg']:.2f}°, identity error "
                  f"{syn['identity_mm']:.3f} mm (the single-photo pipeline on the middle frame: "
                  f"{syn['single_photo_identity_mm']:.3f} mm); {syn['frames_per_s']:.1f} frames/s.", ""]
    return lines


def write_report(results: dict, out_dir: Path, model: FaceModel) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    syn = results.get("synthetic")
    if syn:
        pv = syn.get("_per_vertex", {})
        if pv:
            np.savez_compressed(out_dir / "per_vertex.npz", **{f"{n}__{k}": v for n, d in pv.items()
                                                                for k, v in d.items()})
            _heatmaps(pv, model, out_dir / "heatmaps.png")
        _cumulative({n: [f["geometry_mm"] for f in r["faces"]] for n, r in syn["methods"].items()},
                    "mean point-to-plane error per face (mm)", out_dir / "cumulative_geometry.png")
        ex = syn.get("_examples")
        if ex:
            _landmark_overlays(ex["images"], ex["landmarks"], out_dir / "examples_synthetic.png")
    lm = results.get("landmarks")
    if lm:
        names = list(lm["photos"][0]["nme_2d"]) if lm["photos"] else []
        real = [r for r in lm["photos"] if not r["pseudo"]]
        _cumulative({n: [100 * r["nme_2d"][n] for r in real] for n in names}, "NME 2D (%)",
                    out_dir / "cumulative_nme.png")
    ph = results.get("photometric")
    if ph:
        _photometric_overlays(ph.get("_examples", []), out_dir / "examples_photometric.png")
        if ph.get("albedo_recovery"):
            _albedo_bars(ph["albedo_recovery"]["summary"], out_dir / "albedo_recovery.png")
    if results.get("expressions"):
        _arkit_heatmaps(results["expressions"], out_dir / "arkit_weights.png")
    if results.get("identity", {}).get("same_person"):
        _same_person_plot(results["identity"]["same_person"], out_dir / "same_person.png")
    if lm and "_photo_examples" in lm:
        _landmark_overlays(*lm["_photo_examples"], out_dir / "examples_photos.png")
    (out_dir / "results.json").write_text(json.dumps(_plain(results), indent=1))
    (out_dir / "report.md").write_text(_markdown(results))
    return out_dir / "report.md"
