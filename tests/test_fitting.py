"""The model fitter recovers a synthetic face it did not see the coefficients of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.preview import frontal_light
from facerecon_core.fitting import FitConfig, Fitter
from facerecon_core.pose import CropCamera, to_camera
from facerecon_core.render import render_mesh


def synthetic_crops(model: FaceModel, n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    id_coeff = rng.standard_normal((n, model.n_id)) * 0.8
    exp_coeff = rng.standard_normal((n, model.n_exp))
    angles = np.c_[rng.uniform(-0.3, 0.3, n), rng.uniform(-0.8, 0.8, n), rng.uniform(-0.3, 0.3, n)]
    cam = CropCamera(size)
    translation = np.c_[rng.uniform(-15, 15, (n, 2)), -np.full(n, cam.focal * 170 / (0.55 * size))]
    shapes = model.vertices(id_coeff, exp_coeff)
    verts_cam = to_camera(shapes, angles, translation).astype(np.float32)
    out = render_mesh(torch.as_tensor(verts_cam), torch.as_tensor(model.triangles), cam.render_camera(),
                      vertex_colors=torch.as_tensor(model.albedo_mean)[None].expand(n, -1, -1),
                      sh=torch.as_tensor(frontal_light())[None].expand(n, -1, -1),
                      background=torch.full((n, 3, size, size), 0.3))
    crops = (out.image.permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    landmarks = cam.project(verts_cam[:, model.landmark_indices])
    return crops, landmarks, shapes, angles


def test_fitter_recovers_a_synthetic_face(facemodel: FaceModel):
    crops, landmarks, shapes, angles = synthetic_crops(facemodel, 2, 128)
    config = FitConfig(landmark_steps=300, photometric_steps=10, render_size=64)
    result = Fitter(facemodel, config).fit(crops, landmarks, progress=False)
    assert result.landmark_error.shape == (2,) and np.all(result.landmark_error <= 1.0)
    assert set(result.losses) == {"landmarks", "photometric"}
    assert {"landmarks", "photometric", "id_prior", "sh_prior"} <= set(result.losses["photometric"])
    fitted = result.shape(facemodel)
    error = np.linalg.norm(fitted - shapes, axis=-1).mean(-1)
    baseline = np.linalg.norm(facemodel.mean_shape - shapes, axis=-1).mean(-1)
    assert np.all(error < 0.75 * baseline), (error, baseline)
    assert np.degrees(np.abs(result.angles - angles)).max() < 3.0
    assert result.sh[:, :, 0].min() > 0.3  # lit, not black


def test_fitter_with_offsets_keeps_them_smooth(facemodel: FaceModel):
    crops, landmarks, _, _ = synthetic_crops(facemodel, 1, 64, seed=3)
    config = FitConfig(landmark_steps=50, photometric_steps=5, render_size=64, fit_offsets=True)
    result = Fitter(facemodel, config).fit(crops, landmarks, progress=False)
    assert result.offsets.shape == (1, facemodel.n_vertices, 3)
    assert np.abs(result.offsets).max() < 2.0
    assert "offset_smooth" in result.losses["photometric"]


def test_fitter_gives_the_crops_of_one_person_one_identity(facemodel: FaceModel):
    """``groups``: crops with one label share the identity coefficients and offsets, each keeps its own expression
    and pose; with four views of one face the shared identity is closer to the truth than the separate fits'."""
    rng = np.random.default_rng(7)
    identity = rng.standard_normal(facemodel.n_id) * 0.8
    exps = rng.standard_normal((4, facemodel.n_exp)) * 1.5
    crops, landmarks = zip(*(_render_face(facemodel, facemodel.vertices(identity, e), yaw=y)
                             for e, y in zip(exps, (-0.5, -0.1, 0.2, 0.6))))
    crops, landmarks = np.concatenate(crops), np.concatenate(landmarks)
    config = FitConfig(landmark_steps=300, photometric_steps=0, fit_offsets=True)
    fitter = Fitter(facemodel, config)
    joint = fitter.fit(crops, landmarks, progress=False, groups=np.array(["a", "a", "a", "a"]))
    alone = fitter.fit(crops, landmarks, progress=False)
    assert np.all(joint.id_coeff == joint.id_coeff[0]) and np.all(joint.offsets == joint.offsets[0])
    assert not np.allclose(joint.exp_coeff[0], joint.exp_coeff[1]) and np.all(joint.landmark_error < 1.5)
    truth = facemodel.vertices(identity)
    error = lambda fit: np.linalg.norm(facemodel.vertices(fit.id_coeff) - truth, axis=-1).mean()  # noqa: E731
    assert error(joint) < error(alone), (error(joint), error(alone))
    two = fitter.fit(crops, landmarks, progress=False, groups=np.array([1, 2, 1, 2]))
    assert np.all(two.id_coeff[0] == two.id_coeff[2]) and not np.allclose(two.id_coeff[0], two.id_coeff[1])
    with pytest.raises(ValueError, match="one group label per crop"):
        fitter.fit(crops, landmarks, progress=False, groups=np.array([0, 0]))


