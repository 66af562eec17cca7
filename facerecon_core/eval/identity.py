"""Identity across expressions and photos (``facerecon eval --suite identity``).

- **Several photos, one person** (synthetic): people of known identity, each in ``per_person`` photos with their
  own expression, pose, light and background; the identity combined from 1, 2, 4, … of them
  (:func:`facerecon_core.pipeline.same_person.combine_identities`, as ``--same-person`` does) against the ground
  truth (point-to-plane, paper Table I protocol), averaged over disjoint groups of the photos.
- **Real people** (the labelled photos of ``taiwan_expr_faces`` and ``jaffe``, every ``every``-th): per method,

  - *identity across expressions*: for each photo, is the nearest other photo by neutral shape (similarity-aligned
    to the mean face, over the face region), among photos with another expression label, of the same person?
  - *identity leaking into expression*: the same with the expression offsets (lower is better);
  - *expression accuracy*: 7-way, leave-one-person-out nearest neighbour on the ARKit weights and on the offsets;
  - *spread*: mean RMS distance between aligned neutral shapes of one person and of different people;
  - *spurious expression*: the RMS of the expression offsets over the face region on the neutral-labelled photos;

  all of them over every photo and over the held-out people alone (:data:`HELDOUT_SETS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerecon_core.datasets.people import HELDOUT_SETS
from facerecon_core.eval import metrics
from facerecon_core.facemodel import FaceModel
from facerecon_core.pipeline.arkit import ArkitSolver
from facerecon_core.pipeline.same_person import combine_identities
from facerecon_core.pose import umeyama

GROUPS = (1, 2, 4, 8)


def same_person_curve(method, model: FaceModel, seed: int = 0, people: int = 12, per_person: int = 8,
                      verbose: bool = False) -> dict:
    """Identity error (mm) against the number of photos combined, for one method (``method.reconstruct_batch``)."""
    from facerecon_core.eval.suites import CROP_SIZE, _log
    from facerecon_core.eval.synthetic import SyntheticFaces

    data = SyntheticFaces(model, seed, people * per_person, res=CROP_SIZE, same_identity=per_person)
    lm = model.landmark_indices
    region = model.face_vertices()
    errors: dict[int, list[float]] = {n: [] for n in GROUPS if n <= per_person}
    for person in range(people):
        faces = [data[person * per_person + k] for k in range(per_person)]
        outs = method.reconstruct_batch(np.stack([f.image for f in faces]), None)
        truth = faces[0].neutral
        neutrals = np.stack([o.neutral for o in outs])
        yaws = np.array([o.angles[1] if o.angles is not None else 0.0 for o in outs])
        for n in errors:
            for start in range(0, per_person - n + 1, n):  # disjoint groups of n photos
                shape, _ = combine_identities(neutrals[start:start + n], yaws[start:start + n], np.ones(n), region)
                errors[n].append(metrics.geometry_error(shape, model.triangles, truth, pred_landmarks=shape[lm],
                                                        gt_landmarks=truth[lm]).mean)
        _log(f"same person {person + 1}/{people}", verbose)
    return {"people": people, "per_person": per_person, "seed": seed,
            "photos": list(errors), "mean_mm": [float(np.mean(errors[n])) for n in errors],
            "std_mm": [float(np.std(errors[n])) for n in errors], "groups": [len(errors[n]) for n in errors]}


def identity_suite(methods: list, model: FaceModel, shared: Path, every: int = 3, limit: int | None = None,
                   verbose: bool = False) -> dict:
    """Retrieval, leaking, expression accuracy and spread on the labelled real photos (see the module)."""
    from facerecon_core.eval.expressions import labelled_photos
    from facerecon_core.eval.suites import _load, _log, prepare_photo

    solver = ArkitSolver.of(model)
    region = model.face_vertices()
    mean_face = model.mean_shape[region].astype(np.float64)
    rows: dict[str, dict[str, list]] = {m.name: {"neutral": [], "offsets": [], "arkit": []} for m in methods}
    labels, persons = [], []
    for _, path, label, person in labelled_photos(shared, every, limit):
        try:
            prep = prepare_photo(_load(path))
        except ValueError:
            continue
        labels.append(label)
        persons.append(person)
        for method in methods:
            out = method.reconstruct(prep.crop_image, prep.crop.to_crop(prep.landmarks))
            neutral = np.asarray(out.neutral, np.float64)[region]
            aligned = umeyama(neutral, mean_face).apply(neutral)
            offsets = np.asarray(out.shape - out.neutral, np.float32)
            rows[method.name]["neutral"].append(aligned.reshape(-1))
            rows[method.name]["offsets"].append(offsets[region].reshape(-1))
            rows[method.name]["arkit"].append(solver.weights(offsets))
        _log(f"identity {path.name} ({person}, {label})", verbose)
    labels, persons = np.array(labels), np.array(persons)
    heldout = np.array([p.split("/")[0] in HELDOUT_SETS for p in persons], bool)
    results = {}
    for name, r in rows.items():
        arrays = [np.array(r[k], np.float64) for k in ("neutral", "offsets", "arkit")]
        results[name] = _measures(*arrays, persons, labels)
        if heldout.sum() > 1:
            results[name]["heldout"] = _measures(*(a[heldout] for a in arrays), persons[heldout], labels[heldout])
    return {"every": every, "photos": len(labels), "people": len(set(persons.tolist())),
            "heldout_photos": int(heldout.sum()), "heldout_people": len(set(persons[heldout].tolist())),
            "labels": sorted(set(labels.tolist())), "methods": results}


def _measures(neutral, offsets, arkit, persons, labels) -> dict:
    within, between = _spread(neutral, persons)
    calm = labels == "neutral"  # the expression a method gives a neutral face: spurious
    spurious = np.sqrt((offsets[calm].reshape(int(calm.sum()), -1, 3) ** 2).sum(-1).mean(-1)) if calm.any() else []
    return {"spurious_expression_mm": float(np.mean(spurious)) if len(spurious) else float("nan"),
            "identity_retrieval": _retrieval(neutral, persons, labels),
            "expression_leak": _retrieval(offsets, persons, labels),
            "expression_accuracy_arkit": _accuracy(arkit, persons, labels),
            "expression_accuracy_offsets": _accuracy(offsets, persons, labels),
            "within_mm": within, "between_mm": between}


def _distances(x: np.ndarray) -> np.ndarray:
    squared = (x ** 2).sum(1)
    return np.maximum(squared[:, None] + squared[None] - 2.0 * x @ x.T, 0.0)


def _retrieval(x: np.ndarray, persons: np.ndarray, labels: np.ndarray) -> float:
    """Share of photos whose nearest photo with another label is of the same person."""
    d = _distances(x)
    d[labels[:, None] == labels[None]] = np.inf
    nearest = d.argmin(1)
    return float(np.mean(persons[nearest] == persons))


def _accuracy(x: np.ndarray, persons: np.ndarray, labels: np.ndarray) -> float:
    """7-way (the labels present) nearest-neighbour accuracy, leaving each photo's person out."""
    d = _distances(x)
    d[persons[:, None] == persons[None]] = np.inf
    return float(np.mean(labels[d.argmin(1)] == labels))


def _spread(x: np.ndarray, persons: np.ndarray) -> tuple[float, float]:
    """Mean RMS vertex distance (mm) between aligned neutral shapes of one person, and of different people."""
    rms = np.sqrt(_distances(x) / (x.shape[1] // 3))
    same = persons[:, None] == persons[None]
    off_diagonal = ~np.eye(len(x), dtype=bool)
    return float(rms[same & off_diagonal].mean()), float(rms[~same].mean())
