"""DICOM radiographs (CR, DX, secondary capture) to a Radiograph plus PatientIdentity."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_rescale, apply_voi_lut

from edgeosteo.config import IntakeLimits
from edgeosteo.errors import IntakeError
from edgeosteo.intake.pixels import colourfulness, to_gray_float
from edgeosteo.intake.types import Intake, PatientIdentity, Radiograph

_PHI_TEXT = {
    "patient_id": "PatientID",
    "name": "PatientName",
    "birth_date": "PatientBirthDate",
    "sex": "PatientSex",
    "age": "PatientAge",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
    "institution": "InstitutionName",
    "referring_physician": "ReferringPhysicianName",
}


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _identity(ds: Dataset) -> PatientIdentity:
    fields = {name: _text(ds, keyword) for name, keyword in _PHI_TEXT.items()}
    other = ds.get("OtherPatientIDs")
    if other is None:
        other_ids: tuple[str, ...] = ()
    elif isinstance(other, (list, tuple, pydicom.multival.MultiValue)):
        other_ids = tuple(str(v) for v in other if str(v).strip())
    else:
        other_ids = (str(other),) if str(other).strip() else ()
    return PatientIdentity(**fields, other_ids=other_ids)


def patient_identity(ds: Dataset) -> PatientIdentity:
    """The patient fields of a header (kept on the box, never serialised with a result)."""
    return _identity(ds)


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col):
            return (row, col), keyword
    return None, None


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default))
    except (TypeError, ValueError):
        return default


def _decode(ds: Dataset) -> np.ndarray:
    try:
        return ds.pixel_array
    except NotImplementedError as exc:
        # pydicom's way of saying no installed plugin decodes this transfer syntax
        raise IntakeError("intake.unsupported_transfer_syntax", str(exc)) from exc
    except (
        RuntimeError,
        ValueError,
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
    ) as exc:
        raise IntakeError("intake.corrupt_pixels", str(exc)) from exc
    except MemoryError as exc:
        raise IntakeError("intake.too_large", "out of memory while decoding") from exc


def _check_uncompressed_length(ds: Dataset, rows: int, columns: int) -> None:
    """A cut-off file shows as pixel data shorter than the header promises."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed or "PixelData" not in ds:
        return
    samples = _int(ds, "SamplesPerPixel", 1)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422" and samples == 3:
        # 4:2:2 chroma subsampling: two pixels share one Cb and one Cr, so each pixel is
        # two samples' worth of bytes (Y Y Cb Cr per pair), not three
        samples = 2
    expected = rows * columns * samples * max(1, _int(ds, "BitsAllocated", 16)) // 8
    if len(ds.PixelData) < expected:
        raise IntakeError("intake.truncated", f"pixel data {len(ds.PixelData)} of {expected} bytes")


def _monochrome(ds: Dataset, stored: np.ndarray) -> tuple[np.ndarray, list[str]]:
    transforms: list[str] = []
    bits_stored = _int(ds, "BitsStored", 16)
    signed = _int(ds, "PixelRepresentation", 0) == 1
    values = np.asarray(apply_rescale(stored, ds), dtype=np.float64)
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        transforms.append("modality_lut")
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if "VOILUTSequence" in ds or has_window:
        try:
            windowed = apply_voi_lut(values, ds, index=0)
            lo, hi = float(np.min(windowed)), float(np.max(windowed))
            if hi > lo:
                values = (windowed - lo) / (hi - lo)
                transforms.append("voi_lut" if "VOILUTSequence" in ds else "window")
        except (ValueError, TypeError, IndexError, AttributeError, ZeroDivisionError):
            transforms.append("voi_ignored_invalid")
    if not transforms or transforms[-1] not in ("voi_lut", "window"):
        # No display transform: scale by the range the stored bits can hold, so a faint
        # image stays faint instead of being stretched into something it is not.
        low_stored = -(2 ** (bits_stored - 1)) if signed else 0
        high_stored = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1
        ends = np.asarray(
            apply_rescale(np.array([low_stored, high_stored], dtype=np.int64), ds),
            dtype=np.float64,
        )
        lo, hi = float(np.min(ends)), float(np.max(ends))
        if not hi > lo:
            lo, hi = float(np.min(values)), float(np.max(values))
        values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        transforms.append(f"bits_stored_scale_{bits_stored}")
    values = np.clip(values, 0.0, 1.0)
    inverse = ds.get("PhotometricInterpretation") == "MONOCHROME1"
    if str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        inverse = not inverse
    if inverse:
        values = 1.0 - values
        transforms.append("inverted_to_monochrome2")
    return values.astype(np.float32), transforms


