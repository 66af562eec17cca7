"""Synthetic datasets: exact labels, determinism, resuming, the torch Dataset, preview."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon_core import paths
from facerecon_core.cli import main
from facerecon_core.datasets import storage
from facerecon_core.datasets.expressions import ExpressionPrior
from facerecon_core.datasets.profiled import PROFILED_JITTER
from facerecon_core.datasets.scene import CropJitter, PoseRange
from facerecon_core.datasets.synth import SynthRequest, synth
from facerecon_core.datasets.torch_data import FaceDataset
from facerecon_core.facemodel import FaceModel
from facerecon_core.pose import CropCamera, to_camera


def landmark_label_error(facemodel: FaceModel, sample: dict, res: int) -> float:
    """Max distance (px) between a sample's 2D landmarks and its ASM labels posed and projected."""
    shape = facemodel.from_uv_map(sample["asm_id"].astype(np.float32) + sample["asm_exp"].astype(np.float32))
    posed = to_camera(shape, sample["angles"], sample["translation"])[facemodel.landmark_indices]
    return float(np.abs(CropCamera(res).project(posed) - sample["landmarks_2d"]).max())


def test_asm_labels_reproduce_the_landmarks(asm_dataset: Path, facemodel: FaceModel):
    data = storage.ShardedDataset(asm_dataset)
    assert len(data) == 40 and data.complete
    for i in range(0, 40, 5):
        s = data[i]
        assert s["image"].shape == (128, 128, 3) and s["image"].dtype == np.uint8
        assert s["asm_id"].shape == s["asm_exp"].shape == (128, 128, 3)
        assert s["face_mask"].dtype == bool and 0.05 < s["face_mask"].mean() < 0.9
        assert landmark_label_error(facemodel, s, 128) < 0.5
        np.testing.assert_allclose(s["landmarks_3d"], to_camera(facemodel.vertices(s["id_coeff"], s["exp_coeff"]),
                                   s["angles"], s["translation"])[facemodel.landmark_indices], atol=1e-2)
        assert np.abs(np.degrees(s["angles"])).max() <= 75.0 + 1e-3


def test_expression_prior_reaches_large_expressions(facemodel: FaceModel):
    prior = ExpressionPrior.from_model(facemodel)
    lips = facemodel.landmark_indices[[62, 66]]  # inner upper / lower lip centre
    open_mouth = facemodel.vertices(None, prior.archetypes["open_mouth"])
    assert open_mouth[lips[0], 1] - open_mouth[lips[1], 1] > 10.0  # mm
    rng = np.random.default_rng(0)
    draws = np.array([prior.sample(rng) for _ in range(500)])
    assert np.abs(draws).max() <= prior.max_abs
    assert np.mean(np.linalg.norm(draws, axis=1) > 3.0) > 0.2  # heavy-tailed: many large expressions


