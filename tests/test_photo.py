"""Photo loading: conversions that must happen and the error for each kind of bad file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facerecon_core.io.photo import (
    MAX_PIXELS,
    NoPhotosError,
    NotAnImageError,
    PhotoError,
    PhotoNotFoundError,
    PhotoTooLargeError,
    PhotoTooSmallError,
    UnreadablePhotoError,
    find_photos,
    load_photo,
)


def _quadrants() -> np.ndarray:
    """64 wide × 48 high: red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:24, :32] = (255, 0, 0)
    image[:24, 32:] = (0, 255, 0)
    image[24:, :32] = (0, 0, 255)
    image[24:, 32:] = (255, 255, 255)
    return image


def _mean(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).mean(axis=0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be turned 90° clockwise to display
    Image.fromarray(_quadrants()).save(path, quality=95, exif=exif)
    image = load_photo(path)
    assert image.shape == (64, 48, 3) and image.dtype == np.uint8
    # turned clockwise: the stored top-left (red) is now top-right, bottom-left (blue) is top-left
    assert np.allclose(_mean(image[:28, 28:]), (255, 0, 0), atol=20)
    assert np.allclose(_mean(image[:28, :20]), (0, 0, 255), atol=20)
    assert np.allclose(_mean(image[36:, :20]), (255, 255, 255), atol=20)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :20, 3] = 255  # left opaque red, right fully transparent
    rgba[:, 20:, 3] = 0
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_photo(path)
    assert image.shape == (40, 40, 3)
    assert (image[:, :20] == (200, 0, 0)).all()
    assert (image[:, 20:] == 255).all()


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1))
    path = tmp_path / "gray.png"
    Image.fromarray(gray, "L").save(path)
    image = load_photo(path)
    assert image.shape == (40, 64, 3)
    assert (image == gray[..., None]).all()


def test_16_bit_png_and_tiff_keep_the_high_byte(tmp_path: Path) -> None:
    gray16 = np.full((40, 40), 100 * 256 + 37, np.uint16)
    gray16[:, 20:] = 65535
    cv2.imwrite(str(tmp_path / "gray16.png"), gray16)
    image = load_photo(tmp_path / "gray16.png")
    assert (image[:, :20] == 100).all() and (image[:, 20:] == 255).all()

    rgb16 = np.zeros((40, 40, 3), np.uint16)
    rgb16[...] = (10 * 256, 20 * 256, 30 * 256)
    cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb16[..., ::-1])  # OpenCV writes BGR
    assert (load_photo(tmp_path / "rgb16.tif") == (10, 20, 30)).all()


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_palette_images_with_transparency(tmp_path: Path, suffix: str) -> None:
    palette_image = Image.fromarray(_quadrants()).quantize(4)
    index_of_red = int(np.asarray(palette_image)[0, 0])
    palette_image.info["transparency"] = index_of_red
    path = tmp_path / f"palette{suffix}"
    palette_image.save(path, transparency=index_of_red)
    image = load_photo(path)
    assert image.shape == (48, 64, 3)
    assert (image[:24, :32] == 255).all()  # the transparent (red) colour shows white
    assert np.allclose(image[30, 10], (0, 0, 255), atol=8)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_quadrants()).convert("CMYK").save(path, quality=95)
    image = load_photo(path)
    assert image.shape == (48, 64, 3)
    assert np.allclose(_mean(image[4:20, 4:28]), (255, 0, 0), atol=30)


def test_large_photo_loads(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    cv2.imwrite(str(path), np.full((6000, 8000, 3), 90, np.uint8))
    image = load_photo(path)
    assert image.shape == (6000, 8000, 3)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width × height`` (no pixel data: opening reads the header only)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


@pytest.mark.parametrize("width, height", [(11_000, 10_000), (20_000, 20_000)])
def test_too_many_pixels(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "huge.png"
    _png_header_only(path, width, height)
    assert width * height > MAX_PIXELS
    with pytest.raises(PhotoTooLargeError, match="huge.png: image too large"):
        load_photo(path)


def test_too_small(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(path)
    with pytest.raises(PhotoTooSmallError, match=r"tiny.png: image too small \(10×10"):
        load_photo(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(noise).save(full, quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UnreadablePhotoError, match="cut.jpg: cannot read the image"):
        load_photo(path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(NotAnImageError, match="notes.jpg: not an image"):
        load_photo(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PhotoNotFoundError, match="nope.jpg: no such file"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(NotAnImageError, match="is a folder"):
        load_photo(tmp_path)


def test_errors_share_one_base_and_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    for target in (tmp_path / "bad.png", tmp_path / "missing.png"):
        with pytest.raises(PhotoError) as info:
            load_photo(target)
        assert isinstance(info.value, ValueError)
        assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_find_photos(tmp_path: Path) -> None:
    tree = tmp_path / "photos"
    (tree / "b" / "c").mkdir(parents=True)
    (tree / ".hidden").mkdir()
    for name in ("z.jpg", "b/a.PNG", "b/c/d.tiff", ".hidden/e.jpg", "b/._f.jpg"):
        (tree / name).write_bytes(b"x")
    (tree / "readme.txt").write_text("x")
    single = tmp_path / "single.webp"
    single.write_bytes(b"x")

    found = find_photos([tree, single, tree / "z.jpg"])
    assert found == sorted([tree / "b/a.PNG", tree / "b/c/d.tiff", tree / "z.jpg", single])
    assert find_photos(str(single)) == [single]

    (tmp_path / "empty").mkdir()
    with pytest.raises(NoPhotosError, match="empty: folder contains no photos"):
        find_photos([tmp_path / "empty"])
    with pytest.raises(PhotoNotFoundError, match="gone: no such file or folder"):
        find_photos([tmp_path / "gone"])
