"""Reading and writing frames and label masks with typed errors.

All image decoding in the data layer goes through here so that a truncated or wrongly formatted
file always surfaces as the same typed error naming the file. PIL is used for decoding because,
unlike OpenCV, it refuses truncated JPEG/PNG data instead of returning a partly grey image.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ivos_rl.errors import CorruptFileError, InputValidationError, MaskFormatError, MissingDataError
from ivos_rl.utils.io import atomic_write_bytes

# Errors PIL raises on undecodable data (UnidentifiedImageError and "image file is truncated" are
# OSErrors; broken PNG chunks raise SyntaxError; bad zlib streams raise zlib.error).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error)


def davis_palette() -> np.ndarray:
    """The DAVIS/PASCAL-VOC colour map as a (256, 3) uint8 array (id 1 red, 2 green, 255 cream).

    Each id's bits are spread over the high bits of R, G and B so neighbouring ids get
    clearly different colours.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for idx in range(256):
        code, r, g, b = idx, 0, 0, 0
        for bit in range(8):
            r |= ((code >> 0) & 1) << (7 - bit)
            g |= ((code >> 1) & 1) << (7 - bit)
            b |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette[idx] = (r, g, b)
    return palette


_PALETTE_BYTES = davis_palette().reshape(-1).tobytes()


def open_decoded(path: str | Path) -> Image.Image:
    """Open and fully decode ``path``; missing -> MissingDataError, undecodable -> CorruptFileError."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError("image file does not exist", path)
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except _DECODE_ERRORS as exc:
        raise CorruptFileError(f"cannot decode image ({type(exc).__name__}: {exc})", path) from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError("image file does not exist", path)
    try:
        with Image.open(path) as img:
            width, height = img.size
    except _DECODE_ERRORS as exc:
        raise CorruptFileError(f"cannot read image header ({type(exc).__name__}: {exc})", path) from exc
    return int(height), int(width)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an RGB frame to (H, W, 3) uint8; grayscale/CMYK JPEGs are converted to RGB."""
    img = open_decoded(Path(path))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a palette (mode "P") label PNG to (H, W) uint8 ids.

    Only palette images are accepted: an RGB or grayscale file would have to be guessed into ids
    (e.g. DAVIS-2016's 0/255 masks would become "void"), so it is rejected instead.
    """
    path = Path(path)
    img = open_decoded(path)
    if img.mode != "P":
        raise MaskFormatError(
            f"expected a palette (mode 'P') label PNG, got mode {img.mode!r}; "
            "convert it to palette ids first",
            path,
        )
    return np.asarray(img, dtype=np.uint8)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image (deterministic for a given libjpeg)."""
    rgb = _check_rgb(rgb, "rgb")
    if not 1 <= int(quality) <= 100:
        raise InputValidationError(f"quality must be in 1..100, got {quality!r}")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 90) -> Path:
    """Atomically write an RGB frame as JPEG."""
    return atomic_write_bytes(path, encode_jpeg(rgb, quality))


def encode_mask_png(labels: np.ndarray) -> bytes:
    """Palette-PNG bytes (DAVIS palette) of an (H, W) label map with ids 0..255."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputValidationError(f"labels must be (H, W), got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise InputValidationError(
                f"labels must be in 0..255, got range [{labels.min()}, {labels.max()}]"
            )
        labels = labels.astype(np.uint8)
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels).tobytes())
    img.putpalette(_PALETTE_BYTES)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_mask(path: str | Path, labels: np.ndarray) -> Path:
    """Atomically write a label map as a DAVIS palette PNG."""
    return atomic_write_bytes(path, encode_mask_png(labels))


def _check_rgb(rgb: np.ndarray, name: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputValidationError(f"{name} must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _check_size(size: tuple[int, int], name: str = "size") -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size)
    ):
        raise InputValidationError(f"{name} must be (H, W) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB frame to ``size`` = (H, W): area averaging when shrinking, bilinear otherwise.

    Area averaging avoids the aliasing bilinear sampling causes on strong downscales.
    """
    h, w = _check_size(size)
    rgb = _check_rgb(rgb, "rgb")
    if rgb.shape[:2] == (h, w):
        return rgb.copy()
    shrink = h <= rgb.shape[0] and w <= rgb.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to ``size`` = (H, W) with nearest-neighbour (pixel-centre exact) sampling."""
    h, w = _check_size(size)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise InputValidationError(f"labels must be (H, W) uint8, got {labels.dtype} {labels.shape}")
    if labels.shape == (h, w):
        return labels.copy()
    return cv2.resize(np.ascontiguousarray(labels), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