def test_fitter_holds_the_expression_of_crops_known_neutral(facemodel: FaceModel):
    """``neutral``: a crop flagged neutral keeps its expression near zero (its expression priors weigh
    ``FitConfig.neutral_prior`` times more), so what the landmarks ask for goes to the shared identity instead; the
    other crops keep theirs; a flag per crop is required."""
    rng = np.random.default_rng(11)
    identity = rng.standard_normal(facemodel.n_id) * 0.8
    exps = np.stack([rng.standard_normal(facemodel.n_exp) * 0.6, rng.standard_normal(facemodel.n_exp) * 1.5])
    crops, landmarks = zip(*(_render_face(facemodel, facemodel.vertices(identity, e), yaw=y)
                             for e, y in zip(exps, (-0.2, 0.3))))
    crops, landmarks = np.concatenate(crops), np.concatenate(landmarks)
    fitter = Fitter(facemodel, FitConfig(landmark_steps=300, photometric_steps=0))
    rms = lambda fit: np.sqrt((facemodel.expression_offsets(fit.exp_coeff) ** 2).sum(-1).mean(-1))  # noqa: E731
    free = fitter.fit(crops, landmarks, progress=False, groups=np.zeros(2, int))
    held = fitter.fit(crops, landmarks, progress=False, groups=np.zeros(2, int), neutral=np.array([True, False]))
    assert rms(held)[0] < 0.5 * rms(free)[0], (rms(held), rms(free))
    assert rms(held)[1] > 0.7 * rms(free)[1] and np.all(held.landmark_error < 2.0)
    assert not np.allclose(held.id_coeff[0], free.id_coeff[0])
    with pytest.raises(ValueError, match="one neutral flag per crop"):
        fitter.fit(crops, landmarks, progress=False, neutral=np.array([True]))


