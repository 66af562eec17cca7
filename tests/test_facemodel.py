"""The face-model asset: building, loading, the model's frame and arithmetic, bad sources."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from facerecon_core.cli import main
from facerecon_core.facemodel import FaceModel, FaceModelError, SourceError
from facerecon_core.facemodel.build import build_facemodel
from facerecon_core.facemodel.topology import laplacian_matrix, one_ring, uniform_laplacian


def test_asset_holds_the_no_neck_topology(facemodel: FaceModel):
    assert facemodel.n_vertices == 38365
    assert facemodel.triangles.shape == (76073, 3) and facemodel.triangles.dtype == np.int32
    assert (facemodel.n_id, facemodel.n_exp) == (40, 10)
    assert facemodel.landmark_indices.shape == (68,)
    assert facemodel.uv.shape == (38365, 2) and 0 <= facemodel.uv.min() and facemodel.uv.max() <= 1
    assert facemodel.albedo_mean.shape == (38365, 3) and 0 < facemodel.albedo_mean.min() < facemodel.albedo_mean.max() <= 1
    assert np.unique(facemodel.triangles).size == 38365


def test_frame_is_millimetres_centred_and_facing_plus_z(facemodel: FaceModel):
    mean = facemodel.mean_shape
    assert np.abs(mean.mean(axis=0)).max() < 1e-3
    width, height = np.ptp(mean[:, 0]), np.ptp(mean[:, 1])
    assert 130 < width < 180 and 150 < height < 200  # a head-sized face in mm
    lm = mean[facemodel.landmark_indices]
    assert np.argmax(mean[:, 2]) in np.argsort(-mean[:, 2])[:50]
    assert lm[30, 2] > lm[0, 2] + 40  # nose tip in front of the jaw line
    assert lm[8, 1] < lm[30, 1] < lm[27, 1]  # chin below nose tip below nose bridge (y up)
    assert lm[45, 0] > lm[36, 0]  # subject's left eye corner at +x
    v0, v1, v2 = (mean[facemodel.triangles[:, k]] for k in range(3))
    normals = np.cross(v1 - v0, v2 - v0)
    centre_ids = np.flatnonzero(np.hypot(mean[:, 0], mean[:, 1]) < 30)
    front = np.isin(facemodel.triangles, centre_ids).all(axis=1)
    assert (normals[front, 2] > 0).mean() > 0.95  # counter-clockwise: normals point out of the face


def test_vertices_albedo_and_offsets_are_linear(facemodel: FaceModel):
    rng = np.random.default_rng(0)
    a, e = rng.standard_normal((2, facemodel.n_id)), rng.standard_normal((2, facemodel.n_exp))
    batch = facemodel.vertices(a, e)
    assert batch.shape == (2, 38365, 3)
    np.testing.assert_allclose(batch[1], facemodel.vertices(a[1], e[1]), atol=1e-4)
    np.testing.assert_allclose(batch[0] - facemodel.vertices(a[0]), facemodel.expression_offsets(e[0]), atol=1e-3)
    one_sd = np.linalg.norm(facemodel.vertices(np.eye(facemodel.n_id)[0]) - facemodel.mean_shape, axis=1)
    assert 1 < one_sd.max() < 30  # one standard deviation moves the face by millimetres
    np.testing.assert_array_equal(facemodel.albedo(), facemodel.albedo_mean)
    with pytest.raises(ValueError, match="expected 40 coefficients"):
        facemodel.vertices(np.zeros(3))


def test_neighbourhoods_and_laplacian():
    # a 3×3 grid of vertices in the z = 0 plane, two triangles per cell
    xy = np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0)), -1).reshape(-1, 2)
    verts = np.c_[xy, np.zeros(9)]
    tri = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]])
    indptr, indices = one_ring(tri, 9)
    assert list(indices[indptr[4]:indptr[5]]) == [0, 1, 3, 5, 7, 8]
    assert list(indices[indptr[2]:indptr[3]]) == [1, 5]
    lap = uniform_laplacian(verts, laplacian_matrix(indptr, indices))
    np.testing.assert_allclose(lap[4], 0, atol=1e-12)  # interior vertex of a plane
    bumped = verts.copy()
    bumped[4, 2] = 1.0
    lap = uniform_laplacian(np.stack([verts, bumped]), laplacian_matrix(indptr, indices))
    assert lap.shape == (2, 9, 3) and lap[1, 4, 2] == pytest.approx(1.0)


def test_model_neighbours_are_symmetric(facemodel: FaceModel):
    indptr, indices = facemodel.neighbours
    counts = np.diff(indptr)
    assert counts.min() >= 2 and 5.5 <= counts.mean() <= 6.5  # closed-surface average is 6
    owner = np.repeat(np.arange(facemodel.n_vertices), counts)
    pairs = set(zip(owner.tolist(), indices.tolist()))
    assert all((b, a) in pairs for a, b in list(pairs)[:5000])


def test_asset_loads_without_pickle(facemodel_path: Path):
    with np.load(facemodel_path, allow_pickle=False) as data:
        assert data["mean_shape"].shape == (38365, 3)
        assert all(data[k].dtype != object for k in data.files)


def test_missing_asset_and_wrong_version(tmp_path: Path, facemodel: FaceModel):
    with pytest.raises(FaceModelError, match="facerecon assets build"):
        FaceModel.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "old.npz", format_version=np.int64(0), **facemodel.arrays())
    with pytest.raises(FaceModelError, match="asset format 0"):
        FaceModel.load(tmp_path / "old.npz")


def _copy_source(shared_dir: Path, dest: Path) -> Path:
    """A writable copy of shared/ (symlinks) so a test can break one file."""
    for sub in ("bfm", "peers/3ddfa_v2"):
        (dest / sub).mkdir(parents=True)
        for f in (shared_dir / sub).iterdir():
            (dest / sub / f.name).symlink_to(f)
    return dest / "bfm"


def test_missing_and_malformed_sources_are_named(shared_dir: Path, tmp_path: Path):
    source = _copy_source(shared_dir, tmp_path)
    (source / "u_tex.npy").unlink()
    with pytest.raises(SourceError, match=r"u_tex\.npy: file not found \(expected the mean albedo"):
        build_facemodel(tmp_path / "out.npz", source)
    np.save(source / "u_tex.npy", np.zeros((10, 1), np.float32))
    with pytest.raises(SourceError, match=r"u_tex\.npy: expected the mean albedo .* found an array of shape \(10, 1\)"):
        build_facemodel(tmp_path / "out.npz", source)
    assert not (tmp_path / "out.npz").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_tri_pickle_with_code_is_refused(shared_dir: Path, tmp_path: Path):
    source = _copy_source(shared_dir, tmp_path)
    (source / "tri.pkl").unlink()
    (source / "tri.pkl").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(SourceError, match=r"tri\.pkl: not a pickle of numpy arrays .*refusing to load builtins\.print"):
        build_facemodel(tmp_path / "out.npz", source)


def test_bfm2009_mat_is_mapped_onto_the_subset(shared_dir: Path, facemodel: FaceModel, tmp_path: Path):
    """A small synthetic 01_MorphableModel.mat: the subset's vertices shuffled among 275 extra ones."""
    import scipy.io

    rng = np.random.default_rng(1)
    u_shp = np.load(shared_dir / "bfm" / "u_shp.npy").reshape(-1, 3).astype(np.float64)
    n_full = len(u_shp) + 275
    order = rng.permutation(n_full)  # position in the .mat of each vertex (subset first, extras last)
    verts = np.concatenate([u_shp, rng.uniform(-1, 1, (275, 3)) * 1e6 + 5e6])
    shape_mu = np.empty_like(verts)
    shape_mu[order] = verts
    tex_mu = rng.uniform(0, 255, (n_full, 3))
    mat = tmp_path / "01_MorphableModel.mat"
    scipy.io.savemat(mat, {
        "shapeMU": shape_mu.reshape(-1, 1), "shapePC": rng.standard_normal((3 * n_full, 6)) * 1e-2,
        "shapeEV": np.full((6, 1), 2e4), "texMU": tex_mu.reshape(-1, 1),
        "texPC": rng.standard_normal((3 * n_full, 5)) * 1e-2, "texEV": np.full((5, 1), 50.0),
        "tl": np.array([[1, 2, 3]]),
    })
    out = tmp_path / "bfm2009.npz"
    assert main(["assets", "build", "--source", str(shared_dir / "bfm"), "--bfm2009", str(mat),
                 "--out", str(out)]) == 0
    model = FaceModel.load(out)
    assert model.source == "bfm2009"
    assert (model.n_id, model.n_exp, model.n_albedo) == (6, 10, 5)
    np.testing.assert_allclose(model.mean_shape, facemodel.mean_shape, atol=1e-3)
    expected_albedo = tex_mu[order[:len(u_shp)]][model.full_indices] / 255.0
    np.testing.assert_allclose(model.albedo_mean, expected_albedo, atol=1e-5)
    assert model.albedo(np.ones(5)).shape == (38365, 3)

    scipy.io.savemat(mat, {"shapeMU": np.zeros((30, 1)), "shapePC": np.zeros((30, 2)), "shapeEV": np.ones((2, 1)),
                           "texMU": np.zeros((30, 1)), "texPC": np.zeros((30, 2)), "texEV": np.ones((2, 1))})
    with pytest.raises(SourceError, match="does not contain the 53,215 vertices"):
        build_facemodel(tmp_path / "bad.npz", shared_dir / "bfm", bfm2009=mat)


