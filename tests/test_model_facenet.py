"""MobileFaceNet for L_id: strict checkpoint load, alignment, and identity separation on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon_core.eval.suites import read_pts
from facerecon_core.model.facenet import IdentityEmbedder, MobileFaceNet, align_faces, similarity_transform
from facerecon_core.model.losses import identity_loss


def _photo(shared_dir, name):
    import cv2

    folder = shared_dir / "faces" / "prnet_aflw2000"
    img = cv2.cvtColor(cv2.imread(str(folder / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
    return img, read_pts(folder / f"{name}.pts").astype(np.float32)


def _tensor(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def embedder(shared_dir):
    return IdentityEmbedder(shared_dir / "models" / "mobilefacenet_casia_068.ckpt")


def test_checkpoint_loads_strictly_with_weights_only(shared_dir):
    path = shared_dir / "models" / "mobilefacenet_casia_068.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = MobileFaceNet()
    assert set(net.state_dict()) == set(ckpt["net_state_dict"])
    net.load_state_dict(ckpt["net_state_dict"], strict=True)
    assert abs(sum(p.numel() for p in net.parameters()) - 1.0e6) < 5e4
    assert net(torch.zeros(2, 3, 112, 96)).shape == (2, 128)


def test_similarity_transform_recovers_a_known_one():
    src = torch.rand(1, 5, 2) * 100
    ang, s, t = 0.3, 1.7, torch.tensor([5.0, -2.0])
    rot = s * torch.tensor([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]], dtype=torch.float32)
    m = similarity_transform(src, src @ rot.T + t)
    assert torch.allclose(m[0, :, :2], rot, atol=1e-4) and torch.allclose(m[0, :, 2], t, atol=1e-3)


def test_same_image_has_zero_identity_loss(shared_dir, embedder):
    img, lms = _photo(shared_dir, "image00050")
    x, lm = _tensor(img), torch.from_numpy(lms)[None]
    faces = align_faces(x, lm)
    assert faces.shape == (1, 3, 112, 96)
    e = embedder(x, lm)
    assert identity_loss(e, embedder(x.clone(), lm)) < 1e-5


def test_separates_different_people_more_than_two_crops_of_one_photo(shared_dir, embedder):
    import cv2

    img_a, lm_a = _photo(shared_dir, "image00050")
    img_b, lm_b = _photo(shared_dir, "image00081")
    # a second, shifted and rescaled crop of photo A (landmarks moved with it)
    x0, y0, scale = 30, 15, 0.7
    crop = cv2.resize(img_a[y0:y0 + 400, x0:x0 + 400], (280, 280), interpolation=cv2.INTER_AREA)
    lm_crop = (lm_a - [x0, y0] + 0.5) * scale - 0.5
    emb = [embedder(_tensor(i), torch.from_numpy(np.asarray(l, np.float32))[None])
           for i, l in ((img_a, lm_a), (crop, lm_crop), (img_b, lm_b))]
    same = identity_loss(emb[0], emb[1]).item()
    different = identity_loss(emb[0], emb[2]).item()
    assert same < 0.2 and different > same + 0.3, (same, different)
