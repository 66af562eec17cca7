"""The bundle's *rest*: the network's ARKit weights on photos of neutral faces (``facerecon calibrate``).

On real photos the network gives every face one shared expression on top of its own (on the performers' neutral
photos 1.5 of their 1.6 mm RMS; none on synthetic faces): read as expression, a calm face comes out
sneering with lowered brows. The mean ARKit weights of the network's expression over neutral-labelled photos of
training people are stored in the bundle's manifest; the decode
(:meth:`facerecon_core.pipeline.decode.Decoder.split`) then measures expressions from them and gives the rest to
the identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core.datasets.people import TRAINING_NEUTRAL_SETS
from facerecon_core.facemodel import FaceModel
from facerecon_core.inference.bundle import MANIFEST, read_manifest
from facerecon_core.io.atomic import atomic_write_bytes


@dataclass(frozen=True)
class RestCalibration:
    weights: dict[str, float]  # ARKit name → the mean weight over the photos
    photos: int  # photos with a face
    skipped: list[tuple[str, str]]  # (photo, reason)
    sets: tuple[str, ...]
    spread: float  # RMS over the photos of their weights' distance to the mean (how well one rest fits them)


def calibrate_rest(model_dir: Path, photos: list[Path], facemodel: FaceModel | None = None,
                   sets: tuple[str, ...] = TRAINING_NEUTRAL_SETS,
                   progress: Callable[[int, int], None] | None = None) -> RestCalibration:
    """The bundle's mean ARKit weights over ``photos`` (their largest face each, the pipeline's detection and crop,
    mirror and shift averaging), measured around zero whatever rest the bundle already holds."""
    from facerecon_core.detect import NoFaceError
    from facerecon_core.io.photo import PhotoError
    from facerecon_core.pipeline.decode import Decoder
    from facerecon_core.pipeline.reconstructor import Reconstructor

    recon = Reconstructor(model_dir, facemodel=facemodel, texture="network", light="network", texture_size=8)
    if not recon.facemodel.has_arkit:
        raise ValueError("the face model has no ARKit rig: rebuild it with `facerecon assets build`")
    recon.decoder = Decoder(recon.facemodel)  # the network's own weights, not those around a stored rest
    rows, skipped = [], []
    for i, photo in enumerate(photos):
        try:
            rec = recon.reconstruct(photo)[0]
            rows.append([rec.arkit_weights[n] for n in recon.decoder.solver.names])
        except (NoFaceError, PhotoError) as exc:
            skipped.append((str(photo), str(exc)))
        if progress is not None:
            progress(i + 1, len(photos))
    if not rows:
        raise ValueError(f"no face found in any of the {len(photos)} photos")
    w = np.array(rows)
    mean = w.mean(0)
    spread = float(np.sqrt(((w - mean) ** 2).sum(1).mean()))
    return RestCalibration(dict(zip(recon.decoder.solver.names, mean.round(4).tolist())), len(rows), skipped,
                           tuple(sets), spread)


def write_rest(model_dir: Path, calibration: RestCalibration) -> Path:
    """Store the calibration as the manifest's ``rest`` (atomically; the graphs are untouched)."""
    manifest = read_manifest(model_dir)
    manifest["rest"] = {"arkit": calibration.weights, "photos": calibration.photos, "sets": list(calibration.sets),
                        "spread": round(calibration.spread, 4)}
    return atomic_write_bytes(model_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
