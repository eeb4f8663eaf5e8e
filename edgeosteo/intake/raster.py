"""PNG, JPEG and TIFF files to a Radiograph (no patient identity can be read from them)."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeosteo.config import IntakeLimits
from edgeosteo.errors import IntakeError
from edgeosteo.intake.detect import Kind
from edgeosteo.intake.pixels import colourfulness, to_gray_float
from edgeosteo.intake.types import Intake, PatientIdentity, Radiograph

_EXIF_ORIENTATION = 0x0112


def raster_header(data: bytes, limits: IntakeLimits) -> tuple[int, int, int]:
    """Width, height and EXIF orientation from the header alone, before any decoding."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            frames = getattr(img, "n_frames", 1)
            try:
                orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:
                orientation = 1
    except Image.DecompressionBombError as exc:
        raise IntakeError("intake.too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise IntakeError("intake.truncated", str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise IntakeError("intake.truncated", f"{type(exc).__name__}: {exc}") from exc
    if width <= 0 or height <= 0:
        raise IntakeError("intake.corrupt_pixels", f"{width}x{height}")
    if width * height > limits.max_pixels:
        raise IntakeError("intake.too_large", f"{width}x{height}")
    if min(width, height) < limits.min_side_px:
        raise IntakeError("intake.too_small", f"{width}x{height}")
    if frames > 1:
        raise IntakeError("intake.multi_frame", f"{frames} pages")
    return width, height, orientation


def read_raster(data: bytes, kind: Kind, limits: IntakeLimits, content_sha256: str) -> Intake:
    _, _, orientation = raster_header(data, limits)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # ANYDEPTH keeps 16-bit PNG/TIFF; without IMREAD_UNCHANGED OpenCV applies EXIF orientation
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise IntakeError("intake.corrupt_pixels", str(exc)) from exc
    if decoded is None or decoded.size == 0:
        raise IntakeError("intake.truncated", "the image decoder could not read the pixels")
    transforms: list[str] = []
    if orientation != 1:
        transforms.append(f"exif_orientation_{orientation}")
    if decoded.ndim == 3:
        channels = decoded.shape[2]
        if channels == 4:
            rgb = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
        elif channels == 3:
            rgb = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        else:
            rgb = decoded[:, :, 0]
        colour = colourfulness(rgb) if rgb.ndim == 3 else 0.0
        pixels = to_gray_float(rgb)
        transforms.append("rgb_to_gray")
    else:
        colour = 0.0
        pixels = to_gray_float(decoded)
    if not np.all(np.isfinite(pixels)):
        raise IntakeError("intake.invalid_values")
    if float(pixels.max()) - float(pixels.min()) <= 0.0:
        raise IntakeError("intake.empty_pixels")
    bits = 16 if decoded.dtype == np.uint16 else 8
    radiograph = Radiograph(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format="jpeg" if kind == "jpeg" else kind,  # type: ignore[arg-type]
        photometric="MONOCHROME2",
        bits_stored=bits,
        colourfulness=colour,
        transforms=tuple(transforms),
        content_sha256=content_sha256,
    )
    return Intake(radiograph=radiograph, identity=PatientIdentity())
