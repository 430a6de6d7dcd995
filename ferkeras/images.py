"""Reading images and turning them into 8-bit gray faces: one rule for training and serving.

No TensorFlow here: the training loader (``ferkeras.data``) and the edge runtime
(``ferkeras.inference``) both use these functions, so a face is decoded, converted
and resized the same way in both.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from ferkeras.errors import FerKerasError

#: Image files ferkeras reads (training folders, ``cam`` image folders), lower case.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    """True for a file name with one of :data:`IMAGE_SUFFIXES` (not hidden)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _png_significant_bits(data: np.ndarray) -> int | None:
    """The sample depth a PNG's ``sBIT`` chunk declares (max over channels), if any."""
    raw = data.tobytes()
    position = 8  # after the signature
    while position + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[position : position + 8])
        if kind == b"sBIT" and length:
            bits = max(raw[position + 8 : position + 8 + length], default=0)
            return bits if 1 <= bits <= 16 else None
        if kind in (b"IDAT", b"IEND"):
            return None  # sBIT must come before the image data
        position += 12 + length
    return None


def _truncation(data: np.ndarray) -> str | None:
    """Why an encoded JPEG or PNG is incomplete (OpenCV decodes the first part silently), or None."""
    raw = data.tobytes()
    if raw[:2] == b"\xff\xd8":
        # Inside entropy-coded data 0xFF is always followed by 0x00 or a restart
        # marker, so the last end-of-image marker must follow the last start-of-scan.
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda") or raw.rfind(b"\xff\xd9") < 0:
            return "truncated JPEG (no end-of-image marker after its image data)"
    elif raw[:8] == b"\x89PNG\r\n\x1a\n" and raw.rfind(b"IEND") < 0:
        return "truncated PNG (no IEND chunk)"
    return None


def to_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """An image array as uint8 0..255, scaled as its dtype says.

    uint8 as it is; uint16 over its full range (0..65535); bool as 0/255; other
    integers must lie in 0..255; floats in 0..1 are scaled by 255, floats with
    any value above 1 are taken as 0..255. Non-finite or out-of-range values are
    a :class:`FerKerasError` naming ``what``.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if image.size == 0:
        return image.astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise FerKerasError(f"{what}: integer pixels must lie in 0..255 (got {low}..{high}); pass uint8 or uint16")
        return image.astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise FerKerasError(f"{what}: pixels contain NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise FerKerasError(f"{what}: float pixels must lie in 0..1 or 0..255 (got {low:g}..{high:g})")
        values = image.astype(np.float32)
        if high <= 1.0:
            values = values * 255.0
        return np.round(values).astype(np.uint8)
    raise FerKerasError(f"{what}: unsupported pixel type {image.dtype}; pass uint8, uint16 or float")


def check_image(image, what: str = "image") -> np.ndarray:
    """``image`` as a uint8 (H, W), (H, W, 3) BGR or (H, W, 4) BGRA array.

    (H, W, 1) becomes (H, W); pixels are converted by :func:`to_uint8`. Anything
    else (None, 1-D, 2 channels, empty) is a :class:`FerKerasError` naming ``what``.
    """
    if image is None:
        raise FerKerasError(f"{what} is None (an unread frame or image?)")
    try:
        image = np.asarray(image)
    except (TypeError, ValueError):
        raise FerKerasError(f"{what} is not an image array") from None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise FerKerasError(f"{what} has shape {image.shape}; expected (H, W) gray, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FerKerasError(f"{what} is empty (shape {image.shape})")
    return to_uint8(image, what)


def to_gray(image, what: str = "image") -> np.ndarray:
    """Any image :func:`check_image` accepts, as a 2-D uint8 gray image."""
    image = check_image(image, what)
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def to_bgr(image, what: str = "frame") -> np.ndarray:
    """Any image :func:`check_image` accepts, as uint8 BGR (what the face detectors take)."""
    image = check_image(image, what)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGRA2BGR)
    return image


def resize_face(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a gray face to ``size`` x ``size`` (area when shrinking, linear otherwise)."""
    if image.shape[:2] == (size, size):
        return image
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def center_crop(images: np.ndarray, crop: int) -> np.ndarray:
    """Centre crop (N, H, W) or (N, H, W, C) faces to ``crop`` x ``crop``; 0 = no crop."""
    if not crop:
        return images
    height, width = images.shape[1:3]
    top, left = (height - crop) // 2, (width - crop) // 2
    return images[:, top : top + crop, left : left + crop]


