"""The ARKit weights on real expression photos (``facerecon eval --suite expressions``).

Over the posed-expression photos of ``taiwan_expr_faces`` and ``jaffe`` (every ``every``-th, by their
``labels.csv``): how much of each method's expression (shape − neutral) the 51 keys explain (RMS residual in
mm over the face region, and the share of the offsets' energy), and, per posed label, the mean weight of each
key, for our network and for 3DDFA_V2 (its 10 expression components' offsets solved into the same keys).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facerecon_core.datasets.people import PERSON_COLUMNS
from facerecon_core.facemodel import FaceModel
from facerecon_core.pipeline.arkit import ArkitSolver

SETS = {"taiwan_expr_faces": "posed_expression", "jaffe": "expression"}
LABELS = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad", "SU": "surprise"}
EXPECTED = {  # what each label's weights should raise (the reading of ARKit)
    "happy": ("mouthSmile", "cheekSquint"), "surprise": ("jawOpen", "browInnerUp", "eyeWide"),
    "angry": ("browDown",), "disgust": ("noseSneer", "mouthUpperUp"), "sad": ("mouthFrown", "browInnerUp"),
}


def labelled_photos(shared: Path, every: int = 3, limit: int | None = None) -> list[tuple[str, Path, str, str]]:
    """(set, photo, label, person) of every ``every``-th labelled photo of each set; labels in one vocabulary,
    persons as ``set/id``."""
    out = []
    for name, column in SETS.items():
        with open(shared / "faces" / name / "labels.csv", newline="") as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: r["file"])
        for row in rows[::every]:
            label = row[column].strip().lower()
            label = "neutral" if label.startswith("neutral") else label  # taiwan's type-0 baseline: "neutral?(…)"
            label = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "surprised": "surprise",
                     "sadness": "sad", "happiness": "happy"}.get(label, label)
            out.append((name, shared / "faces" / name / row["file"], label, f"{name}/{row[PERSON_COLUMNS[name]]}"))
    return out if limit is None else out[:limit]


def expression_suite(methods: list, model: FaceModel, shared: Path, every: int = 3, limit: int | None = None,
                     verbose: bool = False) -> dict:
    """Per method: the keys' fit to its expressions and the mean weight of each key per label."""
    from facerecon_core.eval.suites import _load, _log, prepare_photo

    solver = ArkitSolver.of(model)
    region = model.face_vertices()
    per_method: dict[str, list] = {m.name: [] for m in methods}
    for set_name, path, label, _ in labelled_photos(shared, every, limit):
        try:
            prep = prepare_photo(_load(path))
        except ValueError:
            continue
        for method in methods:
            out = method.reconstruct(prep.crop_image, prep.crop.to_crop(prep.landmarks))
            offsets = np.asarray(out.shape - out.neutral, np.float32)
            solution = solver.solve(offsets)
            residual = solution.residual[region]
            energy = float((offsets[region] ** 2).sum())
            per_method[method.name].append({
                "set": set_name, "photo": path.name, "label": label, "weights": solution.weights,
                "rms_mm": float(np.sqrt((residual ** 2).sum(1).mean())),
                "explained": 1.0 - float((residual ** 2).sum()) / energy if energy > 0 else float("nan")})
        _log(f"expressions {path.name} ({label})", verbose)
    results = {}
    for name, rows in per_method.items():
        labels = sorted({r["label"] for r in rows})
        mean = {label: {key: float(np.mean([r["weights"][key] for r in rows if r["label"] == label]))
                        for key in solver.names} for label in labels}
        results[name] = {"n": len(rows), "rms_mm": float(np.mean([r["rms_mm"] for r in rows])),
                         "explained": float(np.nanmean([r["explained"] for r in rows])),
                         "labels": {label: sum(r["label"] == label for r in rows) for label in labels},
                         "mean_weights": mean, "expected": _expected(mean)}
    return {"every": every, "keys": list(solver.names), "methods": results}


def _expected(mean: dict[str, dict[str, float]]) -> dict[str, dict]:
    """For each label with an expectation: its expected keys' mean weight against the neutral label's, and
    whether every expected key family rises above neutral."""
    out = {}
    neutral = mean.get("neutral")
    for label, families in EXPECTED.items():
        if label not in mean or neutral is None:
            continue
        rises = {}
        for family in families:
            keys = [k for k in mean[label] if k.startswith(family)]
            rises[family] = float(np.mean([mean[label][k] - neutral[k] for k in keys]))
        out[label] = {"rise_over_neutral": rises, "met": all(v > 0.02 for v in rises.values())}
    return out