@dataclass(frozen=True)
class HeaderAnatomy:
    """What a DICOM header says of the body part and view, read without the pixels."""

    body_part_examined: str | None = None
    view_position: str | None = None
    descriptions: tuple[str, ...] = ()


DESCRIPTION_KEYWORDS = ("StudyDescription", "SeriesDescription", "ProtocolName")


def header_anatomy(data: bytes) -> HeaderAnatomy | None:
    """The body part and view fields of a DICOM file's header; None for anything that is
    not a readable DICOM (a raster file has no header)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception:  # pydicom raises many kinds for a file that is not DICOM
        return None
    return HeaderAnatomy(
        body_part_examined=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        descriptions=tuple(t for k in DESCRIPTION_KEYWORDS if (t := _text(ds, k))),
    )


def read_dicom(data: bytes, limits: IntakeLimits, content_sha256: str) -> Intake:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        # touch the elements we need so a damaged header fails here, typed
        ds.get("PixelData")
        ds.get("Rows")
    except InvalidDicomError as exc:
        raise IntakeError("intake.not_an_image", str(exc)) from exc
    except (
        EOFError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        NotImplementedError,
        RecursionError,
        UnicodeError,
    ) as exc:
        raise IntakeError("intake.truncated", f"{type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:
        raise IntakeError("intake.too_large", "header asks for too much memory") from exc

    try:
        identity = _identity(ds)
    except Exception as exc:
        raise IntakeError("intake.truncated", f"patient header unreadable: {exc}") from exc

    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if not has_pixels:
        raise IntakeError("intake.unsupported_dicom", "no pixel data element")
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    frames = _int(ds, "NumberOfFrames", 1)
    if rows <= 0 or columns <= 0:
        raise IntakeError("intake.corrupt_pixels", "Rows/Columns missing or zero")
    if frames > 1:
        raise IntakeError("intake.multi_frame", f"{frames} frames")
    if rows * columns > limits.max_pixels:
        raise IntakeError("intake.too_large", f"{columns}x{rows}")
    if min(rows, columns) < limits.min_side_px:
        raise IntakeError("intake.too_small", f"{columns}x{rows}")

    _check_uncompressed_length(ds, rows, columns)
    stored = _decode(ds)
    if stored.ndim not in (2, 3) or stored.shape[0] != rows or stored.shape[1] != columns:
        raise IntakeError("intake.corrupt_pixels", f"decoded shape {stored.shape}")
    if stored.size == 0:
        raise IntakeError("intake.empty_pixels")
    if np.issubdtype(stored.dtype, np.floating) and not np.all(np.isfinite(stored)):
        raise IntakeError("intake.invalid_values", "NaN or infinite pixel values")

    photometric = str(ds.get("PhotometricInterpretation", "")).strip() or None
    transforms: list[str] = []
    colour = 0.0
    try:
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(stored, ds)
            colour = colourfulness(rgb)
            pixels = to_gray_float(rgb)
            transforms.append("palette_to_gray")
        elif stored.ndim == 3:
            colour = colourfulness(stored)
            pixels = to_gray_float(stored)
            transforms.append("rgb_to_gray")
        else:
            pixels, transforms = _monochrome(ds, stored)
    except IntakeError:
        raise
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise IntakeError("intake.corrupt_pixels", str(exc)) from exc

    if float(pixels.max()) - float(pixels.min()) <= 0.0:
        raise IntakeError("intake.empty_pixels")
    spacing, spacing_source = _spacing(ds)
    radiograph = Radiograph(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format="dicom",
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        photometric=photometric,
        bits_stored=_int(ds, "BitsStored", 8),
        colourfulness=colour,
        transforms=tuple(transforms),
        content_sha256=content_sha256,
        descriptions=tuple(t for k in DESCRIPTION_KEYWORDS if (t := _text(ds, k))),
    )
    return Intake(radiograph=radiograph, identity=identity)
