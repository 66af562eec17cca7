"""Who a photo of the shared sets that show people several times is of (``taiwan_expr_faces`` performers, ``jaffe``
and ``yalefaces`` subjects, by their ``labels.csv``), and whether it is labelled neutral: the same-person pairs of
profiled data, the rest faces of their fits and the identity evaluation."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

PERSON_COLUMNS = {"taiwan_expr_faces": "performer", "jaffe": "subject", "yalefaces": "subject"}
"""Per set (folder name), the ``labels.csv`` column naming the person."""
HELDOUT_SETS = ("jaffe",)  # no photo of these sets' people is trained on (taiwan_expr_faces: every 10th photo is)

NEUTRAL_LABELS = {"taiwan_expr_faces": ("posed_expression", ("neutral",)), "jaffe": ("expression", ("neutral",)),
                  "yalefaces": ("condition", ("normal",))}
"""Per set, the ``labels.csv`` column naming the expression and the values (prefixes) that mean a neutral face
(``taiwan_expr_faces``' type-0 baseline reads "neutral?(…)")."""


@functools.lru_cache(maxsize=16)
def _labels(folder: str, column: str) -> dict[str, str]:
    table = Path(folder) / "labels.csv"
    if not table.is_file():
        return {}
    with open(table, newline="") as fh:
        return {row["file"]: row[column].strip() for row in csv.DictReader(fh) if row.get(column, "").strip()}


def person_of(photo: str | Path) -> str | None:
    """``set/person`` of a photo of one of :data:`PERSON_COLUMNS`' sets, else None."""
    photo = Path(photo)
    if photo.parent.name not in PERSON_COLUMNS:
        return None
    person = _labels(str(photo.parent), PERSON_COLUMNS[photo.parent.name]).get(photo.name)
    return f"{photo.parent.name}/{person}" if person else None


TRAINING_NEUTRAL_SETS = tuple(s for s in NEUTRAL_LABELS if s not in HELDOUT_SETS)
"""The sets whose neutral-labelled photos show training people (never the held-out ones)."""


def neutral_photos(shared: Path, sets: tuple[str, ...] = TRAINING_NEUTRAL_SETS) -> list[Path]:
    """The neutral-labelled photos of ``sets`` under ``shared/faces`` (sorted); ``ValueError`` for a held-out or
    unlabelled set, ``FileNotFoundError`` for a missing one."""
    photos = []
    for name in sets:
        if name in HELDOUT_SETS:
            raise ValueError(f"set {name!r} holds the people kept out for reporting; use the training people's sets")
        if name not in NEUTRAL_LABELS:
            raise ValueError(f"set {name!r} has no neutral label (known: {', '.join(NEUTRAL_LABELS)})")
        folder = Path(shared) / "faces" / name
        if not (folder / "labels.csv").is_file():
            raise FileNotFoundError(f"{folder}/labels.csv: the set is missing")
        photos += sorted(p for p in folder.iterdir() if labelled_neutral(p))
    return photos


def labelled_neutral(photo: str | Path) -> bool:
    """Whether a photo of one of :data:`NEUTRAL_LABELS`' sets is labelled with a neutral face."""
    photo = Path(photo)
    if photo.parent.name not in NEUTRAL_LABELS:
        return False
    column, values = NEUTRAL_LABELS[photo.parent.name]
    return _labels(str(photo.parent), column).get(photo.name, "").lower().startswith(values)
