"""numpy image operations against OpenCV's (the add-on ships without OpenCV; training and tests have it)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facerecon_core import imageops

FLAGS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth, photo-like uint8 image (gradients and blobs)."""
    y, x = np.mgrid[0:301, 0:403] / 50.0
    rgb = np.stack([np.sin(x) * np.cos(y), np.sin(x + y), np.cos(1.3 * x - y)], axis=-1)
    return ((rgb + 1) * 127.5).astype(np.uint8)


@pytest.mark.parametrize("interpolation", ["area", "linear", "cubic"])
@pytest.mark.parametrize("size", [(100, 77), (403, 150), (17, 5), (800, 650)])
def test_resize_matches_opencv(photo, interpolation, size):
    if interpolation == "area" and size[0] > photo.shape[1]:
        pytest.skip("enlarging, OpenCV's area mode is its own blend; ours is linear (never used to enlarge)")
    ours = imageops.resize(photo, *size, interpolation=interpolation)
    theirs = cv2.resize(photo, size, interpolation=FLAGS[interpolation])
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - theirs).max() <= 1  # OpenCV rounds its fixed-point weights


def test_resize_float_maps_and_masks(photo):
    rng = np.random.default_rng(0)
    texture = rng.random((64, 64, 3)).astype(np.float32)
    for interpolation, size in (("area", 21), ("linear", 200), ("cubic", 1024)):
        ours = imageops.resize(texture, size, size, interpolation=interpolation)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, cv2.resize(texture, (size, size), interpolation=FLAGS[interpolation]),
                                   atol=1e-5)
    assert imageops.resize(photo[..., 0], 40, 30, "area").shape == (30, 40)
    with pytest.raises(ValueError, match="unknown interpolation"):
        imageops.resize(photo, 10, 10, "nearest")


def test_warp_affine_matches_opencv_with_black_borders(photo):
    matrix = np.array([[0.7, 0.1, -20.0], [-0.05, 0.8, 10.0]])
    ours = imageops.warp_affine(photo, matrix, (256, 256))
    theirs = cv2.warpAffine(photo, matrix, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    diff = np.abs(ours.astype(int) - theirs)
    assert np.percentile(diff, 99) <= 1 and diff.max() <= 8  # OpenCV's 1/32-pixel weights; the image's edge
    assert (ours[-20:, -20:] == 0).all()  # beyond the image


def test_erode_matches_opencv():
    mask = np.random.default_rng(1).random((50, 60)) > 0.2
    for iterations in (1, 2):
        expected = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=iterations).astype(bool)
        assert np.array_equal(imageops.erode(mask, iterations), expected)


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_png_decodes_to_the_same_pixels(photo, channels):
    image = photo[..., 0] if channels is None else np.dstack([photo, photo[..., :1]])[..., :channels]
    decoded = cv2.imdecode(np.frombuffer(imageops.encode_png(image), np.uint8), cv2.IMREAD_UNCHANGED)
    if channels:
        decoded = decoded[..., [2, 1, 0, 3][:channels]]
    assert np.array_equal(decoded, image)
    with pytest.raises(ValueError, match="uint8"):
        imageops.encode_png(image.astype(np.float32))


def test_halve_and_double_are_resizes_exact_two_times(photo):
    image = photo.astype(np.float32)[:300, :402]  # even sides: exactly two times
    np.testing.assert_allclose(imageops.halve(image), imageops.resize(image, 201, 150, "area"), atol=1e-3)
    np.testing.assert_allclose(imageops.double(image, (600, 804)), imageops.resize(image, 804, 600, "linear"),
                               atol=1e-3)
    odd = photo.astype(np.float32)  # 301 × 403: the last row and column repeat before halving
    assert imageops.halve(odd).shape == (151, 202, 3)
    assert imageops.double(imageops.halve(odd), odd.shape).shape == odd.shape
