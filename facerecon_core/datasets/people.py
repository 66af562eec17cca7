"""Who a photo of the shared sets that show people several times is of (``taiwan_expr_faces`` performers, ``jaffe``
and ``yalefaces`` subjects, by their ``labels.csv``): the same-person pairs of profiled data and the identity
evaluation."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

PERSON_COLUMNS = {"taiwan_expr_faces": "performer", "jaffe": "subject", "yalefaces": "subject"}
"""Per set (folder name), the ``labels.csv`` column naming the person."""


@functools.lru_cache(maxsize=8)
def _labels(folder: str) -> dict[str, str]:
    table = Path(folder) / "labels.csv"
    if not table.is_file():
        return {}
    with open(table, newline="") as fh:
        column = PERSON_COLUMNS[Path(folder).name]
        return {row["file"]: row[column].strip() for row in csv.DictReader(fh) if row.get(column, "").strip()}


def person_of(photo: str | Path) -> str | None:
    """``set/person`` of a photo of one of :data:`PERSON_COLUMNS`' sets, else None."""
    photo = Path(photo)
    if photo.parent.name not in PERSON_COLUMNS:
        return None
    person = _labels(str(photo.parent)).get(photo.name)
    return f"{photo.parent.name}/{person}" if person else None
