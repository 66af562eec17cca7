"""``facerecon data synth``: generate a dataset of one kind into a sharded folder."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core import paths
from facerecon_core.datasets import storage
from facerecon_core.datasets.scene import CropJitter, PoseRange
from facerecon_core.facemodel import FaceModel
from facerecon_core.fitting import FitConfig
from facerecon_core.fitting.rest import FitRest

KINDS = ("asm", "profiled", "texture")
SHARD_SIZE = 32
# Fits of real photos for profiled / texture data: per-vertex offsets capture what the linear model misses.
DATA_FIT = FitConfig(landmark_steps=250, photometric_steps=60, render_size=128, fit_offsets=True, offset_laplacian=1e5)


@dataclass(frozen=True)
class SynthRequest:
    """Everything that determines a dataset's content (and so its shards' bytes)."""

    kind: str
    count: int
    seed: int
    out: Path
    res: int = 256
    facemodel: Path | None = None
    photos: tuple[Path, ...] = ()  # real photos (files or folders): backgrounds (asm) or the photos to profile
    fits: Path | None = None  # photo-fit cache folder (profiled, texture)
    poses: PoseRange | None = None  # asm: head-pose ranges (default: PoseRange())
    jitter: CropJitter | None = None  # asm, profiled: crop jitter (default: the kind's, see _default_jitter)
    pitch_turn: float = 0.0  # profiled: pitch tilt per view, degrees (±; 0: yaw turns only)
    yaw_range: float = 0.0  # profiled: each view's yaw uniform within ±this, degrees (0: 15° turns)
    head: bool = False  # asm: render the whole BFM head (ears, neck) around the face
    arkit: float = 0.0  # asm: the share of faces whose expression adds the face model's ARKit keys
    pairs: bool = False  # profiled: each view with a view of another photo of the same person
    fit_arkit: bool = False  # profiled, texture: the photo fits also fit the 51 ARKit weights (strong expressions)
    one_identity: bool = False  # profiled, texture: a person's photos (datasets.people) are fitted with one identity,
    # the expression of those labelled neutral held near zero (their rest face)
    label_rest: bool = False  # profiled, texture (with fit_arkit): the fit's rest moves from each photo's expression
    # label into its identity (fitting.rest; with one_identity, the photos of a known person keep theirs)

    def __post_init__(self) -> None:  # photos: None, one path or several, kept as a tuple of paths
        photos = self.photos
        photos = () if photos is None else (photos,) if isinstance(photos, (str, os.PathLike)) else photos
        object.__setattr__(self, "photos", tuple(Path(p) for p in photos))

    def photo_sources(self) -> list[Path]:
        return list(self.photos) or [paths.shared_dir() / "faces"]

    def fit_cache(self) -> Path:
        return self.fits or Path("data/fits")


def synth(request: SynthRequest, workers: int = 1, progress: bool = True) -> dict:
    """Generate the missing shards of ``request`` (resuming an interrupted run) and return the index."""
    if request.kind not in KINDS:
        raise storage.DatasetError(f"unknown kind {request.kind!r}; choose one of {', '.join(KINDS)}")
    if request.count < 1 or request.res < 32:
        raise storage.DatasetError("--count must be ≥ 1 and --res ≥ 32")
    variant = _variant(request)
    model = FaceModel.load(request.facemodel)
    if request.kind != "asm":  # fit the photos the samples use once here (progress shown), workers read the cache
        from facerecon_core.io.photo import find_photos

        usable_fits(request, model, find_photos(request.photo_sources()), progress=progress)
    generator_name = _generator_version(request.kind) + variant
    spec = storage.DatasetSpec(kind=request.kind, count=request.count, seed=request.seed, res=request.res,
                               shard_size=SHARD_SIZE, facemodel_hash=model.content_hash, generator=generator_name)
    factory = functools.partial(make_generator, request)
    return storage.write_dataset(spec, request.out, factory, workers=workers, progress=progress)


def _variant(request: SynthRequest) -> str:
    """Check ``--head`` / ``--pose-range`` / ``--crop-jitter`` / ``--pitch-turn`` / ``--yaw-range`` and name what they
    change in the generator (other values, other samples; "" for the defaults)."""
    if request.poses is not None and request.kind != "asm":
        raise storage.DatasetError("--pose-range applies to asm data only (profiled and texture data take the poses "
                                   "of their photos)")
    if request.jitter is not None and request.kind == "texture":
        raise storage.DatasetError("--crop-jitter applies to asm and profiled data only (texture data keeps the "
                                   "framing of its photos)")
    variant = ""
    if request.fit_arkit:
        if request.kind == "asm":
            raise storage.DatasetError("--fit-arkit applies to profiled and texture data (asm data fits no photo)")
        variant += " arkit fits"
    if request.one_identity:
        if request.kind == "asm":
            raise storage.DatasetError("--one-identity applies to profiled and texture data (asm data fits no photo)")
        variant += " one identity, neutral rest"
    if request.label_rest:
        if request.kind == "asm" or not request.fit_arkit:
            raise storage.DatasetError("--label-rest applies to profiled and texture data fitted with --fit-arkit")
        variant += " label rest"
    if request.pairs:
        if request.kind != "profiled":
            raise storage.DatasetError("--pairs applies to profiled data only")
        variant += " pairs"
    if request.arkit:
        if request.kind != "asm" or not 0.0 < request.arkit <= 1.0:
            raise storage.DatasetError(f"--arkit applies to asm data only, a share in (0, 1]; got {request.arkit:g} "
                                       f"for {request.kind}")
        variant += f" arkit {request.arkit:g}"
    if request.head:
        if request.kind != "asm":
            raise storage.DatasetError("--head applies to asm data only (profiled and texture data show their "
                                       "photos' heads)")
        variant += " head"
    for flag, degrees, limit, name in (("--pitch-turn", request.pitch_turn, 45.0, "pitch"),
                                       ("--yaw-range", request.yaw_range, 90.0, "yaw")):
        if not degrees:
            continue
        if request.kind != "profiled":
            raise storage.DatasetError(f"{flag} applies to profiled data only (asm poses follow --pose-range; "
                                       "texture data keeps its photos as taken)")
        if not 0.0 < degrees <= limit:
            raise storage.DatasetError(f"{flag} must be in [0, {limit:g}] degrees, got {degrees:g}")
        variant += f" {name} ±{degrees:g}"
    if request.poses is not None:
        if not all(0.0 <= v <= 90.0 for v in request.poses.degrees()):
            raise storage.DatasetError(f"--pose-range: each of yaw, pitch, roll must be in [0, 90] degrees, "
                                       f"got {request.poses.degrees()}")
        if request.poses != PoseRange():
            variant += " poses ±{:g}/{:g}/{:g}".format(*request.poses.degrees())
    if request.jitter is not None:
        try:
            request.jitter.check()
        except ValueError as exc:
            raise storage.DatasetError(f"--crop-jitter: {exc}") from None
        if request.jitter != _default_jitter(request.kind):
            variant += " crop ±{:g}/{:g}".format(*request.jitter.values())
    return variant


def _default_jitter(kind: str) -> CropJitter:
    """The crop jitter of ``kind`` without ``--crop-jitter``."""
    from facerecon_core.datasets.profiled import PROFILED_JITTER

    return PROFILED_JITTER if kind == "profiled" else CropJitter()


def make_generator(request: SynthRequest) -> Callable[[int], dict[str, np.ndarray]]:
    """The sample function of ``request.kind`` (called once per worker process)."""
    from facerecon_core.io.photo import find_photos

    model = FaceModel.load(request.facemodel)

    photos = find_photos(request.photo_sources())
    if request.kind == "asm":
        from facerecon_core.datasets.asm import AsmGenerator
        from facerecon_core.datasets.scene import BackgroundBank

        from facerecon_core.facemodel.head import HeadModel

        return AsmGenerator(model, BackgroundBank(photos, seed=request.seed), seed=request.seed, res=request.res,
                            poses=request.poses or PoseRange(), jitter=request.jitter or _default_jitter("asm"),
                            head=HeadModel.build(model) if request.head else None, arkit=request.arkit)
    fits = usable_fits(request, model, photos, progress=False)
    if request.kind == "profiled":
        from facerecon_core.datasets.profiled import ProfiledGenerator

        return ProfiledGenerator(model, fits, seed=request.seed, res=request.res, pitch_turn=request.pitch_turn,
                                 yaw_range=request.yaw_range, jitter=request.jitter or _default_jitter("profiled"),
                                 pairs=request.pairs)
    from facerecon_core.datasets.texture import TextureGenerator

    return TextureGenerator(model, fits, seed=request.seed, res=request.res)


def usable_fits(request: SynthRequest, model: FaceModel, photos: list[Path], progress: bool) -> list:
    """Fits (with per-vertex offsets) of the first ``request.count`` photos that fit well, in the photos' order;
    bad fits are left out; with ``request.one_identity`` a person's photos share one identity, their rest face where
    a photo is labelled neutral (:func:`facerecon_core.datasets.people.labelled_neutral`). Photos are detected
    and fitted only as far as the samples need them (sample ``i`` uses usable fit ``i % n``, so a fit of a later
    photo would never be used), from the fit cache."""
    from facerecon_core.datasets.people import labelled_neutral, person_of
    from facerecon_core.fitting.photos import fit_photos, fit_report

    config = dataclasses.replace(DATA_FIT, arkit=True) if request.fit_arkit else DATA_FIT
    fits, failures = fit_photos(photos, model, config, cache=request.fit_cache(), progress=progress,
                                need=request.count, person=person_of if request.one_identity else None,
                                neutral=labelled_neutral if request.one_identity else None)
    summary = fit_report(fits, failures, request.fit_cache() / "report.tsv")
    if progress:
        print(summary)
    usable = [fit for fit in fits if fit.usable()]
    if not usable:
        raise storage.DatasetError(f"{', '.join(map(str, request.photo_sources()))}: no photo could be fitted "
                                   "well enough")
    if request.label_rest:
        rest = fit_rest(request, model, config, progress)
        usable = [fit if request.one_identity and person_of(fit.source) else rest.apply(fit, model) for fit in usable]
    return usable


def fit_rest(request: SynthRequest, model: FaceModel, config: FitConfig, progress: bool) -> FitRest:
    """The photo fit's rest (:class:`facerecon_core.fitting.rest.FitRest`): the neutral-labelled photos of training
    people (:func:`facerecon_core.datasets.people.neutral_photos`), each fitted alone with ``config``, cached."""
    from facerecon_core.datasets.people import neutral_photos
    from facerecon_core.fitting.photos import fit_photos

    try:
        photos = neutral_photos(paths.shared_dir())
    except FileNotFoundError as exc:
        raise storage.DatasetError(f"--label-rest: {exc}") from None
    fits, _ = fit_photos(photos, model, config, cache=request.fit_cache(), progress=progress)
    usable = [fit for fit in fits if fit.usable()]
    if not usable:
        raise storage.DatasetError("--label-rest: no neutral-labelled photo could be fitted well enough")
    rest = FitRest.of(usable)
    if progress:
        offsets = model.expression_offsets(rest.exp_coeff) + model.arkit_offsets(rest.arkit_weights)
        print(f"label rest: the mean of {rest.photos} neutral photos' fits, "
              f"{float(np.sqrt((offsets ** 2).sum(1).mean())):.2f} mm RMS of expression")
    return rest


def _generator_version(kind: str) -> str:
    from facerecon_core.datasets import asm, profiled, texture

    return {"asm": asm.GENERATOR, "profiled": profiled.GENERATOR, "texture": texture.GENERATOR}[kind]
