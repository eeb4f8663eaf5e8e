"""A folder holding one axial CT series to a HU volume, or the coded reason it is not one.

The headers are read first (no pixels): the files that are not DICOM are skipped (a CD's
viewer, DICOMDIR, notes), localizers and other orientations, mixed series, too few slices,
gaps, duplicate positions and unequal spacing are refused before any pixel is decoded.
Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product
of ImageOrientationPatient's row and column directions), the most superior first. The
volume is int16 HU (Rescale Slope/Intercept applied slice by slice), so a 600-slice
512x512 series holds 315 MB plus one decoded slice at a time.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from edgeosteo.errors import IntakeError
from edgeosteo.intake.dicom import patient_identity
from edgeosteo.intake.types import PatientIdentity

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MIN_SLICES = 3
MAX_SLICES = 2000
MAX_MATRIX = 1024
MAX_FILES = 5000
MAX_VOXELS = 1000 * 512 * 512  # 524 MB of int16: what a 2-4 GB box can hold beside the rest
ORIENTATION_TOLERANCE = 1e-3  # direction cosines of two slices in one stack agree this well
AXIAL_MIN_COSINE = 0.9  # the slice normal within about 25 degrees of the patient's z axis
GAP_FACTOR = 1.5  # a step this many times the usual one: a slice is missing
UNEVEN_TOLERANCE = 0.10  # of the usual step (and at least 0.05 mm)
PARALLEL_MIN_SLICES = 64  # fewer slices decode faster than two processes start
DECODE_WORKERS = 2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CtSeries:
    """One axial CT series: ``hu[k, row, column]`` with slice 0 the most superior.

    ``z_mm`` is each slice's position along the slice normal; spacings are millimetres.
    ``sagittal()`` and ``coronal()`` are the reformats for display: a sagittal image has
    one row per slice (top = superior) and one column per image row (front to back), so its
    pixels are ``slice_spacing_mm`` tall and ``pixel_spacing_mm[0]`` wide.
    """

    hu: np.ndarray = field(repr=False)
    z_mm: tuple[float, ...]
    slice_spacing_mm: float
    pixel_spacing_mm: tuple[float, float]  # (between rows, between columns)
    slice_thickness_mm: float | None
    kvp: float | None
    contrast_agent: str | None
    orientation: tuple[float, ...]
    origin_mm: tuple[float, float, float]  # ImagePositionPatient of slice 0
    image_type: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=(), repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.hu.shape[0]), int(self.hu.shape[1]), int(self.hu.shape[2]))

    def spine_column(self) -> int:
        """The column the sagittal reformat is taken through: where the most bone (over
        200 HU) lies along the image's columns within the middle half, summed over the
        slices. The midline holds the vertebral body's front and back walls, the neural
        arch and the spinous process running back from it, so it stands out from the ribs
        and the body's sides."""
        n, _, cols = self.shape
        lo, hi = cols // 4, cols - cols // 4
        step = max(1, n // 60)
        counts = np.zeros(hi - lo)
        for k in range(0, n, step):
            counts += (self.hu[k, :, lo:hi] > 200).sum(axis=0)
        if counts.max() <= 0:
            return cols // 2
        width = max(1, round(4.0 / self.pixel_spacing_mm[1]))
        smooth = np.convolve(counts, np.ones(width) / width, mode="same")
        return lo + int(np.argmax(smooth))

    def sagittal(self, column: int | None = None) -> np.ndarray:
        col = self.spine_column() if column is None else int(column)
        return np.ascontiguousarray(self.hu[:, :, col])

    def coronal(self, row: int) -> np.ndarray:
        return np.ascontiguousarray(self.hu[:, int(row), :])


@dataclass(frozen=True)
class _Header:
    name: str
    series_uid: str | None
    sop_class: str | None
    modality: str | None
    image_type: tuple[str, ...]
    orientation: tuple[float, ...] | None
    position: tuple[float, float, float] | None
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    thickness: float | None
    kvp: float | None
    contrast: str | None
    has_pixels: bool
    compressed: bool = False


def _float(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        return None
    return values


def _header(path: Path, folder: Path) -> _Header | None:
    """The slice's header, None for a file that is not DICOM; IntakeError for a DICOM file
    that cannot be read (a corrupt slice)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise IntakeError("intake.ct_corrupt_slice", f"{path.name}: {type(exc).__name__}") from exc
    if len(head) < 132 or head[128:132] != b"DICM":
        return None  # not a DICOM Part 10 file: skipped
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise IntakeError("intake.ct_corrupt_slice", f"{path.name}: {type(exc).__name__}") from exc
    if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) == "1.2.840.10008.1.3.10":
        return None  # DICOMDIR
    image_type = tuple(str(v).upper() for v in (ds.get("ImageType") or ()))
    if isinstance(ds.get("ImageType"), str):
        image_type = (str(ds.ImageType).upper(),)
    spacing = _floats(ds.get("PixelSpacing") or (), 2)
    return _Header(
        name=path.relative_to(folder).as_posix(),
        series_uid=str(ds.get("SeriesInstanceUID") or "") or None,
        sop_class=str(ds.get("SOPClassUID") or "") or None,
        modality=str(ds.get("Modality") or "").upper() or None,
        image_type=image_type,
        orientation=_floats(ds.get("ImageOrientationPatient") or (), 6),
        position=_floats(ds.get("ImagePositionPatient") or (), 3),  # type: ignore[arg-type]
        rows=int(ds.get("Rows") or 0),
        columns=int(ds.get("Columns") or 0),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        thickness=_float(ds.get("SliceThickness")),
        kvp=_float(ds.get("KVP")),
        contrast=(str(ds.get("ContrastBolusAgent") or "").strip() or None),
        has_pixels="Rows" in ds,  # reports, key objects and presentation states have none
        compressed=_compressed(ds),
    )


def _compressed(ds: Dataset) -> bool:
    """JPEG or JPEG 2000: slow enough to decode to be worth two processes (RLE is not: a
    512x512 slice decodes in about 3 ms)."""
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    return syntax.startswith("1.2.840.10008.1.2.4.")


def _normal(orientation: Sequence[float]) -> np.ndarray:
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise IntakeError("intake.ct_no_geometry", "ImageOrientationPatient is degenerate")
    return n / norm


def _is_localizer(h: _Header, orientation: tuple[float, ...] | None) -> bool:
    if "LOCALIZER" in h.image_type or "SCOUT" in h.image_type:
        return True
    if orientation is None or h.orientation is None:
        return False
    return max(abs(a - b) for a, b in zip(h.orientation, orientation, strict=True)) > (
        ORIENTATION_TOLERANCE
    )


def read_headers(folder: Path) -> list[_Header]:
    if not folder.is_dir():
        raise IntakeError("intake.ct_not_a_folder", folder.name)
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise IntakeError("intake.unreadable_source", type(exc).__name__) from exc
    if len(paths) > MAX_FILES:
        raise IntakeError("intake.ct_too_many_slices", f"{len(paths)} files")
    headers = [h for h in (_header(p, folder) for p in paths) if h is not None]
    return [h for h in headers if h.has_pixels]


def plan_series(headers: list[_Header]) -> tuple[list[_Header], np.ndarray, float]:
    """The slices in order (superior first), their positions along the normal and the
    step between them, or the refusal."""
    if not headers:
        raise IntakeError("intake.ct_no_dicom")
    not_ct = [h for h in headers if h.modality not in ("CT", None)]
    if not_ct and len(not_ct) == len(headers):
        raise IntakeError("intake.ct_not_ct", f"modality {not_ct[0].modality}")
    if len(headers) < MIN_SLICES:
        raise IntakeError(
            "intake.ct_not_a_series",
            f"{len(headers)} image{'s' if len(headers) != 1 else ''}, {MIN_SLICES} needed",
        )
    # the orientation most slices share is the series'; another one is a localizer
    orientations = [h.orientation for h in headers if h.orientation is not None]
    if not orientations:
        raise IntakeError("intake.ct_no_geometry", "no ImageOrientationPatient")
    main = max(set(orientations), key=orientations.count)
    localizers = [h.name for h in headers if _is_localizer(h, main)]
    if localizers:
        raise IntakeError(
            "intake.ct_localizer_mixed", f"{len(localizers)} file(s), e.g. {localizers[0]}"
        )
    uids = sorted({h.series_uid or "" for h in headers})
    if len(uids) > 1:
        raise IntakeError("intake.ct_mixed_series", f"{len(uids)} series in the folder")
    if not_ct:
        raise IntakeError("intake.ct_not_ct", f"modality {not_ct[0].modality}")
    missing = [h.name for h in headers if h.position is None or h.pixel_spacing is None]
    if missing:
        raise IntakeError("intake.ct_no_geometry", f"{len(missing)} slice(s), e.g. {missing[0]}")
    first = headers[0]
    for h in headers:
        if (h.rows, h.columns) != (first.rows, first.columns) or any(
            abs(a - b) > 1e-3
            for a, b in zip(h.pixel_spacing or (), first.pixel_spacing or (), strict=True)
        ):
            raise IntakeError("intake.ct_slices_differ", f"{h.name} vs {first.name}")
    if not (1 <= first.rows <= MAX_MATRIX and 1 <= first.columns <= MAX_MATRIX):
        raise IntakeError("intake.ct_slices_differ", f"matrix {first.rows}x{first.columns}")
    if len(headers) > MAX_SLICES or len(headers) * first.rows * first.columns > MAX_VOXELS:
        raise IntakeError(
            "intake.ct_too_many_slices", f"{len(headers)} slices of {first.rows}x{first.columns}"
        )
    normal = _normal(main)
    if abs(normal[2]) < AXIAL_MIN_COSINE:
        raise IntakeError("intake.ct_not_axial", f"slice normal {np.round(normal, 2).tolist()}")
    if normal[2] < 0:
        normal = -normal  # superior first whichever way the rows and columns run
    along = np.array([float(np.dot(h.position, normal)) for h in headers])
    order = np.argsort(-along, kind="stable")
    ordered = [headers[i] for i in order]
    z = along[order]
    steps = -np.diff(z)
    if (steps < 1e-3).any():
        raise IntakeError("intake.ct_duplicate_position", f"{int((steps < 1e-3).sum())} pair(s)")
    usual = float(np.median(steps))
    if (steps > GAP_FACTOR * usual).any():
        k = int(np.argmax(steps))
        raise IntakeError(
            "intake.ct_slice_gap",
            f"{steps[k]:.2f} mm between slices {k + 1} and {k + 2} (usual {usual:.2f} mm)",
        )
    uneven = np.abs(steps - usual) > max(UNEVEN_TOLERANCE * usual, 0.05)
    if uneven.any():
        raise IntakeError(
            "intake.ct_uneven_spacing",
            f"steps {steps.min():.2f}-{steps.max():.2f} mm (usual {usual:.2f} mm)",
        )
    return ordered, z, usual


def _slice_or_error(path: Path) -> np.ndarray | tuple[str, str | None]:
    """A decoding worker's answer: the slice, or the refusal's code and detail (an
    exception does not cross the process boundary with its code)."""
    try:
        return _slice_hu(path)
    except IntakeError as error:
        return (error.code, error.detail)


def _decoded(paths: list[Path]):
    """Each slice's HU in order. Compressed slices (JPEG 2000 takes about 28 ms a 512x512
    slice here, against 2 ms uncompressed) are decoded by DECODE_WORKERS processes: the
    decoders hold the GIL, so threads do not help. Spawned, not forked: the box runs
    threads (the page, the receiver) and a forked child could inherit a held lock."""
    if len(paths) >= PARALLEL_MIN_SLICES and (os.cpu_count() or 1) >= 2:
        try:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(DECODE_WORKERS, mp_context=context) as pool:
                yield from pool.map(_slice_or_error, paths, chunksize=4)
            return
        except (OSError, BrokenProcessPool) as exc:  # no processes to be had: one by one
            logger.warning("parallel decoding unavailable (%s); decoding serially", exc)
    for path in paths:
        yield _slice_or_error(path)


def _slice_hu(path: Path) -> np.ndarray:
    try:
        ds: Dataset = pydicom.dcmread(path)
        stored = ds.pixel_array
    except Exception as exc:  # any decoder failure is a corrupt slice
        raise IntakeError("intake.ct_corrupt_slice", f"{path.name}: {type(exc).__name__}") from exc
    slope = _float(ds.get("RescaleSlope"))
    intercept = _float(ds.get("RescaleIntercept"))
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if stored.ndim != 2:
        raise IntakeError("intake.ct_corrupt_slice", f"{path.name}: {stored.ndim} dimensions")
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return np.clip(np.rint(hu), -32768, 32767).astype(np.int16)


def slice_hu(path: Path) -> np.ndarray:
    """One slice's HU (int16), for the page's axial view; IntakeError for a corrupt one."""
    return _slice_hu(path)


def read_identity(folder: Path) -> PatientIdentity:
    """The patient as the first readable slice's header names them (every slice of a series
    is the same patient's); empty when no slice can be read."""
    for path in sorted(p for p in folder.rglob("*.dcm") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # a corrupt slice: the next one may name the patient
            continue
        return patient_identity(ds)
    return PatientIdentity()


def read_ct_series(folder: str | Path) -> CtSeries:
    """The folder's one axial CT series, or IntakeError (``intake.ct_*``)."""
    folder = Path(folder)
    headers = read_headers(folder)
    ordered, z, step = plan_series(headers)
    first = ordered[0]
    volume = np.empty((len(ordered), first.rows, first.columns), dtype=np.int16)
    paths = [folder / h.name for h in ordered]
    slices = _decoded(paths) if any(h.compressed for h in ordered) else map(_slice_or_error, paths)
    for k, (h, hu) in enumerate(zip(ordered, slices, strict=True)):
        if isinstance(hu, tuple):
            raise IntakeError(*hu)
        if hu.shape != volume.shape[1:]:
            raise IntakeError("intake.ct_corrupt_slice", f"{h.name}: {hu.shape}")
        volume[k] = hu
    kvps = {h.kvp for h in ordered}
    thickness = {h.thickness for h in ordered}
    contrast = next((h.contrast for h in ordered if h.contrast), None)
    return CtSeries(
        hu=volume,
        z_mm=tuple(float(v) for v in z),
        slice_spacing_mm=step,
        pixel_spacing_mm=first.pixel_spacing,  # type: ignore[arg-type]
        slice_thickness_mm=thickness.pop() if len(thickness) == 1 else None,
        kvp=kvps.pop() if len(kvps) == 1 else None,
        contrast_agent=contrast,
        orientation=first.orientation or (),
        origin_mm=first.position,  # type: ignore[arg-type]
        image_type=first.image_type,
        files=tuple(h.name for h in ordered),
    )


__all__ = ["CtSeries", "read_ct_series", "read_identity", "slice_hu"]
