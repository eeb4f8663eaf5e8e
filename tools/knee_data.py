"""Load a bone-density training data set (clinical.csv + images/) into typed records.

Layout (see tools/README.md):

    DATA_DIR/
      clinical.csv      one row per image/patient
      images/<file>     radiograph named in the `image` column (JPEG/PNG/TIFF or DICOM)

Required columns: id, sex, age, weight_kg, t_score, image.
Optional columns: height_m, bmi (computed from height/weight when blank), menopause_age,
smoker, alcohol, diabetic, hypothyroidism, estrogen_use, prior_fracture,
family_history_osteoporosis, z_score, who_class, source.
`t_score` is the reference standard (DXA for a hospital's own data; QUS in the bundled
development set) and is never a model input.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

REQUIRED = ("id", "sex", "age", "weight_kg", "t_score", "image")
RISK_FLAGS = (
    "smoker",
    "alcohol",
    "diabetic",
    "hypothyroidism",
    "estrogen_use",
    "prior_fracture",
    "family_history_osteoporosis",
)
DICOM_SUFFIXES = (".dcm", ".dicom", "")


@dataclasses.dataclass(frozen=True)
class KneeRecord:
    id: str
    sex: str  # "female" | "male"
    age: float  # years
    height_m: float | None
    weight_kg: float
    bmi: float | None  # kg/m^2
    t_score: float  # reference standard, never an input
    image_path: Path
    source: str  # acquisition source / site ("" when unknown)
    menopause_age: float | None = None
    z_score: float | None = None
    who_class: str = ""
    risk: dict[str, int | None] = dataclasses.field(default_factory=dict)

    @property
    def female(self) -> float:
        return 1.0 if self.sex == "female" else 0.0

    def clinical_vector(self, features: tuple[str, ...]) -> list[float]:
        out = []
        for f in features:
            if f == "female":
                out.append(self.female)
            else:
                v = getattr(self, f)
                out.append(float("nan") if v is None else float(v))
        return out


def _num(s: str | None) -> float | None:
    if s is None:
        return None
    s = s.strip()
    if s == "":
        return None
    v = float(s)
    return None if math.isnan(v) else v


def _sex(s: str) -> str:
    s = s.strip().lower()
    if s in ("f", "female", "w", "woman"):
        return "female"
    if s in ("m", "male", "man"):
        return "male"
    raise ValueError(f"unknown sex value {s!r}")


def load_dataset(data_dir: str | Path) -> list[KneeRecord]:
    data_dir = Path(data_dir)
    csv_path = data_dir / "clinical.csv"
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{csv_path} has no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ValueError(f"{csv_path} lacks required columns {missing}")
    recs: list[KneeRecord] = []
    seen: set[str] = set()
    for i, r in enumerate(rows):
        pid = r["id"].strip()
        if pid in seen:
            raise ValueError(f"duplicate patient id {pid!r} (row {i + 2}); one row per patient")
        seen.add(pid)
        age, weight, t = _num(r["age"]), _num(r["weight_kg"]), _num(r["t_score"])
        if age is None or weight is None or t is None:
            raise ValueError(f"row {i + 2} ({pid}): age, weight_kg and t_score are required")
        height = _num(r.get("height_m"))
        bmi = _num(r.get("bmi"))
        if bmi is None and height:
            bmi = weight / (height * height)
        img = data_dir / "images" / r["image"].strip()
        if not img.exists():
            raise FileNotFoundError(f"row {i + 2} ({pid}): image {img} not found")
        recs.append(
            KneeRecord(
                id=pid,
                sex=_sex(r["sex"]),
                age=age,
                height_m=height,
                weight_kg=weight,
                bmi=bmi,
                t_score=t,
                image_path=img,
                source=(r.get("source") or "").strip(),
                menopause_age=_num(r.get("menopause_age")),
                z_score=_num(r.get("z_score")),
                who_class=(r.get("who_class") or "").strip(),
                risk={
                    k: (None if _num(r.get(k)) is None else int(_num(r.get(k)))) for k in RISK_FLAGS
                },
            )
        )
    return recs


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_gray(path: str | Path) -> np.ndarray:
    """Return the radiograph as float32 grayscale in [0, 1], bone bright.

    Raster: decoded by OpenCV; colour images are converted with cv2.COLOR_BGR2GRAY
    then divided by the dtype maximum. DICOM: modality LUT applied, scaled by
    min/max of the stored data, inverted when PhotometricInterpretation is MONOCHROME1.
    """
    import cv2

    path = Path(path)
    if _is_dicom(path):
        import pydicom
        from pydicom.pixels import apply_modality_lut

        ds = pydicom.dcmread(str(path))
        arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
        if arr.ndim == 3:
            arr = arr[..., 0] if arr.shape[-1] in (3, 4) else arr[0]
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / max(hi - lo, 1e-6)
        if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            arr = 1.0 - arr
        return arr.astype(np.float32)
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise ValueError(f"cannot decode {path}")
    if im.ndim == 3:
        if im.shape[2] == 4:
            im = im[..., :3]
        im = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
    scale = float(np.iinfo(im.dtype).max) if np.issubdtype(im.dtype, np.integer) else 1.0
    return (im.astype(np.float32) / scale).astype(np.float32)


def arrays(recs: list[KneeRecord]) -> dict[str, np.ndarray]:
    """Convenience numpy view used by the training scripts."""
    return {
        "id": np.array([r.id for r in recs]),
        "age": np.array([r.age for r in recs], float),
        "female": np.array([r.female for r in recs], float),
        "weight_kg": np.array([r.weight_kg for r in recs], float),
        "height_m": np.array([np.nan if r.height_m is None else r.height_m for r in recs], float),
        "bmi": np.array([np.nan if r.bmi is None else r.bmi for r in recs], float),
        "t_score": np.array([r.t_score for r in recs], float),
        "source": np.array([r.source for r in recs]),
        **{
            k: np.array([np.nan if r.risk.get(k) is None else r.risk[k] for r in recs], float)
            for k in RISK_FLAGS
        },
    }


if __name__ == "__main__":
    import sys

    recs = load_dataset(sys.argv[1])
    a = arrays(recs)
    print(
        f"{len(recs)} records; sources {sorted(set(a['source']))}; "
        f"T<=-1: {(a['t_score'] <= -1).sum()}, T<=-2.5: {(a['t_score'] <= -2.5).sum()}"
    )
