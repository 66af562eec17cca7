"""Fitting real photos: detect, crop as 3DDFA_V2 does from landmarks, fit in batches, cache.

Each photo's fit is cached as ``<cache>/<sha1 of the photo>-<config digest>.npz`` so the albedo
basis and the ``profiled`` / ``texture`` datasets reuse the same fits. With ``person``, the photos of one person
are fitted together with one identity; their cache names add a digest of the person's photos. With ``neutral``, the
photos labelled neutral keep their expression near zero (:attr:`FitConfig.neutral_prior`); the names of the fits
this changes (theirs and their people's) add ``-n<neutral_prior>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facerecon_core import imageops
from facerecon_core.detect import Crop, NoFaceError, detect_face
from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting.fitter import FitConfig, Fitter
from facerecon_core.io import atomic_save_npz, atomic_write_bytes
from facerecon_core.io.photo import PhotoError, load_photo


@dataclass
class PhotoFit:
    """One photo's crop, detected landmarks and fitted parameters."""

    source: str
    crop_box: np.ndarray  # (left, top, side) in photo pixels
    image: np.ndarray  # (S, S, 3) uint8 crop
    detected: np.ndarray  # (68, 2) detected landmarks in crop pixels
    id_coeff: np.ndarray
    exp_coeff: np.ndarray
    albedo_coeff: np.ndarray
    angles: np.ndarray
    translation: np.ndarray
    sh: np.ndarray
    offsets: np.ndarray  # (V, 3), zeros when offsets were not fitted
    landmarks: np.ndarray  # (68, 2) fitted landmarks in crop pixels
    landmark_error: float  # mean pixel error of the fit in the crop
    arkit_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (K,) ARKit weights when
    # fitted (FitConfig.arkit), else empty

    def usable(self, max_error: float = 0.02) -> bool:
        """Whether the fit is good enough to build data on: mean landmark error ≤ ``max_error`` × crop size."""
        return self.landmark_error <= max_error * self.image.shape[0]

    @property
    def crop(self) -> Crop:
        left, top, side = self.crop_box
        return Crop(float(left), float(top), float(side), self.image.shape[0])

    def shape(self, model: FaceModel) -> np.ndarray:
        """Fitted shape (V, 3) in the model frame."""
        return self.identity(model) + self.expression(model)

    def expression(self, model: FaceModel) -> np.ndarray:
        """Fitted expression offsets (V, 3): the components', plus the ARKit keys' when they were fitted."""
        offsets = model.expression_offsets(self.exp_coeff)
        if len(self.arkit_weights):
            offsets = offsets + model.arkit_offsets(self.arkit_weights)
        return offsets

    def identity(self, model: FaceModel) -> np.ndarray:
        """Fitted neutral shape (V, 3): identity plus offsets, no expression."""
        return model.vertices(self.id_coeff) + self.offsets

    def save(self, path: Path) -> None:
        atomic_save_npz(path, {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> PhotoFit:
        with np.load(path, allow_pickle=False) as data:
            values = {f.name: data[f.name] for f in fields(cls)}
        values["source"] = str(values["source"])
        values["landmark_error"] = float(values["landmark_error"])
        return cls(**values)


SQUEEZED_SETS = {"taiwan_expr_faces": 1.15}
"""Photo sets (folder names) whose images were resized without keeping their aspect, and the height factor that
undoes it: dlib's nasion–chin over outer-eye-corner distance is 1.04 on ``taiwan_expr_faces``' frontal photos against
1.20 on ``jaffe``'s (also East Asian adults) and 1.22 on FFHQ's (docs/training-history.md, "Where the short faces
come from"). Their photos are stretched back before they are fitted, so the training labels built on them have the
faces' own proportions."""


def prepare_photo(path: Path, size: int = 256) -> tuple[np.ndarray, np.ndarray, Crop]:
    """Load a photo (stretched back when its set is in :data:`SQUEEZED_SETS`), find its largest face and crop it from
    the landmarks: (crop, landmarks, Crop)."""
    image = load_photo(path)
    factor = SQUEEZED_SETS.get(Path(path).parent.name)
    if factor:
        image = imageops.resize(image, image.shape[1], round(image.shape[0] * factor), "linear")
    face = detect_face(image, source=path)
    crop = Crop.from_landmarks(face.landmarks, size)
    return crop.apply(image), crop.to_crop(face.landmarks).astype(np.float32), crop


def fit_photos(
    paths: list[Path],
    model: FaceModel,
    config: FitConfig = FitConfig(),
    cache: Path | None = None,
    size: int = 256,
    batch_size: int = 8,
    progress: bool = True,
    need: int | None = None,
    person: Callable[[Path], str | None] | None = None,
    neutral: Callable[[Path], bool] | None = None,
) -> tuple[list[PhotoFit], dict[str, str]]:
    """Fit the photos in order; returns the fits and, per photo that failed, its one-line reason.

    With ``need``, the walk stops once ``need`` usable fits are found (:meth:`PhotoFit.usable`): the
    photos after that are neither detected nor fitted, and the fits are those of the photos walked.
    With ``cache``, fits and detection failures are stored per photo and config and read back.
    With ``person`` (photo → person or None), the photos of ``paths`` showing one person are fitted in one
    batch with one identity (:meth:`Fitter.fit`'s ``groups``), whatever ``batch_size``; a walk that reaches one
    of them fits them all. With ``neutral`` (photo → labelled neutral), those photos' expression priors weigh
    ``config.neutral_prior`` times more (:meth:`Fitter.fit`'s ``neutral``).
    """
    settings = {k: v for k, v in asdict(config).items() if k != "neutral_prior"}  # it names only the fits it changes
    digest = hashlib.sha1(json.dumps([settings, size, model.content_hash, SQUEEZED_SETS]).encode()).hexdigest()[:10]
    members = _people(paths, person) if person is not None else {}
    fitter = Fitter(model, config)
    fits: dict[Path, PhotoFit] = {}
    failures: dict[str, str] = {}
    walked = usable = 0
    bar = tqdm(total=need, desc="usable fits", disable=not progress or need is None)
    while walked < len(paths) and (need is None or usable < need):
        chunk = paths[walked:] if need is None else paths[walked:walked + need - usable]
        walked += len(chunk)
        chunk = list(dict.fromkeys(q for p in chunk for q in members.get(p, (p,))))  # with the rest of each person
        _fit_chunk(chunk, fitter, digest, cache, size, batch_size, fits, failures, progress and need is None, members,
                   neutral)
        usable = sum(fits[p].usable() for p in paths[:walked] if p in fits)
        bar.update(min(need or 0, usable) - bar.n)
    bar.close()
    return [fits[p] for p in paths[:walked] if p in fits], failures


def _people(paths: list[Path], person: Callable[[Path], str | None]) -> dict[Path, tuple[Path, ...]]:
    """Per photo of a person with several photos in ``paths``: all that person's photos, in ``paths``' order."""
    by_person: dict[str, list[Path]] = {}
    for path in dict.fromkeys(paths):
        who = person(path)
        if who is not None:
            by_person.setdefault(who, []).append(path)
    return {path: tuple(group) for group in by_person.values() if len(group) > 1 for path in group}


def _fit_chunk(paths: list[Path], fitter: Fitter, digest: str, cache: Path | None, size: int, batch_size: int,
               fits: dict[Path, PhotoFit], failures: dict[str, str], progress: bool,
               members: dict[Path, tuple[Path, ...]], neutral: Callable[[Path], bool] | None) -> None:
    """Detect and fit ``paths`` (cached fits and failures read back) into ``fits`` / ``failures``; the photos of one
    person in ``members`` (all of them in ``paths``) are fitted together, or all read back from the cache."""
    model = fitter.model
    calm = {path: bool(neutral(path)) if neutral is not None else False for path in paths}
    hashes = {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in paths} if cache else {}
    groups = {members[path] for path in paths if path in members}  # the people of this chunk, each whole in it
    group_digest = {path: hashlib.sha1("".join(sorted(hashes[q] for q in group)).encode()).hexdigest()[:10]
                    for group in groups for path in group if cache}
    anchored = {path for path in paths if any(calm[q] for q in members.get(path, (path,)))}  # fits a label changes
    names = {path: f"{hashes[path]}-{digest}" + (f"-{group_digest[path]}" if path in group_digest else "")
             + (f"-n{fitter.config.neutral_prior:g}" if path in anchored else "") for path in hashes}
    cached_groups = {group for group in groups
                     if cache and all((cache / f"{names[q]}.npz").is_file() or (cache / f"{names[q]}.failed").is_file()
                                      for q in group)}
    pending: list[tuple[Path, Path | None, tuple]] = []
    for path in tqdm(paths, desc="detect", disable=not progress, leave=False):
        cached = cache / f"{names[path]}.npz" if cache else None
        failed = cached.with_suffix(".failed") if cached is not None else None
        if path in fits or path in failures:
            continue
        if path not in members or members[path] in cached_groups:
            if cached is not None and cached.is_file():
                fits[path] = PhotoFit.load(cached)
                continue
            if failed is not None and failed.is_file():
                failures[str(path)] = failed.read_text().strip()
                continue
        try:
            pending.append((path, cached, prepare_photo(path, size)))
        except (PhotoError, NoFaceError) as exc:
            failures[str(path)] = str(exc)
            if failed is not None:
                atomic_write_bytes(failed, f"{exc}\n".encode())
    alone = [item for item in pending if item[0] not in members]
    batches = [(alone[start:start + batch_size], False) for start in range(0, len(alone), batch_size)]
    for group in dict.fromkeys(members[item[0]] for item in pending if item[0] in members):
        batches.append(([item for item in pending if item[0] in group], True))
    for batch, one_person in tqdm(batches, desc="fit photos", disable=not progress):
        crops = np.stack([prepared[0] for _, _, prepared in batch])
        landmarks = np.stack([prepared[1] for _, _, prepared in batch])
        result = fitter.fit(crops, landmarks, progress=False, groups=np.zeros(len(batch), int) if one_person else None,
                            neutral=np.array([calm[path] for path, _, _ in batch]))
        for b, (path, cached, (crop_image, detected, crop)) in enumerate(batch):
            fit = PhotoFit(
                source=str(path), crop_box=np.array([crop.left, crop.top, crop.side]), image=crop_image,
                detected=detected, id_coeff=result.id_coeff[b], exp_coeff=result.exp_coeff[b],
                albedo_coeff=result.albedo_coeff[b], angles=result.angles[b], translation=result.translation[b],
                sh=result.sh[b], offsets=(np.zeros((model.n_vertices, 3), np.float32) if result.offsets is None
                                          else result.offsets[b]),
                landmarks=result.landmarks[b], landmark_error=float(result.landmark_error[b]),
                arkit_weights=(np.zeros(0, np.float32) if result.arkit_weights is None
                               else result.arkit_weights[b].astype(np.float32)),
            )
            if cached is not None:
                fit.save(cached)
            fits[path] = fit


def fit_report(fits: list[PhotoFit], failures: dict[str, str], path: Path | None = None) -> str:
    """One line per photo (landmark error after fitting, usable or why it failed), optionally
    written to ``path`` as TSV; returns a one-line summary."""
    rows = ["photo\tlandmark_error_px\tstatus"]
    rows += [f"{f.source}\t{f.landmark_error:.3f}\t{'ok' if f.usable() else 'unusable (error too large)'}"
             for f in fits]
    rows += [f"{source}\t\tfailed: {reason}" for source, reason in failures.items()]
    if path is not None:
        atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())
    errors = np.array([f.landmark_error for f in fits]) if fits else np.zeros(1)
    usable = sum(f.usable() for f in fits)
    return (f"fitted {len(fits)} photos (landmark error mean {errors.mean():.2f} px, max {errors.max():.2f} px; "
            f"{usable} usable), {len(failures)} failed" + (f"; per photo: {path}" if path else ""))