def _render_face(facemodel: FaceModel, shape: np.ndarray, size: int = 128,
                 yaw: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A 128² crop of ``shape`` (turned by ``yaw`` radians, frontal light, grey background) and its 68 landmarks."""
    cam = CropCamera(size)
    verts_cam = to_camera(shape[None], np.array([[0.05, yaw, 0.0]]), np.array([[0.0, 0.0, -cam.focal * 170 / 70]]))
    out = render_mesh(torch.as_tensor(verts_cam, dtype=torch.float32), torch.as_tensor(facemodel.triangles),
                      cam.render_camera(), vertex_colors=torch.as_tensor(facemodel.albedo_mean)[None],
                      sh=torch.as_tensor(frontal_light())[None], background=torch.full((1, 3, size, size), 0.3))
    crops = (out.image.permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return crops, cam.project(verts_cam[:, facemodel.landmark_indices])


def test_fitter_finds_strong_arkit_expressions(facemodel: FaceModel):
    """With ``FitConfig.arkit`` the fit explains an expression the 10 components cannot give (brows up, jaw open,
    a smile) with the right ARKit keys, each weight in [0, 1], and fits the shape and landmarks better than
    without."""
    names = list(facemodel.arkit_names)
    truth = np.zeros(len(names))
    for key, value in {"browInnerUp": 0.9, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "jawOpen": 0.7,
                       "mouthSmileLeft": 0.8, "mouthSmileRight": 0.8}.items():
        truth[names.index(key)] = value
    shape = facemodel.mean_shape + facemodel.arkit_offsets(truth)
    crops, landmarks = _render_face(facemodel, shape)
    results = {arkit: Fitter(facemodel, FitConfig(landmark_steps=300, photometric_steps=0, arkit=arkit)).fit(
        crops, landmarks, progress=False) for arkit in (False, True)}
    weights = results[True].arkit_weights[0]
    assert results[False].arkit_weights is None and weights.min() >= 0.0 and weights.max() <= 1.0
    posed = truth > 0  # the L1 prior shrinks them (the components take part of the expression), but only they move
    assert weights[posed].min() > 0.08 and weights[~posed].sum() < 0.5 * weights[posed].sum(), weights
    assert results[True].landmark_error[0] < results[False].landmark_error[0]
    error = np.linalg.norm(results[True].shape(facemodel)[0] - shape, axis=-1).mean()
    assert error < np.linalg.norm(results[False].shape(facemodel)[0] - shape, axis=-1).mean()


def test_fitter_keeps_unused_arkit_keys_at_zero(facemodel: FaceModel):
    """To the landmarks, puffed cheeks look like a wide face: the fit leaves cheekPuff at 0 by default
    (FitConfig.arkit_unused) and uses it when allowed without the L1 prior, the landmarks fitted either way."""
    names = list(facemodel.arkit_names)
    truth = np.zeros(len(names))
    truth[names.index("cheekPuff")] = 0.8
    crops, landmarks = _render_face(facemodel, facemodel.mean_shape + facemodel.arkit_offsets(truth))
    fits = {unused: Fitter(facemodel, FitConfig(landmark_steps=300, photometric_steps=0, arkit=True,
                                                arkit_unused=unused, arkit_prior=prior)).fit(crops, landmarks,
                                                                                            progress=False)
            for unused, prior in ((FitConfig.arkit_unused, FitConfig.arkit_prior), ((), 0.0))}
    puff = names.index("cheekPuff")
    assert fits[FitConfig.arkit_unused].arkit_weights[0, puff] == 0.0 and fits[()].arkit_weights[0, puff] > 0.1
    assert all(fit.landmark_error[0] < 1.0 for fit in fits.values())
    with pytest.raises(ValueError, match="no ARKit key cheekpuf"):
        Fitter(facemodel, FitConfig(arkit=True, arkit_unused=("cheekpuf",)))


def test_fitter_rejects_malformed_input(facemodel: FaceModel):
    fitter = Fitter(facemodel)
    with pytest.raises(ValueError, match="square RGB crops"):
        fitter.fit(np.zeros((1, 64, 32, 3), np.uint8), np.zeros((1, 68, 2)))
    with pytest.raises(ValueError, match="landmarks of shape"):
        fitter.fit(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 5, 2)))


def test_photo_without_a_face_is_named(tmp_path, facemodel: FaceModel):
    import cv2

    from facerecon_core.detect import NoFaceError
    from facerecon_core.fitting.photos import fit_photos, prepare_photo

    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(NoFaceError, match=r"noise\.png: no face found"):
        prepare_photo(noise)
    fits, failures = fit_photos([noise], facemodel, FitConfig(landmark_steps=5, photometric_steps=0), progress=False)
    assert fits == [] and "no face found" in failures[str(noise)]


def test_squeezed_photo_sets_are_stretched_back_before_fitting(shared_dir):
    """``taiwan_expr_faces``' squeezed crops come back to the proportions of the other sets' faces (dlib's nasion–chin
    over outer-eye-corner distance), other photos are left as they are."""
    from facerecon_core.fitting.photos import SQUEEZED_SETS, prepare_photo

    def ratio(landmarks):
        return np.linalg.norm(landmarks[27] - landmarks[8]) / np.linalg.norm(landmarks[36] - landmarks[45])

    taiwan = shared_dir / "faces" / "taiwan_expr_faces"
    photos = ["0101a02.jpg", "0501a02.jpg", "1001a02.jpg"]
    ratios = [ratio(prepare_photo(taiwan / name)[1]) for name in photos]
    assert 1.12 < np.median(ratios) < 1.3, ratios  # jaffe's 1.20, FFHQ's 1.22 (squeezed as stored: about 1.04)
    assert set(SQUEEZED_SETS) == {"taiwan_expr_faces"}
    crop, _, box = prepare_photo(shared_dir / "faces" / "prnet_aflw2000" / "image00050.jpg")
    assert crop.shape == (256, 256, 3)


def test_real_photo_fit_is_cached(tmp_path, facemodel: FaceModel, shared_dir):
    from facerecon_core.fitting.photos import PhotoFit, fit_photos

    photo = shared_dir / "faces" / "prnet_aflw2000" / "image00050.jpg"
    config = FitConfig(landmark_steps=150, photometric_steps=5, render_size=64)
    fits, failures = fit_photos([photo], facemodel, config, cache=tmp_path, progress=False)
    assert not failures and len(fits) == 1
    fit = fits[0]
    assert fit.image.shape == (256, 256, 3) and fit.usable()
    assert fit.landmark_error < 5.0  # crop pixels; the report lists it per photo
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1
    again = PhotoFit.load(cached[0])
    np.testing.assert_array_equal(again.id_coeff, fit.id_coeff)
    assert fit_photos([photo], facemodel, config, cache=tmp_path, progress=False)[0][0].landmark_error == fit.landmark_error
    from facerecon_core.fitting.photos import fit_report

    summary = fit_report([fit], {"missing.jpg": "missing.jpg: no such file"}, tmp_path / "report.tsv")
    assert "fitted 1 photos" in summary and "1 failed" in summary
    lines = (tmp_path / "report.tsv").read_text().splitlines()
    assert lines[1].startswith(str(photo)) and lines[1].endswith("ok") and "failed: missing.jpg" in lines[2]


def test_fit_photos_walks_only_as_far_as_needed_and_caches_failures(tmp_path, facemodel: FaceModel, shared_dir,
                                                                    monkeypatch):
    """``need``: photos after the first ``need`` usable fits are neither detected nor fitted; a photo without a face
    is remembered in the cache, so a later walk does not detect it again."""
    import cv2

    from facerecon_core.fitting import photos as photos_mod

    noise = tmp_path / "a_noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    faces = shared_dir / "faces" / "prnet_aflw2000"
    walk = [noise, faces / "image00050.jpg", faces / "image00081.jpg", faces / "image00430.jpg"]
    prepared = []
    real_prepare = photos_mod.prepare_photo
    monkeypatch.setattr(photos_mod, "prepare_photo", lambda path, size=256: (prepared.append(path.name),
                                                                            real_prepare(path, size))[1])
    config = FitConfig(landmark_steps=150, photometric_steps=0, render_size=64)
    cache = tmp_path / "fits"
    fits, failures = photos_mod.fit_photos(walk, facemodel, config, cache=cache, progress=False, need=1)
    assert prepared == ["a_noise.png", "image00050.jpg"]  # the later photos were never looked at
    assert [Path(f.source).name for f in fits] == ["image00050.jpg"] and list(failures) == [str(noise)]
    assert len(list(cache.glob("*.failed"))) == 1
    prepared.clear()
    fits, failures = photos_mod.fit_photos(walk, facemodel, config, cache=cache, progress=False, need=2)
    assert prepared[0] == "image00081.jpg"  # the failure and the first fit came from the cache
    assert sum(f.usable() for f in fits) == 2 and "no face found" in failures[str(noise)]


def test_fit_photos_fits_a_persons_photos_with_one_identity(tmp_path, facemodel: FaceModel, shared_dir, monkeypatch):
    """``person``: the photos of one person are fitted together (one identity), the others alone; their cache names
    carry the person's photos, so a walk reads them back, and a person with another photo is fitted again."""
    from facerecon_core.fitting import photos as photos_mod

    faces = shared_dir / "faces" / "prnet_aflw2000"
    walk = [faces / "image00050.jpg", faces / "image00081.jpg", faces / "image00430.jpg"]
    people = {walk[0].name: "x", walk[2].name: "x"}
    prepared = []
    real_prepare = photos_mod.prepare_photo
    monkeypatch.setattr(photos_mod, "prepare_photo", lambda path, size=256: (prepared.append(path.name),
                                                                            real_prepare(path, size))[1])
    config = FitConfig(landmark_steps=60, photometric_steps=0, render_size=64, fit_offsets=True)
    cache = tmp_path / "fits"

    def fit(paths: list[Path], need: int | None = None) -> list:
        return photos_mod.fit_photos(paths, facemodel, config, cache=cache, progress=False, need=need,
                                     person=lambda p: people.get(p.name))[0]

    assert len(fit(walk, need=1)) == 1  # the walk reaches one photo of x: both of x's are fitted (and cached)
    assert sorted(prepared) == sorted([walk[0].name, walk[2].name])
    prepared.clear()
    first, second, third = fit(walk)
    assert prepared == [walk[1].name]
    assert np.array_equal(first.id_coeff, third.id_coeff) and np.array_equal(first.offsets, third.offsets)
    assert not np.allclose(first.id_coeff, second.id_coeff) and not np.allclose(first.exp_coeff, third.exp_coeff)
    names = sorted(p.name for p in cache.glob("*.npz"))
    assert len(names) == 3 and sum(name.count("-") == 2 for name in names) == 2  # x's photos: + the group digest
    prepared.clear()
    again = fit(walk)
    assert prepared == [] and np.array_equal(again[0].id_coeff, first.id_coeff)
    people[walk[1].name] = "x"  # x now has three photos: fitted again, together
    again = fit(walk)
    assert sorted(prepared) == sorted(p.name for p in walk)
    assert np.array_equal(again[0].id_coeff, again[1].id_coeff) and not np.array_equal(again[0].id_coeff,
                                                                                      first.id_coeff)


def test_fit_photos_names_the_fits_a_neutral_label_changes(tmp_path, facemodel: FaceModel, shared_dir):
    """``neutral``: the fits of a person one of whose photos is labelled neutral are fitted with it held (their cache
    names add ``-n<neutral_prior>``); a person without one, and a photo alone, read back the fits made without
    ``neutral``."""
    from facerecon_core.fitting.photos import fit_photos

    faces = shared_dir / "faces" / "prnet_aflw2000"
    walk = [faces / f"image{n}.jpg" for n in ("00050", "00081", "00430", "00251", "00475")]
    people = {walk[0].name: "x", walk[2].name: "x", walk[1].name: "y", walk[3].name: "y"}
    config = FitConfig(landmark_steps=30, photometric_steps=0, render_size=64)

    def fit(neutral=None) -> list:
        return fit_photos(walk, facemodel, config, cache=tmp_path, progress=False, person=lambda p: people.get(p.name),
                          neutral=neutral)[0]

    plain = fit()
    made = {p.name for p in tmp_path.glob("*.npz")}
    held = fit(neutral=lambda p: p == walk[0])
    new = sorted(p.name for p in tmp_path.glob("*.npz") if p.name not in made)
    assert len(new) == 2 and all(name.endswith("-n25.npz") for name in new)  # x's two photos
    rms = lambda f: np.sqrt((facemodel.expression_offsets(f.exp_coeff) ** 2).sum(-1).mean())  # noqa: E731
    assert rms(held[0]) < rms(plain[0]) and not np.array_equal(held[2].exp_coeff, plain[2].exp_coeff)
    for i in (1, 3, 4):  # y's photos and the photo alone: the same fits
        assert np.array_equal(held[i].exp_coeff, plain[i].exp_coeff)


def test_fit_photos_walks_as_far_as_needed_among_several_people(tmp_path, facemodel: FaceModel, shared_dir):
    """``person`` with ``need``: a walk that reaches one person fits that person's photos and leaves the people it
    has not reached alone (neither fitted nor cached)."""
    from facerecon_core.fitting.photos import fit_photos

    faces = shared_dir / "faces" / "prnet_aflw2000"
    walk = [faces / f"image{n}.jpg" for n in ("00050", "00081", "00430", "00251")]
    people = {walk[0].name: "x", walk[2].name: "x", walk[1].name: "y", walk[3].name: "y"}
    config = FitConfig(landmark_steps=30, photometric_steps=0, render_size=64)
    fits, failures = fit_photos(walk, facemodel, config, cache=tmp_path, progress=False, need=1,
                                person=lambda p: people[p.name])
    assert [f.source for f in fits] == [str(walk[0])] and not failures
    assert len(list(tmp_path.glob("*.npz"))) == 2  # x's two photos


def test_fit_rest_moves_the_calm_faces_expression_into_the_identity(facemodel: FaceModel):
    """``data synth --label-rest``: the mean of the calm faces' fitted expression leaves every fit's expression for
    its identity offsets; the fitted shape stays, a calm face's expression is gone, weights below the rest clip."""
    from facerecon_core.fitting.photos import PhotoFit
    from facerecon_core.fitting.rest import FitRest

    k = len(facemodel.arkit_names)
    names = list(facemodel.arkit_names)
    brow, smile = names.index("browDownLeft"), names.index("mouthSmileLeft")

    def fit(exp_coeff, weights) -> PhotoFit:
        z = np.zeros(3, np.float32)
        return PhotoFit("p.jpg", np.array([0, 0, 64.0]), np.zeros((8, 8, 3), np.uint8), np.zeros((68, 2)),
                        np.zeros(facemodel.n_id, np.float32), np.asarray(exp_coeff, np.float32),
                        np.zeros(0, np.float32), z, z, np.zeros((3, 9), np.float32),
                        np.zeros((facemodel.n_vertices, 3), np.float32), np.zeros((68, 2)), 1.0,
                        np.asarray(weights, np.float32))

    calm_w = np.zeros(k)
    calm_w[brow] = 0.3
    calm = [fit(np.full(facemodel.n_exp, 0.5), calm_w), fit(np.full(facemodel.n_exp, 0.3), calm_w)]
    rest = FitRest.of(calm)
    assert rest.photos == 2 and np.allclose(rest.exp_coeff, 0.4) and np.isclose(rest.arkit_weights[brow], 0.3)
    happy_w = np.zeros(k)
    happy_w[[brow, smile]] = (0.1, 0.8)
    for before in (calm[0], fit(np.full(facemodel.n_exp, 0.4), happy_w)):
        after = rest.apply(before, facemodel)
        np.testing.assert_allclose(after.shape(facemodel), before.shape(facemodel), atol=1e-3)
    assert after.arkit_weights[brow] == 0.0 and np.isclose(after.arkit_weights[smile], 0.8)  # 0.1 < 0.3: clipped
    assert np.abs(after.exp_coeff).max() < 1e-6
    moved = rest.apply(calm[0], facemodel)
    assert np.sqrt((moved.expression(facemodel) ** 2).sum(1).mean()) < 0.2 * np.sqrt(
        (calm[0].expression(facemodel) ** 2).sum(1).mean())
    with pytest.raises(ValueError, match="ARKit keys"):
        FitRest.of([fit(np.zeros(facemodel.n_exp), np.zeros(0))])
