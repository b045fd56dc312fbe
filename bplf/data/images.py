"""Decoding raw image bytes into 48x48 grayscale uint8 arrays, with errors that name the file."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from bplf.data.errors import ImageError

SIZE = 48
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
#: A face image larger than this is refused unread (a zip bomb, or not a face crop).
MAX_IMAGE_BYTES = 64 * 2**20
#: Modes that convert to 8-bit grayscale without losing meaning. 16-bit and float images
#: would be clipped by a plain conversion, so they are refused rather than guessed at.
_GRAY_CONVERTIBLE = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "RGBX"}


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def decode_gray(data: bytes, where: str) -> np.ndarray:
    """Decode an image file's bytes to a 2-D uint8 grayscale array.

    Palette and colour images become grayscale (ITU-R 601 luma). Raises ``ImageError`` naming
    ``where`` for an empty, corrupt or truncated file, or a mode with no 8-bit meaning.
    """
    if not data:
        raise ImageError(f"{where}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()  # decodes now, so a truncated file fails here
    except Exception as err:  # PIL raises many types for bad files
        msg = f"{where}: corrupt or truncated image ({type(err).__name__}: {err})"
        raise ImageError(msg) from None
    if img.mode not in _GRAY_CONVERTIBLE:
        raise ImageError(f"{where}: unsupported image mode {img.mode!r} (expected 8-bit grayscale, "
                         "palette or colour)")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    return np.asarray(img.convert("L"), dtype=np.uint8)


def require_size(img: np.ndarray, where: str, size: int = SIZE) -> np.ndarray:
    """Refuse an image that is not ``size`` x ``size`` (the pre-cropped sources)."""
    if img.shape != (size, size):
        raise ImageError(f"{where}: image is {img.shape[1]}x{img.shape[0]}, expected {size}x{size}")
    return img