def test_same_seed_identical_shards_and_resume(facemodel_path: Path, tmp_path: Path, asm_dataset: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    request = SynthRequest("asm", 40, seed=7, out=tmp_path / "b", res=128, facemodel=facemodel_path)
    # interrupt after the first shard: the sample function fails on the first sample of shard 2
    import facerecon_core.datasets.synth as synth_module

    real = synth_module.make_generator

    def failing(req):
        make = real(req)

        def sample(i):
            if i == synth_module.SHARD_SIZE:
                raise KeyboardInterrupt
            return make(i)

        return sample

    monkeypatch.setattr(synth_module, "make_generator", failing)
    with pytest.raises(KeyboardInterrupt):
        synth(request, progress=False)
    partial = storage.ShardedDataset(request.out)
    assert 0 < len(partial) < 40 and not partial.complete
    assert not list(request.out.glob("*.tmp"))
    monkeypatch.setattr(synth_module, "make_generator", real)
    synth(request, progress=False)
    resumed = storage.ShardedDataset(request.out)
    ids = [resumed.sample_id(i) for i in range(len(resumed))]
    assert ids == list(range(40))  # all samples, no duplicates
    for name in sorted(p.name for p in asm_dataset.glob("shard-*.npz")):
        assert (request.out / name).read_bytes() == (asm_dataset / name).read_bytes()
    storage.verify_dataset(request.out)


def test_a_folder_of_another_dataset_is_refused(facemodel_path: Path, asm_dataset: Path):
    with pytest.raises(storage.DatasetError, match="different dataset .*seed=7"):
        synth(SynthRequest("asm", 40, seed=8, out=asm_dataset, res=128, facemodel=facemodel_path), progress=False)


def test_torch_dataset_augments_only_the_image(asm_dataset: Path):
    plain = FaceDataset([asm_dataset], augment=None)
    augmented = FaceDataset([asm_dataset, asm_dataset], seed=1)
    assert len(augmented) == 80
    a, b = plain[3], augmented[3]
    assert a["image"].shape == (3, 128, 128) and 0 <= float(a["image"].min()) and float(a["image"].max()) <= 1
    assert a["asm_id"].shape == (3, 128, 128) and a["face_mask"].shape == (1, 128, 128)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a if k != "image")
    assert np.array_equal(augmented[3]["image"].numpy(), b["image"].numpy())  # deterministic per epoch
    augmented.set_epoch(1)
    assert not np.array_equal(augmented[3]["image"].numpy(), b["image"].numpy())


def test_preview_cli(asm_dataset: Path, tmp_path: Path):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", str(asm_dataset), "-o", str(out), "--count", "3"]) == 0
    import cv2

    grid = cv2.imread(str(out))
    assert grid.shape == (3 * 128, 4 * 128, 3)
    assert main(["data", "preview", str(tmp_path), "-o", str(out)]) == 2  # not a dataset folder