def test_cli_build_and_info(shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "fm.npz"
    assert main(["assets", "build", "--source", str(shared_dir / "bfm"), "--out", str(out)]) == 0
    assert "38365 vertices, 76073 triangles" in capsys.readouterr().out
    assert main(["assets", "info", "--model", str(out)]) == 0
    assert "40 identity, 10 expression" in capsys.readouterr().out
    assert main(["assets", "info", "--model", str(tmp_path / "missing.npz")]) == 2
    assert "face-model asset not found" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "nothing", ignore_errors=True)
    assert main(["assets", "build", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "indices.npy: file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_content_hash_covers_the_defining_arrays_only(facemodel: FaceModel):
    """Manifests, checkpoints and datasets name the model by this hash: the rasterised UV masks (which
    may differ in the last bit between machines) stay out of it, every defining array is in it."""
    from facerecon_core.facemodel.build import HASHED_ARRAYS, content_hash

    arrays = facemodel.arrays()
    assert content_hash(arrays) == facemodel.content_hash
    masks = dict(arrays, uv_weight_mask=arrays["uv_weight_mask"] * 1.001, uv_face_mask=~arrays["uv_face_mask"])
    assert content_hash(masks) == facemodel.content_hash
    for name in HASHED_ARRAYS:
        changed = dict(arrays)
        changed[name] = np.zeros((1,) + arrays[name].shape[1:], arrays[name].dtype)
        assert content_hash(changed) != facemodel.content_hash, name


def test_head_model_is_the_face_model_with_ears_and_neck(facemodel: FaceModel, shared_dir: Path):
    """The whole BFM head: its face part is the face model (vertices for any coefficients, triangles first),
    the rest reaches the ears and the neck, every vertex is in a triangle, no triangle is long."""
    from facerecon_core.facemodel.head import MAX_EDGE_MM, HeadModel

    head = HeadModel.build(facemodel, shared_dir / "bfm")
    assert head.n_vertices == 53215 and np.array_equal(head.face_indices, facemodel.full_indices)
    rng = np.random.default_rng(0)
    id_c, exp_c = rng.standard_normal(facemodel.n_id), rng.standard_normal(facemodel.n_exp)
    face = facemodel.vertices(id_c, exp_c)
    assert np.abs(head.vertices(id_c, exp_c)[head.face_indices] - face).max() < 1e-3
    assert np.array_equal(head.around(face, id_c, exp_c)[head.face_indices], face)
    assert np.array_equal(head.triangles[:head.n_face_triangles], facemodel.full_indices[facemodel.triangles])
    assert np.unique(head.triangles).size == head.n_vertices and len(head.triangles) > 100_000
    v = head.mean_shape
    edges = np.linalg.norm(v[head.triangles] - v[np.roll(head.triangles, 1, axis=1)], axis=2)
    assert edges[head.n_face_triangles:].max() <= MAX_EDGE_MM
    rest = np.setdiff1d(np.arange(head.n_vertices), head.face_indices)
    face_lo, face_hi = facemodel.mean_shape.min(axis=0), facemodel.mean_shape.max(axis=0)
    assert np.abs(v[rest, 0]).max() > max(-face_lo[0], face_hi[0]) + 10  # the ears, beside the face
    assert v[rest, 1].min() < face_lo[1] - 30  # the neck, below the chin
    a, b, c = (v[head.triangles[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a)
    outward = ((v[head.triangles].mean(axis=1) - [0.0, 0.0, -60.0]) * normals).sum(axis=1) > 0
    assert outward[head.n_face_triangles:].mean() > 0.85  # wound as the face: counter-clockwise from outside
    assert np.allclose(head.albedo_mean[head.face_indices], facemodel.albedo_mean)


def test_head_model_refuses_another_face_model(facemodel: FaceModel, shared_dir: Path):
    from dataclasses import replace

    from facerecon_core.facemodel.head import HeadModel

    moved = replace(facemodel, mean_shape=facemodel.mean_shape + np.float32(1.0))
    with pytest.raises(SourceError, match="does not match the face model"):
        HeadModel.build(moved, shared_dir / "bfm")
