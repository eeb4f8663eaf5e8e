"""What every phantom shares: projected bone, the imaging chain, and the files it writes.

Images are built as attenuation line integrals (arbitrary units, bone > soft tissue), then
taken through the imaging chain: scatter (a broad blur of the primary added back), the
detector's blur, quantum noise whose variance follows the signal, the display mapping
(bone bright), and quantisation to 8 or 16 bits. ``write_dicom`` stores the result as a
real DX file (MONOCHROME1 inverts the stored values, as such consoles do).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


def tube_path_lengths(
    lateral_offset: np.ndarray, outer_half_width: float, inner_half_width: float, depth_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths through the cortex and the medulla of an elliptical tube, at each
    lateral offset from its axis (pixels). ``depth_ratio`` is the depth semi-axis over the
    in-image semi-axis (1: a circular cross-section). Returns (cortex, medulla)."""
    u = np.abs(np.asarray(lateral_offset, dtype=np.float64))
    outer = (
        2
        * depth_ratio
        * outer_half_width
        * np.sqrt(np.clip(1 - (u / outer_half_width) ** 2, 0, None))
    )
    inner = (
        2
        * depth_ratio
        * inner_half_width
        * np.sqrt(np.clip(1 - (u / max(inner_half_width, 1e-9)) ** 2, 0, None))
    )
    return outer - inner, inner


def axis_coordinates(
    shape: tuple[int, int], start: Sequence[float], end: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel: the position along the axis start->end (0 at start, in pixels) and
    the signed lateral offset from it (pixels)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.asarray(start, dtype=np.float64)
    b = np.asarray(end, dtype=np.float64)
    d = (b - a) / np.hypot(*(b - a))
    n = np.array([-d[1], d[0]])
    along = (xs - a[0]) * d[0] + (ys - a[1]) * d[1]
    lateral = (xs - a[0]) * n[0] + (ys - a[1]) * n[1]
    return along, lateral


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field in [0, 1] varying over about ``cells`` cells across."""
    h, w = shape
    coarse = rng.random((max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))))
    field = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, 0, 1).astype(np.float64)


def trabecular_texture(
    rng: np.random.Generator, shape: tuple[int, int], scale_px: float
) -> np.ndarray:
    """A trabecular-like texture in [0, 1]: band-passed noise thresholded softly into a
    network of struts about ``scale_px`` apart."""
    noise = rng.standard_normal(shape).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), max(0.5, scale_px / 4))
    coarse = cv2.GaussianBlur(noise, (0, 0), max(1.0, scale_px))
    band = fine - coarse
    band /= float(np.std(band)) + 1e-9
    return (1 / (1 + np.exp(-3 * np.abs(band) + 2))).astype(np.float64)


@dataclass(frozen=True)
class Chain:
    """The imaging chain's settings for one phantom."""

    blur_sigma_px: float = 1.0
    scatter_fraction: float = 0.15
    scatter_sigma_px: float = 40.0
    photons: float = 4000.0  # quanta per pixel at zero attenuation: lower is noisier
    attenuation_scale: float = 1.0  # converts the line integrals to optical depth
    bits: int = 16
    monochrome1: bool = False


def image_chain(attenuation: np.ndarray, chain: Chain, rng: np.random.Generator) -> np.ndarray:
    """Attenuation line integrals -> displayed image in [0, 1], bone bright, with scatter,
    detector blur, quantum noise and quantisation to the chain's bit depth."""
    primary = np.exp(-chain.attenuation_scale * attenuation)
    scatter = cv2.GaussianBlur(primary.astype(np.float32), (0, 0), chain.scatter_sigma_px)
    detected = (1 - chain.scatter_fraction) * primary + chain.scatter_fraction * scatter
    if chain.blur_sigma_px > 0:
        detected = cv2.GaussianBlur(detected.astype(np.float32), (0, 0), chain.blur_sigma_px)
    counts = rng.poisson(np.clip(detected, 1e-6, None) * chain.photons).astype(np.float64)
    display = -np.log(np.clip(counts, 1, None) / chain.photons)  # bone bright
    lo, hi = np.percentile(display, [0.5, 99.5])
    display = np.clip((display - lo) / max(hi - lo, 1e-9), 0, 1)
    levels = (1 << chain.bits) - 1
    return np.round(display * levels) / levels


def stored_values(display: np.ndarray, chain: Chain) -> np.ndarray:
    """The integers a console stores for the displayed image (MONOCHROME1 inverted)."""
    levels = (1 << chain.bits) - 1
    values = np.round(np.clip(display, 0, 1) * levels)
    if chain.monochrome1:
        values = levels - values
    return values.astype(np.uint16 if chain.bits > 8 else np.uint8)


def write_dicom(
    display: np.ndarray,
    chain: Chain,
    pixel_spacing_mm: float | None,
    body_part: str,
    view: str | None,
    spacing_keyword: str = "ImagerPixelSpacing",
    modality: str = "DX",
) -> bytes:
    """A real DX (or CR) DICOM file of the phantom, as bytes. No patient data: the
    patient fields are the phantom's."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    sop_class = "1.2.840.10008.5.1.4.1.1.1.1" if modality == "DX" else "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "PHANTOM"
    ds.PatientID = "PHANTOM"
    ds.BodyPartExamined = body_part
    if view:
        ds.ViewPosition = view
    values = stored_values(display, chain)
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if chain.monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16 if chain.bits > 8 else 8
    ds.BitsStored = chain.bits
    ds.HighBit = chain.bits - 1
    ds.PixelRepresentation = 0
    if pixel_spacing_mm is not None:
        setattr(ds, spacing_keyword, [f"{pixel_spacing_mm:.6g}", f"{pixel_spacing_mm:.6g}"])
    ds.PixelData = values.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def write_png(display: np.ndarray, bits: int = 8) -> bytes:
    """The displayed image as an 8- or 16-bit gray PNG (no scale: a raster file)."""
    levels = (1 << bits) - 1
    values = np.round(np.clip(display, 0, 1) * levels).astype(np.uint16 if bits > 8 else np.uint8)
    ok, encoded = cv2.imencode(".png", values)
    if not ok:
        raise ValueError("png encoding failed")
    return encoded.tobytes()


def photo_of_film(display: np.ndarray, seed: int):
    """A simulated phone photo of the printed film (tools/photo_sim, condition ``good``),
    with the true film corners in the photo (``SimPhoto``)."""
    import photo_sim

    return photo_sim.simulate(np.asarray(display, dtype=np.float32), seed, "good", "phantom")