@pytest.mark.slow
def test_profiled_and_texture_kinds(facemodel_path: Path, facemodel: FaceModel, shared_dir: Path, tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("image00050.jpg", "image00081.jpg"):
        (photos / name).symlink_to(shared_dir / "faces" / "prnet_aflw2000" / name)
    for kind in ("profiled", "texture"):
        request = SynthRequest(kind, 4, seed=0, out=tmp_path / kind, res=256, facemodel=facemodel_path,
                               photos=(photos,), fits=tmp_path / "fits")
        synth(request, progress=False)
        data = storage.ShardedDataset(request.out)
        assert len(data) == 4
        for i in range(4):
            s = data[i]
            assert landmark_label_error(facemodel, s, 256) < 0.5
            assert np.abs(np.degrees(s["angles"][1])) <= 75.0 + 1e-3
            if kind == "texture":
                assert s["uv_albedo"].shape == s["uv_texture"].shape == (256, 256, 3)
                assert 0.2 < s["uv_visibility"].mean() < 0.9
                assert np.all(s["uv_texture"][~s["uv_visibility"]] == 0)
    first = storage.ShardedDataset(tmp_path / "texture")[0]  # the photo as taken: its own crop
    assert first["image"].shape == (256, 256, 3)
    assert len(list((tmp_path / "fits").glob("*.npz"))) == 2  # fits cached once, shared by both kinds

    # --pitch-turn: the same views (same photo, same yaw turn), each head tilted by up to ±40° in pitch
    request = SynthRequest("profiled", 4, seed=0, out=tmp_path / "pitched", res=256, facemodel=facemodel_path,
                           photos=(photos,), fits=tmp_path / "fits", pitch_turn=40.0)
    synth(request, progress=False)
    pitched, plain = storage.ShardedDataset(request.out), storage.ShardedDataset(tmp_path / "profiled")
    assert pitched.spec.generator == plain.spec.generator + " pitch ±40"
    tilt = []
    for i in range(4):
        s, p = pitched[i], plain[i]
        assert s["angles"][1] == p["angles"][1] and np.array_equal(s["id_coeff"], p["id_coeff"])
        tilt.append(np.degrees(s["angles"][0] - p["angles"][0]))
        assert landmark_label_error(facemodel, s, 256) < 0.5
    assert np.abs(tilt).max() <= 40.0 + 1e-3 and np.abs(tilt).max() > 5.0, tilt

    # --yaw-range: each view's yaw drawn within ±90°, whatever the photo's; labels still exact
    request = SynthRequest("profiled", 8, seed=0, out=tmp_path / "yawed", res=128, facemodel=facemodel_path,
                           photos=(photos,), fits=tmp_path / "fits", yaw_range=90.0)
    synth(request, progress=False)
    yawed = storage.ShardedDataset(request.out)
    assert yawed.spec.generator == plain.spec.generator + " yaw ±90"
    yaws = np.degrees([yawed[i]["angles"][1] for i in range(8)])
    assert np.abs(yaws).max() <= 90.0 + 1e-3 and np.abs(yaws).max() > 45.0, yaws

    # --crop-jitter: the same views framed as a detector that misses frames them (profiled's default,
    # 0.08 0.03, gives the plain views); labels still exact
    for jitter, name in ((PROFILED_JITTER, "framed"), (CropJitter(0.3, 0.15), "offcentre")):
        request = SynthRequest("profiled", 4, seed=0, out=tmp_path / name, res=256, facemodel=facemodel_path,
                               photos=(photos,), fits=tmp_path / "fits", jitter=jitter)
        synth(request, progress=False)
    framed, offcentre = storage.ShardedDataset(tmp_path / "framed"), storage.ShardedDataset(tmp_path / "offcentre")
    assert framed.spec.generator == plain.spec.generator and offcentre.spec.generator.endswith("crop ±0.3/0.15")
    moved = []
    for i in range(4):
        assert np.array_equal(framed[i]["landmarks_2d"], plain[i]["landmarks_2d"])
        assert offcentre[i]["angles"][1] == plain[i]["angles"][1]
        assert landmark_label_error(facemodel, offcentre[i], 256) < 0.5
        moved.append(np.abs(offcentre[i]["landmarks_2d"].mean(0) - plain[i]["landmarks_2d"].mean(0)).max())
    assert max(moved) > 0.05 * 256, moved
    assert landmark_label_error(facemodel, yawed[int(np.argmax(np.abs(yaws)))], 128) < 0.5


@pytest.mark.slow  # three photo fits
def test_profiled_pairs_hold_another_photo_of_the_same_person(facemodel_path: Path, shared_dir: Path, tmp_path: Path):
    """``--pairs``: each view of a photo whose person has another photo among the fitted ones also holds a view of that
    other photo (``image_pair``, ``pair_valid`` 1); a photo of a person seen once gets zeros and ``pair_valid`` 0.
    The views themselves are those of the data made without it."""
    import shutil

    from facerecon_core.datasets.people import labelled_neutral, person_of
    from facerecon_core.train.data import collate

    folder = tmp_path / "jaffe"  # the set's name and labels.csv tell who is who
    folder.mkdir()
    shutil.copy(shared_dir / "faces" / "jaffe" / "labels.csv", folder / "labels.csv")
    for name in ("KA.AN1.39.tiff", "KA.HA1.29.tiff", "KL.AN1.167.tiff"):
        (folder / name).symlink_to(shared_dir / "faces" / "jaffe" / name)
    assert person_of(folder / "KA.AN1.39.tiff") == "jaffe/KA" and person_of(shared_dir / "bfm" / "x.png") is None
    faces = shared_dir / "faces"
    assert labelled_neutral(folder / "KA.NE1.26.tiff") and not labelled_neutral(folder / "KA.AN1.39.tiff")
    assert labelled_neutral(faces / "taiwan_expr_faces" / "0101a02.jpg")  # posed_expression "neutral"
    assert labelled_neutral(faces / "yalefaces" / "subject01.normal.gif")
    assert not labelled_neutral(faces / "yalefaces" / "subject01.happy.gif")
    assert not labelled_neutral(shared_dir / "bfm" / "x.png")
    made = {}
    for pairs in (False, True):
        request = SynthRequest("profiled", 3, seed=0, out=tmp_path / f"pairs{pairs}", res=64, facemodel=facemodel_path,
                               photos=(folder,), fits=tmp_path / "fits", pairs=pairs)
        synth(request, progress=False)
        made[pairs] = storage.ShardedDataset(request.out)
    assert made[True].spec.generator == made[False].spec.generator + " pairs"
    samples = [made[True][i] for i in range(3)]
    valid = [float(np.asarray(s["pair_valid"]).reshape(-1)[0]) for s in samples]
    assert sorted(valid) == [0.0, 1.0, 1.0]  # the two KA photos pair up, KL has no partner
    for s, plain in zip(samples, (made[False][i] for i in range(3))):
        assert np.array_equal(s["image"], plain["image"])
        assert (s["image_pair"].std() > 5) == bool(np.asarray(s["pair_valid"]).reshape(-1)[0])
    tensors = [{"image": torch.zeros(3, 4, 4), "image_pair": torch.ones(3, 4, 4), "pair_valid": torch.tensor(1.0)},
               {"image": torch.zeros(3, 4, 4)}]
    batch = collate(tensors)
    assert batch["pair_valid"].tolist() == [1.0, 0.0] and batch["image_pair"][1].abs().sum() == 0
    with pytest.raises(storage.DatasetError, match="profiled data only"):
        synth(SynthRequest("asm", 4, seed=0, out=tmp_path / "a", facemodel=facemodel_path, pairs=True), progress=False)


@pytest.mark.slow  # three photo fits
def test_synth_one_identity_fits_a_persons_photos_together(facemodel_path: Path, shared_dir: Path, tmp_path: Path):
    """``data synth --one-identity``: the photos of one person get one neutral face in the fits the samples are made
    from (each its own expression), their rest face where a photo is labelled neutral (its expression held near
    zero); a person seen once is fitted alone; asm data refuses the flag."""
    import shutil

    from facerecon_core.datasets.synth import usable_fits

    folder = tmp_path / "jaffe"
    folder.mkdir()
    shutil.copy(shared_dir / "faces" / "jaffe" / "labels.csv", folder / "labels.csv")
    for name in ("KA.AN1.39.tiff", "KA.HA1.29.tiff", "KA.NE1.26.tiff", "KL.AN1.167.tiff"):
        (folder / name).symlink_to(shared_dir / "faces" / "jaffe" / name)
    out, fits = tmp_path / "one", tmp_path / "fits"
    assert main(["data", "synth", "--kind", "profiled", "--count", "4", "--res", "64", "--photos", str(folder),
                 "--fits", str(fits), "--one-identity", "--out", str(out), "--facemodel", str(facemodel_path)]) == 0
    assert storage.ShardedDataset(out).spec.generator.endswith(" one identity, neutral rest")
    request = SynthRequest("profiled", 4, seed=0, out=out, facemodel=facemodel_path, fits=fits, one_identity=True)
    model = FaceModel.load(facemodel_path)
    made = {Path(f.source).name: f for f in usable_fits(request, model, sorted(folder.glob("*.tiff")), False)}
    angry, happy, calm, other = (made[n] for n in ("KA.AN1.39.tiff", "KA.HA1.29.tiff", "KA.NE1.26.tiff",
                                                   "KL.AN1.167.tiff"))
    assert np.array_equal(angry.identity(model), happy.identity(model))
    assert np.array_equal(angry.identity(model), calm.identity(model))
    assert not np.allclose(angry.identity(model), other.identity(model))
    assert np.abs(angry.expression(model) - happy.expression(model)).max() > 1.0  # mm
    rms = lambda fit: np.sqrt((fit.expression(model) ** 2).sum(-1).mean())  # noqa: E731
    assert rms(calm) < 0.5 * min(rms(angry), rms(happy)), (rms(calm), rms(angry), rms(happy))
    assert len(list(fits.glob("*-n25.npz"))) == 3  # KA's three photos
    with pytest.raises(storage.DatasetError, match="--one-identity applies to profiled and texture"):
        synth(SynthRequest("asm", 4, seed=0, out=tmp_path / "a", facemodel=facemodel_path, one_identity=True),
              progress=False)


@pytest.mark.slow  # five photo fits
def test_synth_label_rest_moves_the_fits_rest_into_the_identity(facemodel_path: Path, shared_dir: Path,
                                                                tmp_path: Path, monkeypatch):
    """``data synth --label-rest``: the neutral-labelled photos of the training people are fitted alone and their
    mean expression leaves every photo's expression label for its identity, the fitted shape unchanged; without
    ``--fit-arkit`` the flag is refused."""
    import dataclasses
    import shutil

    from facerecon_core.datasets.synth import usable_fits

    shared = tmp_path / "shared"  # two neutral photos of the performers, one of yalefaces
    for name, files in (("taiwan_expr_faces", ("0101a02.jpg", "0101a05.jpg")),
                        ("yalefaces", ("subject01.normal.gif",))):
        folder = shared / "faces" / name
        folder.mkdir(parents=True)
        shutil.copy(shared_dir / "faces" / name / "labels.csv", folder / "labels.csv")
        for file in files:
            (folder / file).symlink_to(shared_dir / "faces" / name / file)
    monkeypatch.setenv(paths.SHARED_ENV, str(shared))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("KA.HA1.29.tiff", "KL.AN1.167.tiff"):
        (photos / name).symlink_to(shared_dir / "faces" / "jaffe" / name)
    out, fits = tmp_path / "rest", tmp_path / "fits"
    args = ["data", "synth", "--kind", "texture", "--count", "2", "--res", "64", "--photos", str(photos),
            "--fits", str(fits), "--facemodel", str(facemodel_path), "--label-rest"]
    assert main([*args, "--out", str(tmp_path / "refused")]) == 2  # no --fit-arkit
    assert not (tmp_path / "refused").exists()
    assert main([*args, "--fit-arkit", "--out", str(out)]) == 0
    assert storage.ShardedDataset(out).spec.generator.endswith(" arkit fits label rest")
    model = FaceModel.load(facemodel_path)
    plain = SynthRequest("texture", 2, seed=0, out=out, facemodel=facemodel_path, fits=fits, fit_arkit=True)
    taken = sorted(photos.glob("*.tiff"))
    before, after = (usable_fits(r, model, taken, False) for r in (plain, dataclasses.replace(plain, label_rest=True)))
    for a, b in zip(before, after):
        np.testing.assert_allclose(b.shape(model), a.shape(model), atol=1e-3)
        moved = np.sqrt(((a.expression(model) - b.expression(model)) ** 2).sum(-1).mean())
        assert moved > 0.2, moved  # mm RMS: the rest left the expression label


def test_synth_photos_from_a_list_file(tmp_path):
    """``--photos @LIST.txt`` (one path per line) as the bundled model's recipe uses it."""
    from facerecon_core.cli import build_parser
    from facerecon_core.datasets.synth import SynthRequest

    listing = tmp_path / "photos.txt"
    listing.write_text("faces/a.jpg\nfaces/more\n")
    args = build_parser().parse_args(["data", "synth", "--kind", "asm", "--count", "1", "--out", "x",
                                      "--photos", f"@{listing}"])
    assert args.photos == [Path("faces/a.jpg"), Path("faces/more")]
    request = SynthRequest("asm", 1, seed=0, out=tmp_path, photos=tuple(args.photos))
    assert request.photo_sources() == [Path("faces/a.jpg"), Path("faces/more")]
    assert SynthRequest("asm", 1, seed=0, out=tmp_path).photo_sources() == [paths.shared_dir() / "faces"]


def test_pose_range_widens_the_asm_poses(facemodel_path: Path, tmp_path: Path, asm_dataset: Path):
    """``--pose-range YAW PITCH ROLL``: the sampled poses follow it, the spec records it (a folder of the
    default range is refused), and it is refused for kinds whose poses come from photos."""
    out = tmp_path / "wide"
    args = ["data", "synth", "--kind", "asm", "--count", "24", "--seed", "7", "--res", "64",
            "--facemodel", str(facemodel_path), "--out", str(out)]
    assert main(args + ["--pose-range", "0", "60", "0"]) == 0
    data = storage.ShardedDataset(out)
    angles = np.degrees(np.array([data[i]["angles"] for i in range(len(data))]))
    assert np.abs(angles[:, 1:]).max() < 1e-6  # no yaw, no roll
    assert np.abs(angles[:, 0]).max() <= 60.0 + 1e-3 and np.abs(angles[:, 0]).max() > 30.0  # pitch beyond ±30°
    assert data.spec.generator.endswith("poses ±0/60/0")
    with pytest.raises(storage.DatasetError, match="different dataset"):
        synth(SynthRequest("asm", 24, seed=7, out=out, res=64, facemodel=facemodel_path), progress=False)
    with pytest.raises(storage.DatasetError, match="asm data only"):
        synth(SynthRequest("texture", 4, seed=0, out=tmp_path / "t", facemodel=facemodel_path,
                           poses=PoseRange(pitch=45.0)), progress=False)


def test_arkit_prior_draws_emotions_and_sparse_symmetric_keys(facemodel: FaceModel):
    from facerecon_core.datasets.expressions import ARKIT_PRESETS, ArkitPrior

    prior = ArkitPrior.from_names(facemodel.arkit_names)
    names = list(prior.names)
    assert len(prior.presets) == len(ARKIT_PRESETS)
    snarl = prior.presets[list(ARKIT_PRESETS).index("snarl")]
    assert snarl[names.index("noseSneerLeft")] == snarl[names.index("noseSneerRight")] == 1.0
    rng = np.random.default_rng(0)
    draws = np.array([prior.sample(rng) for _ in range(400)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert np.median((draws > 0).sum(1)) <= 8  # sparse
    assert (draws.max(1) > 0.9).mean() > 0.2  # extremes are common
    left, right = names.index("mouthSmileLeft"), names.index("mouthSmileRight")
    both = (draws[:, left] > 0) & (draws[:, right] > 0)
    assert both.sum() > 0.7 * ((draws[:, left] > 0) | (draws[:, right] > 0)).sum()  # mostly symmetric


def test_arkit_expressions_in_asm_data(facemodel_path: Path, facemodel: FaceModel, tmp_path: Path, asm_dataset: Path):
    """``--arkit SHARE``: that share of the faces adds ARKit keys (expressions beyond what the 10 components give),
    the spec records it, other kinds refuse it."""
    out = tmp_path / "arkit"
    args = ["data", "synth", "--kind", "asm", "--count", "24", "--seed", "7", "--res", "64",
            "--facemodel", str(facemodel_path), "--out", str(out)]
    assert main(args + ["--arkit", "1"]) == 0
    data = storage.ShardedDataset(out)
    assert data.spec.generator.endswith("arkit 1")
    plain = storage.ShardedDataset(asm_dataset)
    basis = facemodel.exp_basis.reshape(facemodel.n_exp, -1).T.astype(np.float64)

    def beyond_components(dataset) -> float:  # RMS (mm) of the expression the 10 components cannot give
        rms = []
        for i in range(min(len(dataset), 24)):
            offsets = facemodel.from_uv_map(dataset[i]["asm_exp"].astype(np.float32)[None])[0].reshape(-1)
            coeff, *_ = np.linalg.lstsq(basis, offsets, rcond=None)
            rms.append(np.sqrt(((offsets - basis @ coeff) ** 2).reshape(-1, 3).sum(1).mean()))
        return float(np.mean(rms))

    assert beyond_components(data) > 3 * beyond_components(plain)
    with pytest.raises(storage.DatasetError, match="asm data only"):
        synth(SynthRequest("texture", 4, seed=0, out=tmp_path / "t", facemodel=facemodel_path, arkit=0.5),
              progress=False)


def test_pitch_turn_and_yaw_range_are_checked(facemodel_path: Path, tmp_path: Path):
    """``--pitch-turn`` / ``--yaw-range`` pose profiled views only, within 45° / 90°; refused before anything is
    written."""
    refused = [("asm", {"pitch_turn": 20.0}, "--pitch-turn applies to profiled data only"),
               ("profiled", {"pitch_turn": 60.0}, r"--pitch-turn must be in \[0, 45\] degrees, got 60"),
               ("texture", {"yaw_range": 60.0}, "--yaw-range applies to profiled data only"),
               ("profiled", {"yaw_range": 100.0}, r"--yaw-range must be in \[0, 90\] degrees, got 100")]
    for kind, option, message in refused:
        with pytest.raises(storage.DatasetError, match=message):
            synth(SynthRequest(kind, 4, seed=0, out=tmp_path / kind, facemodel=facemodel_path, **option),
                  progress=False)
    assert not list(tmp_path.iterdir())


def test_crop_jitter_moves_the_faces_off_centre(facemodel_path: Path, tmp_path: Path):
    """``--crop-jitter SCALE SHIFT``: the faces' centres scatter by SHIFT × crop side, the spec records it,
    the default gives the default dataset, and bad values or other kinds are refused."""
    def centres(out: Path) -> np.ndarray:
        data = storage.ShardedDataset(out)
        return np.array([data[i]["landmarks_2d"].mean(axis=0) for i in range(len(data))])

    args = ["data", "synth", "--kind", "asm", "--count", "24", "--seed", "7", "--res", "64",
            "--facemodel", str(facemodel_path), "--pose-range", "0", "0", "0"]  # frontal: the centre is the crop's
    assert main(args + ["--out", str(tmp_path / "wide"), "--crop-jitter", "0", "0.2"]) == 0
    assert main(args + ["--out", str(tmp_path / "default"), "--crop-jitter", "0.1", "0.04"]) == 0
    assert storage.ShardedDataset(tmp_path / "wide").spec.generator.endswith("crop ±0/0.2")
    assert storage.ShardedDataset(tmp_path / "default").spec.generator == "asm-1 poses ±0/0/0"
    wide, default = centres(tmp_path / "wide").std(axis=0), centres(tmp_path / "default").std(axis=0)
    assert (wide > 0.12 * 64).all() and (default < 0.08 * 64).all(), (wide, default)
    with pytest.raises(storage.DatasetError, match=r"SCALE must be in \[0, 0.5\)"):
        synth(SynthRequest("asm", 4, seed=0, out=tmp_path / "bad", facemodel=facemodel_path,
                           jitter=CropJitter(scale=0.6)), progress=False)
    with pytest.raises(storage.DatasetError, match="asm and profiled data only"):
        synth(SynthRequest("texture", 4, seed=0, out=tmp_path / "t", facemodel=facemodel_path,
                           jitter=CropJitter(shift=0.1)), progress=False)


def _probe_factory():
    return _probe_sample


def _probe_sample(i: int) -> dict[str, np.ndarray]:
    import numba

    return {"index": np.array(i), "numba_threads": np.array(numba.config.NUMBA_NUM_THREADS)}


def test_worker_processes_run_numba_with_one_thread(tmp_path: Path, monkeypatch):
    """Spawned workers write every sample once, and numba has one thread in them from its import on (it
    re-reads NUMBA_NUM_THREADS at every compilation and refuses a change); this process keeps its setting."""
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    spec = storage.DatasetSpec("probe", 6, 0, 8, 2, "none", "probe-1")
    index = storage.write_dataset(spec, tmp_path, _probe_factory, workers=2, progress=False)
    assert "NUMBA_NUM_THREADS" not in os.environ
    seen = []
    for shard in index["shards"]:
        with np.load(tmp_path / shard["file"]) as data:
            seen += [int(data[f"{k:05d}/index"]) for k in range(shard["count"])]
            assert all(int(data[f"{k:05d}/numba_threads"]) == 1 for k in range(shard["count"]))
    assert sorted(seen) == list(range(6))


def test_head_renders_ears_and_neck_around_the_same_face(facemodel_path: Path, facemodel: FaceModel, tmp_path: Path):
    """``--head``: the same faces and labels, the face mask still the face's, the whole head drawn around it
    (pixels outside the face change); the spec records it; refused for profiled and texture data."""
    args = ["data", "synth", "--kind", "asm", "--count", "6", "--seed", "7", "--res", "96",
            "--facemodel", str(facemodel_path), "--pose-range", "80", "30", "10"]
    assert main(args + ["--out", str(tmp_path / "face")]) == 0
    assert main(args + ["--out", str(tmp_path / "head"), "--head"]) == 0
    face, head = storage.ShardedDataset(tmp_path / "face"), storage.ShardedDataset(tmp_path / "head")
    assert "head" in head.spec.generator.split() and "head" not in face.spec.generator.split()
    outside_changed = []
    for i in range(len(face)):
        a, b = face[i], head[i]
        for key in ("asm_id", "asm_exp", "landmarks_2d", "angles", "translation"):
            assert np.array_equal(a[key], b[key]), key
        assert landmark_label_error(facemodel, b, 96) < 0.75
        assert (b["face_mask"] & ~a["face_mask"]).sum() == 0  # the head may hide a little of the face, never add
        assert (a["face_mask"] & b["face_mask"]).sum() > 0.97 * a["face_mask"].sum()
        diff = np.abs(a["image"].astype(int) - b["image"].astype(int)).max(axis=2) > 30
        outside_changed.append((diff & ~a["face_mask"]).sum() / (~a["face_mask"]).sum())
    assert min(outside_changed) > 0.03, outside_changed  # ears, neck, forehead drawn over the background
    for kind in ("profiled", "texture"):
        with pytest.raises(storage.DatasetError, match="--head applies to asm data only"):
            synth(SynthRequest(kind, 4, seed=0, out=tmp_path / kind, facemodel=facemodel_path, head=True),
                  progress=False)


def test_synth_request_takes_no_photos_one_or_several(tmp_path: Path):
    assert SynthRequest("asm", 1, 0, tmp_path, photos=None).photos == ()
    assert SynthRequest("asm", 1, 0, tmp_path, photos=tmp_path).photos == (tmp_path,)
    assert SynthRequest("asm", 1, 0, tmp_path, photos=[str(tmp_path), tmp_path]).photos == (tmp_path, tmp_path)
    assert SynthRequest("asm", 1, 0, tmp_path, photos=None).photo_sources()[0].name == "faces"


def test_forked_loader_workers_read_shards_through_their_own_handles(asm_dataset: Path):
    """The parent has the shard open (as training has, after checking the samples' keys) when the DataLoader
    forks its workers: every worker must read through its own handle, or their zip reads interleave."""
    import torch

    dataset = FaceDataset([asm_dataset], augment=None)
    assert dataset[0]["asm_id"].shape[0] == 3  # the parent opens the shard
    expected = [dataset[i]["asm_exp"] for i in range(len(dataset))]
    for _ in range(3):
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                             multiprocessing_context="fork")
        got = torch.cat([batch["asm_exp"] for batch in loader])
        assert torch.equal(got, torch.stack(expected))


@pytest.mark.slow
def test_profiled_and_texture_data_fit_only_the_photos_they_use(tmp_path: Path, facemodel_path: Path):
    """`facerecon data synth --kind profiled --count 8` without --photos, as a user types it: of the 1,917 photos in
    ../shared/faces only those the 8 samples use are detected and fitted (minutes, not hours); texture data of the
    same count reuses those fits."""
    import subprocess
    import sys

    env = {**os.environ, "FACERECON_FACEMODEL": str(facemodel_path)}
    for kind in ("profiled", "texture"):
        proc = subprocess.run([sys.executable, "-m", "facerecon_core", "data", "synth", "--kind", kind, "--count", "8",
                               "--seed", "1", "--out", kind], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert storage.ShardedDataset(tmp_path / kind).complete
        fits = list((tmp_path / "data" / "fits").glob("*.npz"))
        assert 8 <= len(fits) + len(list((tmp_path / "data" / "fits").glob("*.failed"))) <= 16, len(fits)
        assert len(fits) >= 8
