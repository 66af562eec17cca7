"""Loading user photos as H×W×3 uint8 RGB, with one clear error per kind of bad input.

What ``load_photo`` does to an image that decodes:

- EXIF orientation is applied (the array is upright as a viewer shows it); a malformed EXIF block
  is ignored rather than refusing the photo.
- Transparency (RGBA, LA, palette with a transparent colour) is composited over **white**.
- Grayscale, bilevel, palette and CMYK images are converted to RGB.
- 16-bit samples are reduced to 8 bits by keeping the high byte (as Pillow does for 16-bit RGB).
- Animated GIF / multi-page TIFF: the first frame.

Uses Pillow and numpy only.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
)
"""Extensions ``find_photos`` collects from folders (lower case, with the dot)."""

MAX_PIXELS = 100_000_000
"""Largest image ``load_photo`` decodes by default (100 MP; an 8000×6000 photo is 48 MP)."""

MIN_SIDE = 32
"""Smallest accepted width and height in pixels: below this no face can be analysed."""


class PhotoError(ValueError):
    """Base class of every photo-loading error; the message names the file."""


class PhotoNotFoundError(PhotoError):
    """The path does not exist."""


class NotAnImageError(PhotoError):
    """The file is not an image, or in a format that cannot be decoded (e.g. HEIC, float TIFF)."""


class UnreadablePhotoError(PhotoError):
    """The file is an image but cannot be read to the end: truncated, corrupt or not permitted."""


class PhotoTooSmallError(PhotoError):
    """Width or height is below ``MIN_SIDE``."""


class PhotoTooLargeError(PhotoError):
    """More pixels than the limit (a decompression bomb or an absurdly large scan)."""


class NoPhotosError(PhotoError):
    """A folder given to ``find_photos`` holds no file with a supported extension."""


def load_photo(path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` as an upright H×W×3 uint8 RGB array (see the module docstring for conversions)."""
    path = Path(path)
    if not path.exists():
        raise PhotoNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise NotAnImageError(f"{path}: is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(path, image.size)
                image.load()
                rgb = _to_rgb(path, _upright(image))
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"{path}: not an image, or a format that cannot be read "
            f"(supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))})"
        ) from None
    except Image.DecompressionBombError as exc:
        raise PhotoTooLargeError(f"{path}: image too large ({exc})") from None
    except OSError as exc:
        raise UnreadablePhotoError(f"{path}: cannot read the image ({exc})") from None
    return rgb


def _check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise PhotoTooLargeError(
            f"{path}: image too large ({width}×{height} = {width * height / 1e6:.0f} MP; "
            f"limit {MAX_PIXELS / 1e6:.0f} MP)"
        )
    if min(width, height) < MIN_SIDE:
        raise PhotoTooSmallError(
            f"{path}: image too small ({width}×{height}; need at least {MIN_SIDE} px on each side)"
        )


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, SyntaxError):  # malformed EXIF: keep the stored pixels
        return image


def _to_rgb(path: Path, image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I"):  # 16/32-bit integer grayscale: keep the high byte of 16-bit samples
        gray = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "F":
        raise NotAnImageError(f"{path}: floating-point images are not supported")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def find_photos(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Photo files among ``paths``: files as given, folders searched recursively by extension.

    Hidden files and folders (name starting with ``.``) are skipped inside folders. Returns a sorted
    list without duplicates; a missing path or a folder without photos raises a ``PhotoError``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: set[Path] = set()
    for entry in map(Path, paths):
        if entry.is_dir():
            photos = [
                p for p in entry.rglob("*")
                if p.suffix.lower() in SUPPORTED_EXTENSIONS and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(entry).parts)
            ]
            if not photos:
                raise NoPhotosError(
                    f"{entry}: folder contains no photos "
                    f"(looked for {', '.join(sorted(SUPPORTED_EXTENSIONS))})"
                )
            found.update(photos)
        elif entry.is_file():
            found.add(entry)
        else:
            raise PhotoNotFoundError(f"{entry}: no such file or folder")
    return sorted(found)
