"""Intake: any accepted file in, a Radiograph and a separate PatientIdentity out."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from edgeosteo.config import IntakeLimits
from edgeosteo.errors import IntakeError
from edgeosteo.intake.detect import detect_kind
from edgeosteo.intake.dicom import read_dicom
from edgeosteo.intake.raster import read_raster
from edgeosteo.intake.types import Intake, PatientIdentity, Radiograph

ImageSource = str | Path | bytes | BinaryIO

__all__ = ["ImageSource", "Intake", "PatientIdentity", "Radiograph", "read_bytes", "read_image"]


def read_bytes(source: ImageSource, limits: IntakeLimits) -> bytes:
    """The raw bytes of a path, a bytes object or an open binary file, within the size limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > limits.max_file_bytes:
                raise IntakeError("intake.file_too_large", f"{size} bytes")
            data = path.read_bytes()
        except IntakeError:
            raise
        except OSError as exc:
            raise IntakeError("intake.unreadable_source", f"{type(exc).__name__}") from exc
    else:
        try:
            data = source.read(limits.max_file_bytes + 1)
        except OSError as exc:
            raise IntakeError("intake.unreadable_source", f"{type(exc).__name__}") from exc
    if len(data) > limits.max_file_bytes:
        raise IntakeError("intake.file_too_large", f"{len(data)} bytes")
    return data


def read_image(source: ImageSource, limits: IntakeLimits | None = None) -> Intake:
    """Read one file. Raises IntakeError (typed, with a stable code) for anything unusable."""
    limits = limits or IntakeLimits()
    data = read_bytes(source, limits)
    if not data:
        raise IntakeError("intake.empty_file")
    kind = detect_kind(data[:132])
    digest = hashlib.sha256(data).hexdigest()
    try:
        if kind == "dicom":
            return read_dicom(data, limits, digest)
        if kind in ("png", "jpeg", "tiff"):
            return read_raster(data, kind, limits, digest)
    except IntakeError:
        raise
    except MemoryError as exc:
        raise IntakeError("intake.too_large", "out of memory") from exc
    except Exception as exc:
        raise IntakeError("intake.corrupt_pixels", f"{type(exc).__name__}: {exc}") from exc
    except BaseException as exc:
        # Rust decoders (pylibjpeg-rle, through pyo3) turn a panic on a malformed frame into
        # PanicException, which derives from BaseException so `except Exception` misses it
        if type(exc).__name__ != "PanicException":
            raise
        raise IntakeError("intake.corrupt_pixels", f"decoder panic: {exc}") from exc
    raise IntakeError("intake.not_an_image")
