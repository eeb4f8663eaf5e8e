"""Axial CT series phantoms of the thoracolumbar spine, written as real DICOM files.

Patient coordinates are DICOM's (LPS, millimetres): x to the patient's left, y to the back,
z up. Each vertebral body is an elliptic cylinder with a cortical shell and endplates around
a trabecular core of known HU, with the basivertebral vein (blood, and a gap in the posterior
cortex) at mid-height; discs between the bodies; the spinal canal (CSF) inside a ring of
posterior elements with a spinous process; ribs on the thoracic levels; the aorta; muscle
and organs inside a ring of subcutaneous fat; air outside. Each slice averages three planes
across its thickness (partial volume), is blurred by the scanner's point spread and gets
Gaussian noise of a set SD. ``calibration_offset_hu`` shifts every value, air included, as a
drifted scanner does. The truth (each level's z-range, centre and core HU) is written beside
the series as JSON. Everything is deterministic from its seed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
LEVELS = ("T9", "T10", "T11", "T12", "L1", "L2", "L3")
THORACIC = {"T9", "T10", "T11", "T12"}
AIR_HU = -1000.0
CORTEX_HU = 900.0
POSTERIOR_HU = 550.0
RIB_HU = 600.0
CSF_HU = 15.0
BLOOD_HU = 40.0
MUSCLE_HU = 45.0
DISC_HU = 85.0
CONTRAST_BLOOD_HU = 180.0
ENDPLATE_MM = 1.5
SHELL_MM = 1.5
BAD_KINDS = ("gap", "mixed", "localizer", "uneven", "two_slices", "single_slice", "corrupt")


@dataclass(frozen=True)
class LevelTruth:
    name: str
    z_top_mm: float  # the superior endplate's top
    z_bottom_mm: float  # the inferior endplate's bottom
    z_centre_mm: float
    centre_mm: tuple[float, float]  # (x, y) of the body's axis at z_centre
    semi_axes_mm: tuple[float, float]  # (left-right, front-back)
    core_hu: float  # the trabecular core, before noise and calibration offset
    ribs: bool


@dataclass(frozen=True)
class SeriesTruth:
    seed: int
    levels: tuple[LevelTruth, ...]
    slice_z_mm: tuple[float, ...]  # superior first (the intake's order)
    matrix: int
    pixel_spacing_mm: float
    slice_thickness_mm: float
    slice_spacing_mm: float
    noise_sd_hu: float
    kvp: float
    contrast: bool
    calibration_offset_hu: float
    fat_hu: float
    origin_mm: tuple[float, float]  # (x, y) of pixel (0, 0)
    series_uid: str = ""
    files: tuple[str, ...] = field(default=(), repr=False)

    def level(self, name: str) -> LevelTruth:
        return next(lv for lv in self.levels if lv.name == name)

    def sagittal_tap(self, name: str) -> tuple[float, float]:
        """The body's centre on the intake's sagittal reformat: (column = image row index
        along y, row = slice index from the top)."""
        lv = self.level(name)
        col = (lv.centre_mm[1] - self.origin_mm[1]) / self.pixel_spacing_mm
        z = np.asarray(self.slice_z_mm)
        row = float(np.argmin(np.abs(z - lv.z_centre_mm)))
        return (float(col), row)

    def to_json(self) -> str:
        raw = asdict(self)
        raw.pop("files")
        return json.dumps(raw, indent=1)


@dataclass
class _Vertebra:
    name: str
    z_top: float
    z_bottom: float
    cx: float
    cy: float
    ax: float
    ay: float
    core: float
    vein: bool = True


class _Anatomy:
    def __init__(self, rng: np.random.Generator, levels: tuple[str, ...], core_hu: float | None):
        self.body_axes = (rng.uniform(135, 165), rng.uniform(95, 120))
        self.fat_mm = rng.uniform(12, 25)
        self.fat_hu = rng.uniform(-110, -90)
        base = float(core_hu) if core_hu is not None else rng.uniform(50, 250)
        cy = self.body_axes[1] * rng.uniform(0.25, 0.35)
        cx = rng.normal(0, 3)
        z = 0.0
        self.vertebrae: list[_Vertebra] = []
        self.discs: list[tuple[float, float, float, float, float, float]] = []
        for i, name in enumerate(levels):
            lumbar = name.startswith("L")
            height = rng.uniform(24, 28) if lumbar else rng.uniform(20, 23)
            scale = 1.0 if lumbar else 0.88
            ax = rng.uniform(19, 22) * scale
            ay = rng.uniform(14, 16.5) * scale
            spread = rng.normal(0, 8) + 3.0 * i  # drawn always: the same anatomy either way
            core = base + (spread if core_hu is None else 0.0)
            v = _Vertebra(name, z, z - height, cx, cy, ax, ay, float(core))
            self.vertebrae.append(v)
            disc = rng.uniform(6, 10)
            self.discs.append((z - height, z - height - disc, cx, cy, ax, ay))
            z -= height + disc
            cx += rng.normal(0, 0.6)
            cy += rng.normal(0, 0.6)
        self.aorta = (cx - rng.uniform(15, 25), self.vertebrae[0].cy - 16 - 14)
        self.tilt = np.deg2rad(rng.uniform(-5, 5))  # axial rotation of the spine

    def vertebra_at(self, z: float) -> _Vertebra | None:
        for v in self.vertebrae:
            if v.z_bottom <= z <= v.z_top:
                return v
        return None

    def disc_at(self, z: float):
        for d in self.discs:
            if d[1] <= z <= d[0]:
                return d
        return None


def _plane(anat: _Anatomy, z: float, X: np.ndarray, Y: np.ndarray, contrast: bool) -> np.ndarray:
    """The noise-free HU of one plane at height z."""
    bx, by = anat.body_axes
    r_body = (X / bx) ** 2 + (Y / by) ** 2
    img = np.full(X.shape, AIR_HU, dtype=np.float32)
    inside = r_body <= 1.0
    img[inside] = anat.fat_hu
    inner = (X / (bx - anat.fat_mm)) ** 2 + (Y / (by - anat.fat_mm)) ** 2 <= 1.0
    img[inner] = MUSCLE_HU
    ax_x, ax_y = anat.aorta
    img[(X - ax_x) ** 2 + (Y - ax_y) ** 2 <= 11.0**2] = CONTRAST_BLOOD_HU if contrast else BLOOD_HU
    v = anat.vertebra_at(z)
    d = anat.disc_at(z)
    if d is not None:
        _, _, cx, cy, ax, ay = d
        u, w = _rotated(X - cx, Y - cy, anat.tilt)
        img[(u / ax) ** 2 + (w / ay) ** 2 <= 1.0] = DISC_HU
        _posterior(img, X, Y, cx, cy, ay, anat.tilt)
    if v is not None:
        u, w = _rotated(X - v.cx, Y - v.cy, anat.tilt)
        r = np.sqrt((u / v.ax) ** 2 + (w / v.ay) ** 2)
        body = r <= 1.0
        shell = body & (r > 1.0 - SHELL_MM / min(v.ax, v.ay))
        endplate = (v.z_top - z) < ENDPLATE_MM or (z - v.z_bottom) < ENDPLATE_MM
        img[body] = CORTEX_HU if endplate else v.core
        if not endplate:
            img[shell] = CORTEX_HU
            mid = (v.z_top + v.z_bottom) / 2
            if abs(z - mid) < (v.z_top - v.z_bottom) / 6:
                # the basivertebral vein and its foramen through the posterior cortex
                vein = ((u / (0.25 * v.ax)) ** 2 + ((w - 0.72 * v.ay) / (0.22 * v.ay)) ** 2) <= 1
                foramen = (np.abs(u) < 2.5) & (w > 0.6 * v.ay) & body
                img[vein | foramen] = BLOOD_HU
        _posterior(img, X, Y, v.cx, v.cy, v.ay, anat.tilt)
        if v.name in THORACIC:
            _ribs(img, X, Y, v, z, anat)
    return img


def _rotated(dx, dy, angle):
    c, s = np.cos(angle), np.sin(angle)
    return c * dx + s * dy, -s * dx + c * dy


def _posterior(img, X, Y, cx: float, cy: float, ay: float, tilt: float) -> None:
    """The canal inside a ring of posterior elements, and the spinous process."""
    u, w = _rotated(X - cx, Y - cy, tilt)
    canal_w = w - (ay + 10.0)
    rr = u**2 + canal_w**2
    img[(rr <= 14.0**2) & (w > ay + 0.5)] = POSTERIOR_HU
    img[(np.abs(u) < 3.5) & (canal_w > 0) & (canal_w < 45)] = POSTERIOR_HU
    img[rr <= 9.0**2] = CSF_HU


def _ribs(img, X, Y, v: _Vertebra, z: float, anat: _Anatomy) -> None:
    """Each thoracic vertebra's pair of ribs: a 10 mm rod along the body wall, from beside
    the vertebra round to the front, descending 40 mm on the way."""
    bx, by = anat.body_axes
    rib_z = (v.z_top + v.z_bottom) / 2
    theta = np.arctan2(np.abs(X - v.cx), (Y - v.cy))  # 0 straight back, pi straight forward
    path_z = rib_z - 40.0 * np.clip(theta / np.pi, 0, 1)
    scale = 1.0 - (anat.fat_mm + 18.0) / min(bx, by)
    radial = np.sqrt((X / (bx * scale)) ** 2 + (Y / (by * scale)) ** 2)
    near = np.abs(z - path_z) < 5.0
    band = np.abs(radial - 1.0) < 5.0 / min(bx, by) / scale
    img[near & band & (theta > 0.35) & (theta < 2.6)] = RIB_HU


def make_series(
    folder: Path,
    seed: int,
    matrix: int = 256,
    fov_mm: float = 360.0,
    slice_thickness_mm: float = 2.5,
    slice_spacing_mm: float | None = None,
    noise_sd_hu: float = 20.0,
    kvp: float = 120.0,
    contrast: bool = False,
    calibration_offset_hu: float = 0.0,
    levels: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3"),
    core_hu: float | None = None,
    signed: bool = False,
    shuffle: bool = True,
) -> SeriesTruth:
    """Write one series (one file a slice, in shuffled order) and ``truth.json`` into
    ``folder``; the series covers the given levels from the top of the first body to the
    bottom of the last one."""
    rng = np.random.default_rng(seed)
    anat = _Anatomy(rng, levels, core_hu)
    spacing = float(slice_spacing_mm or slice_thickness_mm)
    ps = fov_mm / matrix
    origin = (-fov_mm / 2 + ps / 2, -fov_mm / 2 + ps / 2)
    # each pixel averages sub x sub samples (a shell thinner than a pixel is not aliased away)
    sub = max(1, int(np.ceil(ps / 0.75)))
    fine = origin[0] - ps / 2 + ps / sub * (np.arange(matrix * sub, dtype=np.float32) + 0.5)
    X, Y = np.meshgrid(fine, fine)
    z_top = anat.vertebrae[0].z_top - 2.0
    z_bottom = anat.vertebrae[-1].z_bottom + 2.0
    n = int(np.floor((z_top - z_bottom) / spacing)) + 1
    zs = [z_top - k * spacing for k in range(n)]  # superior first
    blur = 0.7 / ps  # the scanner's point spread, 0.7 mm sigma
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(n) if shuffle else np.arange(n)
    files = []
    for index, k in enumerate(order):
        z = zs[int(k)]
        planes = [
            _plane(anat, z + f * slice_thickness_mm, X, Y, contrast) for f in (-1 / 3, 0, 1 / 3)
        ]
        hu = np.mean(planes, axis=0)
        if sub > 1:
            hu = cv2.resize(hu, (matrix, matrix), interpolation=cv2.INTER_AREA)
        hu = cv2.GaussianBlur(hu, (0, 0), blur)
        hu = hu + rng.normal(0, noise_sd_hu, hu.shape).astype(np.float32) + calibration_offset_hu
        ds = _dataset(
            hu, ps, origin, z, slice_thickness_mm, spacing, kvp, contrast, signed, int(k) + 1
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study_uid,
            series_uid,
            frame_uid,
        )
        name = f"IM{index:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        files.append(name)
    truth = SeriesTruth(
        seed=seed,
        levels=tuple(
            LevelTruth(
                v.name,
                v.z_top,
                v.z_bottom,
                (v.z_top + v.z_bottom) / 2,
                (v.cx, v.cy),
                (v.ax, v.ay),
                v.core,
                v.name in THORACIC,
            )
            for v in anat.vertebrae
        ),
        slice_z_mm=tuple(zs),
        matrix=matrix,
        pixel_spacing_mm=ps,
        slice_thickness_mm=slice_thickness_mm,
        slice_spacing_mm=spacing,
        noise_sd_hu=noise_sd_hu,
        kvp=kvp,
        contrast=contrast,
        calibration_offset_hu=calibration_offset_hu,
        fat_hu=anat.fat_hu,
        origin_mm=origin,
        series_uid=series_uid,
        files=tuple(files),
    )
    (folder / "truth.json").write_text(truth.to_json(), encoding="utf-8")
    return truth


def _dataset(hu, ps, origin, z, thickness, spacing, kvp, contrast, signed, number) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = "Phantom^CT"
    ds.PatientID = "PHANTOM-CT"
    ds.PatientSex = "F"
    ds.PatientAge = "065Y"
    ds.BodyPartExamined = "ABDOMEN"
    ds.StudyDate = "20260101"
    ds.SeriesNumber = 3
    ds.InstanceNumber = number
    ds.KVP = f"{kvp:g}"
    ds.SliceThickness = f"{thickness:g}"
    ds.SpacingBetweenSlices = f"{spacing:g}"
    ds.PixelSpacing = [f"{ps:.6f}", f"{ps:.6f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{z:.4f}"]
    ds.SliceLocation = f"{z:.4f}"
    if contrast:
        ds.ContrastBolusAgent = "IOHEXOL 350"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated = 16
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    values = np.rint(hu)
    if signed:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.RescaleIntercept = "0"
        stored = np.clip(values, -32768, 32767).astype(np.int16)
    else:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.RescaleIntercept = "-1024"
        stored = np.clip(values + 1024, 0, 4095).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    return ds


def make_bad(folder: Path, kind: str, seed: int, **kwargs) -> SeriesTruth | None:
    """A series with one thing wrong (``BAD_KINDS``), written into ``folder``."""
    import pydicom

    kwargs.setdefault("levels", ("L1", "L2"))
    kwargs.setdefault("slice_thickness_mm", 5.0)
    if kind in ("two_slices", "single_slice"):
        truth = make_series(folder, seed, **kwargs)
        keep = 2 if kind == "two_slices" else 1
        for name in sorted(truth.files)[keep:]:
            (folder / name).unlink()
        return truth
    truth = make_series(folder, seed, **kwargs)
    by_z = sorted(truth.files, key=lambda f: -_z_of(folder / f))
    if kind == "gap":
        (folder / by_z[len(by_z) // 2]).unlink()
    elif kind == "mixed":
        other = folder / "_other"
        make_series(other, seed + 1, **kwargs)
        for path in sorted(other.glob("*.dcm")):
            path.rename(folder / f"B{path.name}")
        for path in other.iterdir():
            path.unlink()
        other.rmdir()
    elif kind == "localizer":
        ds = pydicom.dcmread(folder / by_z[0])
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / "LOCALIZER.dcm", enforce_file_format=True)
    elif kind == "uneven":
        # the lower half of the slices moved down by half a spacing
        for name in by_z[len(by_z) // 2 :]:
            ds = pydicom.dcmread(folder / name)
            pos = [float(v) for v in ds.ImagePositionPatient]
            pos[2] -= truth.slice_spacing_mm / 2
            ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
            ds.save_as(folder / name, enforce_file_format=True)
    elif kind == "corrupt":
        path = folder / by_z[len(by_z) // 2]
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - len(data) // 3])
    else:
        raise ValueError(kind)
    return truth


def _z_of(path: Path) -> float:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return float(ds.ImagePositionPatient[2])


def main() -> None:  # a series to look at: python tools/phantoms/ct.py OUT_DIR [seed]
    import sys

    out = Path(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    truth = make_series(out, seed)
    print(truth.to_json())


if __name__ == "__main__":
    main()