#: Test-time augmentation: none, the mean over each face and its mirror image, or over ten crops.
TTA_MODES = ("none", "flip", "tencrop")


def ten_crops(images: np.ndarray, crop: int) -> list[np.ndarray]:
    """The four corner crops, the centre crop, and their mirror images (N, H, W[, C])."""
    height, width = images.shape[1:3]
    corners = [(0, 0), (0, width - crop), (height - crop, 0), (height - crop, width - crop)]
    crops = [images[:, y : y + crop, x : x + crop] for y, x in corners]
    crops.append(center_crop(images, crop))
    return crops + [np.ascontiguousarray(c[:, :, ::-1]) for c in crops]


def to_model_input(images: np.ndarray, channels: int, crop: int = 0) -> np.ndarray:
    """uint8 (N, H, W) faces -> float32 (N, S, S, channels) in 0..255, centre-cropped."""
    images = center_crop(np.asarray(images), crop).astype(np.float32)[..., None]
    return np.repeat(images, channels, axis=-1) if channels > 1 else images


# JPEG start-of-frame markers (they carry the image size); C4, C8 and CC are other segments.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(raw):
        if raw[position] != 0xFF:
            return None
        marker = raw[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", raw[position + 2 : position + 4])
        if marker in _JPEG_SOF and position + 9 <= len(raw):
            height, width = struct.unpack(">HH", raw[position + 5 : position + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header
            return None
        position += 2 + length
    return None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30 and raw[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", raw[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25 and raw[20] == 0x2F:
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    return None


def sniff_image(raw: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` of an encoded JPEG, PNG or WebP from its header alone, else None.

    For refusing a file by what it is (not what a client says it is) and by its
    pixel count before decoding it: a small file can declare a huge image.
    """
    size = None
    if raw[:3] == b"\xff\xd8\xff":
        kind, size = "jpeg", _jpeg_size(raw)
    elif raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR" and len(raw) >= 24:
        kind, size = "png", struct.unpack(">II", raw[16:24])
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        kind, size = "webp", _webp_size(raw)
    return (kind, *size) if size else None


def decode_image(data: np.ndarray, gray: bool = True) -> tuple[np.ndarray | None, str | None]:
    """Decode encoded image bytes (uint8 array) to uint8 gray or BGR.

    Returns ``(image, None)`` or ``(None, reason)``. 16-bit images are scaled by
    their significant bits: a PNG's ``sBIT`` chunk, else the smallest depth
    that holds the brightest pixel (12-bit cameras write 0..4095 into 16-bit
    files, which a plain 8-bit conversion turns near-black).
    """
    if data.size == 0:
        return None, "empty file"
    problem = _truncation(data)
    if problem:
        return None, problem
    flags = cv2.IMREAD_ANYDEPTH | (cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        return None, "not an image OpenCV can decode (corrupt or unsupported)"
    if image.dtype == np.uint16:
        bits = _png_significant_bits(data) if data[:4].tobytes() == b"\x89PNG" else None
        bits = bits or max(8, int(image.max()).bit_length())
        image = np.round(image.astype(np.float32) * (255.0 / (2**bits - 1))).clip(0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        try:
            image = to_uint8(image)
        except FerKerasError as exc:
            return None, str(exc)
    return image, None


def read_image(path: str | Path, gray: bool = True) -> tuple[np.ndarray | None, str | None]:
    """Read and decode an image file: ``(image, None)`` or ``(None, reason)``."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        return None, exc.strerror or "unreadable"
    return decode_image(data, gray)


def read_face(path: str | Path, size: int) -> tuple[np.ndarray | None, str | None]:
    """A gray face file resized to ``size`` x ``size`` as soon as it is decoded.

    Resizing here, not after every file is decoded, keeps the loader's memory
    bounded by the faces' size, not by the photos'.
    """
    image, problem = read_image(path, gray=True)
    return (resize_face(image, size), None) if image is not None else (None, problem)
