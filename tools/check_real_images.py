"""Check the measurement methods on real radiographs, not phantoms.

    PYTHONPATH=. python tools/check_real_images.py [--knee-dir DIR] [--render DIR]

1. Inventory: every DICOM physically present in the installed pydicom (its own test
   files), pydicom-data and deid-data packages (zip members read in memory; nothing is
   downloaded: pydicom's ``get_testdata_files`` is never called, the package folders are
   walked). For each file: header facts, whether the box's intake reads it (or its
   refusal code), the body part and view the box assigns (``Screener.choose_body_part``,
   or ``Screener.header_anatomy`` when intake refuses the file), and which methods cover it.
2. Every covered file is measured through ``edgeosteo.methods.measure`` with taps a reader
   placed by eye, and re-measured with the taps jittered. Real bone that no method covers
   (pydicom-data's RG3, an AP film of a distal tibia) is measured with the MCI method class
   directly, bypassing only the body-part gate: an edge-finder check on a real cortical tube.
3. The knee development set (``/work/shared/data/knee``): the MCI edge finder on the tibial
   and femoral shafts, with taps derived by a documented rule from the box's knee joint
   locator (``edgeosteo.knee_roi.detect_knees``). Only aggregate figures are written; no
   image id or per-image value leaves this process (the renders for the visual check go to
   ``--render``, outside the repository).

Writes tools/reports/real_images.json and tools/reports/real_images.md. Fixed seeds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import time
import zipfile
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pydicom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from phantoms import stats  # noqa: E402

from edgeosteo.config import MeasurementSettings  # noqa: E402
from edgeosteo.knee_roi import detect_knees  # noqa: E402
from edgeosteo.measurement import Measurement, MeasurementError, MeasurementRequest  # noqa: E402
from edgeosteo.methods import MethodRegistry, measure  # noqa: E402
from edgeosteo.methods.base import MeasureImage, MethodCard  # noqa: E402
from edgeosteo.methods.mci import MetacarpalCorticalIndex  # noqa: E402
from edgeosteo.screening import Screener  # noqa: E402

REPORT = REPO / "tools" / "reports" / "real_images.json"
SUMMARY = REPO / "tools" / "reports" / "real_images.md"
COMMAND = "PYTHONPATH=. python tools/check_real_images.py"
KNEE_DIR = Path("/work/shared/data/knee")
RENDER_DIR = Path("/tmp/real_images_check")
SEED = 20261202
REPEATS = 4
TAP_MOVE = 0.05  # of the tap length, in x and in y, uniform
WORKERS = 2

# methods whose cards are not in this tree yet: the body parts they will read
PENDING_METHODS: dict[str, tuple[str, ...]] = {}

# pydicom-data's RG3 (CR, BodyPartExamined EXTREMITY, "Non-ossifying fibroma of distal
# tibia"): a reader placed these two taps by eye on the ends of the tibial diaphysis above
# the lesion (pixel x, y of the 1760 x 1760 image), viewed at full resolution with a 50 px
# grid; the same image ships in four encodings.
RG3_TIBIA_TAPS = ((862.0, 40.0), (848.0, 900.0))
RG3_FILES = ("RG3_UNCR.dcm", "RG3_UNCI.dcm", "RG3_J2KR.dcm", "RG3_J2KI.dcm")

# The visual check of the knee sample (``--render`` PNGs: the taps, the refitted axis and the
# four edges the method found, for every shaft tapped in the sampled images). A reader
# counted by eye; only the counts are kept (no per-image verdict leaves the reader's screen).
# Re-run, look at the renders and update these if the sample, the rule or the method
# changes (``sample_fingerprint`` in the report changes with the sample).
VISUAL_CHECK: dict[str, object] = {
    "checked_by": "a reader, by eye, on the renders of this script (2026-12-02)",
    "sample_fingerprint": "527f4553ba12",
    "shafts_tapped": 20,
    # two tibiae of one source-A film: the taps ran along the cortex / the fibular overlap
    "taps_on_intended_shaft": 18,
    "measured": 12,
    # periosteal lines on the bone's borders and endosteal lines on the cortex's inner
    # margin, both sides, on every measured shaft (zoomed renders)
    "edges_right": 12,
}


# --- 1. inventory --------------------------------------------------------------------------


def package_roots() -> list[tuple[str, Path]]:
    """The data folders of the installed packages (found from their modules, not fetched)."""
    roots = []
    import pydicom.data

    roots.append(("pydicom", Path(pydicom.data.__file__).resolve().parent / "test_files"))
    try:
        import data_store  # pydicom-data's module

        roots.append(("pydicom-data", Path(data_store.__file__).resolve().parent / "data"))
    except ImportError:
        pass
    try:
        import deid_data

        roots.append(("deid-data", Path(deid_data.__file__).resolve().parent / "data"))
    except ImportError:
        pass
    return roots


def _is_dicom(data: bytes) -> pydicom.Dataset | None:
    """A dataset when the bytes parse as DICOM with at least one image-level element."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception:
        return None
    if not any(int(tag.group) >= 0x0008 for tag in ds.keys()):  # noqa: SIM118
        return None
    return ds


def dicom_files() -> list[tuple[str, str, bytes]]:
    """(package, relative path, bytes) of every DICOM on disk in the packages' folders;
    a zip's members are read in memory and named ``archive.zip!member``."""
    out = []
    for package, root in package_roots():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for name in sorted(archive.namelist()):
                        member = archive.read(name)
                        if _is_dicom(member) is not None:
                            out.append((package, f"{rel}!{name}", member))
                continue
            if _is_dicom(data) is not None:
                out.append((package, rel, data))
    return out


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


def _sop_class(ds: pydicom.Dataset) -> str | None:
    uid = ds.get("SOPClassUID") or getattr(
        getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None
    )
    if uid is None:
        return None
    name = getattr(uid, "name", "") or ""
    return name if name and name != str(uid) else str(uid)


def _frames(ds: pydicom.Dataset) -> int | str:
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return str(ds.get("NumberOfFrames"))  # a damaged test file


def inventory_entry(screener: Screener, package: str, rel: str, data: bytes) -> dict:
    ds = _is_dicom(data)
    assert ds is not None
    intake = screener.read(data)
    if intake.radiograph is not None:
        choice = screener.choose_body_part(intake, None)
        body_part, view = choice.body_part, choice.view
        anatomy_from = "Screener.choose_body_part"
    else:
        header = screener.header_anatomy(data)
        body_part, view = header.body_part, header.view
        anatomy_from = "Screener.header_anatomy"
    covered = [c.id for c in screener.methods.for_image(body_part, view)]
    pending = [m for m, parts in PENDING_METHODS.items() if body_part in parts]
    rows, cols = ds.get("Rows"), ds.get("Columns")
    return {
        "package": package,
        "file": rel,
        "sha256": hashlib.sha256(data).hexdigest()[:16],
        "modality": _text(ds, "Modality"),
        "sop_class": _sop_class(ds),
        "body_part_examined": _text(ds, "BodyPartExamined"),
        "view_position": _text(ds, "ViewPosition"),
        "rows_x_cols": f"{rows}x{cols}" if rows and cols else None,
        "frames": _frames(ds) if rows else None,
        "photometric": _text(ds, "PhotometricInterpretation"),
        "intake": "read" if intake.radiograph is not None else (intake.error or {}).get("code"),
        "box_body_part": body_part,
        "box_view": view,
        "anatomy_from": anatomy_from,
        "methods_covering": covered,
        "pending_methods_covering": pending,
    }


def inventory(screener: Screener) -> list[dict]:
    return [inventory_entry(screener, *f) for f in dicom_files()]


def inventory_summary(entries: list[dict]) -> dict:
    return {
        "files": len(entries),
        "by_package": dict(Counter(e["package"] for e in entries)),
        "intake_read": sum(e["intake"] == "read" for e in entries),
        "intake_refused": dict(Counter(e["intake"] for e in entries if e["intake"] != "read")),
        "by_modality": dict(Counter(str(e["modality"]) for e in entries)),
        "by_box_body_part": dict(Counter(str(e["box_body_part"]) for e in entries)),
        "projection_radiographs": [
            f"{e['package']}:{e['file']}" for e in entries if e["modality"] in ("CR", "DX", "DR")
        ],
        "covered_by_a_shipped_method": [
            f"{e['package']}:{e['file']}" for e in entries if e["methods_covering"]
        ],
        "covered_by_a_pending_method": [
            f"{e['package']}:{e['file']}" for e in entries if e["pending_methods_covering"]
        ],
    }


# --- 2. covered files and real bone --------------------------------------------------------


def jitter(taps, rng, px):
    return tuple((x + rng.uniform(-px, px), y + rng.uniform(-px, px)) for x, y in taps)


def _length(taps) -> float:
    return float(np.hypot(taps[1][0] - taps[0][0], taps[1][1] - taps[0][1]))


def _outcome(result) -> dict:
    if isinstance(result, Measurement):
        return {"status": "measured", "value": result.value, "band": result.band}
    return {"status": "refused", "code": result.code}


# What a reader saw on each file a shipped method's gate accepts (looked at, rendered to PNG).
COVERED_READER_NOTES = {
    "deid-data:ultrasounds/RGB_IMAGE.dcm": (
        "an ultrasound frame (modality US, almost all black, burned-in text), not a radiograph: "
        "no vertebra to tap. The gate accepts it for vertebrae because its description "
        "'US CHEST WALL/SOFT TISSUE' maps to CHEST and no view is stated"
    ),
}
# No vertebra exists in that frame, so no reader taps exist; these six points (one
# rectangle at the frame's centre, in the card's order) stand in for a user who taps anyway,
# to see what the one path does with them.
STAND_IN_SIX_TAPS = (
    (462.0, 334.0),
    (512.0, 334.0),
    (562.0, 334.0),
    (462.0, 434.0),
    (512.0, 434.0),
    (562.0, 434.0),
)


def covered_files(screener: Screener, entries: list[dict]) -> list[dict]:
    """Every file a shipped method's gate accepts, and what the one path does with it."""
    out = []
    roots = dict(package_roots())
    for e in entries:
        if not e["methods_covering"]:
            continue
        key = f"{e['package']}:{e['file']}"
        entry = {"file": key, "methods": e["methods_covering"], "intake": e["intake"]}
        entry["reader"] = COVERED_READER_NOTES.get(key, "NOT LOOKED AT: a new covered file")
        if e["intake"] == "read" and "!" not in e["file"]:
            data = (roots[e["package"]] / e["file"]).read_bytes()
            intake = screener.read(data)
            quality = screener.check_quality(intake)
            choice = screener.choose_body_part(intake, None)
            entry["quality_usable"] = bool(quality.usable) if quality else None
            entry["quality_refusals"] = [
                g.code for g in (quality.gates if quality else ()) if g.verdict != "pass"
            ]
            for method_id in e["methods_covering"]:
                if method_id != "vertebrae":
                    continue
                request = MeasurementRequest("vertebrae", STAND_IN_SIX_TAPS, {"first_level": "L1"})
                result = screener.measure(intake, quality, choice, request)
                entry["stand_in_taps_through_measure"] = _outcome(result)
                # and past the quality gate, as if the image had been called usable
                forced = measure(
                    request,
                    intake.radiograph,
                    True,
                    choice.body_part,
                    choice.view,
                    screener.methods,
                    MeasurementSettings(),
                )
                entry["stand_in_taps_if_usable"] = _outcome(forced)
        out.append(entry)
    return out


def rg3_tibia(screener: Screener, render: Path | None) -> dict:
    """The MCI edge finder on a real tibial diaphysis (no method covers EXTREMITY)."""
    _, root = next(r for r in package_roots() if r[0] == "pydicom-data")
    card = MethodCard.load(REPO / "models" / "mci" / "method.json")
    method = MetacarpalCorticalIndex()
    registry = MethodRegistry(REPO / "models")
    out = {}
    for name in RG3_FILES:
        path = root / name
        if not path.is_file():
            out[name] = {"status": "missing"}
            continue
        intake = screener.read(path.read_bytes())
        rad = intake.radiograph
        choice = screener.choose_body_part(intake, None)
        request = MeasurementRequest("mci", RG3_TIBIA_TAPS)
        gate = measure(
            request, rad, True, choice.body_part, choice.view, registry, MeasurementSettings()
        )
        image = MeasureImage.from_radiograph(rad, 1.0, choice.body_part, choice.view)

        def direct(taps, image=image):
            try:
                return method.measure(image, MeasurementRequest("mci", taps), card)
            except MeasurementError as exc:
                return exc

        base = direct(RG3_TIBIA_TAPS)
        rng = np.random.default_rng(SEED)
        px = TAP_MOVE * _length(RG3_TIBIA_TAPS)
        rep = [direct(jitter(RG3_TIBIA_TAPS, rng, px)) for _ in range(20)]
        values = [r.value for r in rep if isinstance(r, Measurement)]
        entry = {
            "through_measure": _outcome(gate),
            "method_class_direct": _outcome(base)
            if isinstance(base, Measurement)
            else {"status": "refused", "code": base.code},
            "jittered_20": {
                "measured": len(values),
                "refused": dict(Counter(r.code for r in rep if isinstance(r, MeasurementError))),
                "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
                "range": [min(values), max(values)] if values else None,
            },
        }
        if isinstance(base, Measurement):
            entry["details"] = dict(base.details)
        out[name] = entry
        if render is not None and name == "RG3_UNCR.dcm":
            _render(rad.pixels, [("tibia", RG3_TIBIA_TAPS, base)], render / "rg3_tibia.png")
    return out


def _render(pixels, shafts, path: Path, crop: tuple[int, int, int, int] | None = None) -> None:
    import cv2

    im = cv2.cvtColor((np.clip(pixels, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    thick = max(1, pixels.shape[0] // 900)
    for _, taps, result in shafts:
        for p in taps:
            cv2.circle(im, (int(p[0]), int(p[1])), 3 * thick, (0, 0, 255), -1)
        cv2.line(im, tuple(map(int, taps[0])), tuple(map(int, taps[1])), (0, 0, 255), thick)
        if isinstance(result, Measurement):
            for shape in result.overlay:
                colour = (0, 255, 0) if shape.role == "edge" else (255, 128, 0)
                pts = np.array(shape.points, np.int32)
                cv2.polylines(im, [pts], False, colour, thick)
    if crop is not None:
        x0, y0, x1, y1 = crop
        im = im[y0:y1, x0:x1]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), im)


# --- 3. knee development set ---------------------------------------------------------------

# The tap rule (shaft of the tibia below each detected joint line, femur above it), in units
# of the knee's joint width W from detect_knees:
#   rows every 0.1 W from 1.0 W off the joint line (past the metaphyseal flare) out to 3.5 W
#   or the image's edge (2 % margin); in each row the shaft's centre is the middle of the
#   strongest pair of rising and falling edges (row profile over 1 % of the image height,
#   Gaussian sigma 0.01 W, within cx +- 0.9 W) 0.25-0.55 W apart with brighter content
#   between than outside. The scan stops after five rows in a row without a pair (the
#   exposed field has ended). A shaft found over less than 1.0 W is not tapped (no
#   diaphysis in the field). A straight line through the centres (their median x when they
#   scatter by more than 0.1 W) gives the taps at the first and last rows found.
NEAR, FAR, MIN_SHAFT = 1.0, 3.5, 1.0
LONG_TAPS = 1.4  # W: MCI's width window (<= 30 % of the tap length) needs this for a tibia


def _shaft_centre(g: np.ndarray, cx: float, width: float, y: float) -> float | None:
    from scipy.ndimage import gaussian_filter1d  # knee part only: scipy is not a dependency

    h, w = g.shape
    x0, x1 = int(max(0, cx - 0.9 * width)), int(min(w, cx + 0.9 * width))
    r, yi = max(2, int(0.005 * h)), int(y)
    if x1 - x0 < 10:
        return None
    prof = gaussian_filter1d(
        g[max(0, yi - r) : yi + r + 1, x0:x1].mean(0).astype(float), 0.01 * width
    )
    gr = np.gradient(prof)
    top = float(np.abs(gr).max())
    if top <= 0:
        return None
    i = np.arange(1, len(gr) - 1)
    rises = i[(gr[i] >= gr[i - 1]) & (gr[i] >= gr[i + 1]) & (gr[i] > 0.2 * top)]
    falls = i[(gr[i] <= gr[i - 1]) & (gr[i] <= gr[i + 1]) & (-gr[i] > 0.2 * top)]
    m = max(1, int(0.04 * width))
    best = None
    for a in rises:
        for b in falls:
            if not 0.25 * width <= b - a <= 0.55 * width:
                continue
            outside = max(prof[max(0, a - m)], prof[min(len(prof) - 1, b + m)])
            if prof[a:b].mean() <= outside:
                continue
            score = min(gr[a], -gr[b])
            if best is None or score > best[0]:
                best = (score, a, b)
    return None if best is None else x0 + (best[1] + best[2]) / 2


def shaft_taps(g: np.ndarray, knee) -> list[tuple[str, tuple]]:
    h = g.shape[0]
    width = knee.width
    out = []
    for bone, sign in (("tibia", 1), ("femur", -1)):
        edge = h - 1 - 0.02 * h if sign > 0 else 0.02 * h
        pts, misses = [], 0
        for step in np.arange(NEAR, FAR + 1e-9, 0.1):
            y = knee.cy + sign * step * width
            if sign * (edge - y) < 0:
                break
            x = _shaft_centre(g, knee.cx, width, y)
            if x is None:
                misses += 1
                if misses > 4 and pts:  # the shaft has left the exposed field
                    break
                continue
            misses = 0
            pts.append((y, x))
        if len(pts) < 3 or abs(pts[-1][0] - pts[0][0]) < MIN_SHAFT * width:
            continue
        yy, xx = np.array(pts).T
        fit = np.polyfit(yy, xx, 1)
        if np.max(np.abs(np.polyval(fit, yy) - xx)) > 0.1 * width:
            fit = np.array([0.0, float(np.median(xx))])
        near, far = float(yy[0]), float(yy[-1])
        taps = ((float(np.polyval(fit, near)), near), (float(np.polyval(fit, far)), far))
        out.append((bone, taps, (far - near) * sign / width))
    return out


def _knee_job(args) -> dict:
    index, file, source, render = args
    from edgeosteo.intake import read_image

    card = MethodCard.load(REPO / "models" / "mci" / "method.json")
    method = MetacarpalCorticalIndex()
    rad = read_image((KNEE_DIR / "images" / file).read_bytes()).radiograph
    g = rad.pixels
    image = MeasureImage.from_radiograph(rad, 1.0, "KNEE", "AP")
    knees = detect_knees(g)
    rng = np.random.default_rng(SEED + index)
    shafts = []
    drawn = []
    for knee in knees:
        for bone, taps, length_w in shaft_taps(g, knee):
            try:
                base = method.measure(image, MeasurementRequest("mci", taps), card)
            except MeasurementError as exc:
                base = exc
            px = TAP_MOVE * _length(taps)
            repeats = []
            for _ in range(REPEATS):
                try:
                    r = method.measure(
                        image, MeasurementRequest("mci", jitter(taps, rng, px)), card
                    )
                    repeats.append(r.value)
                except MeasurementError:
                    repeats.append(None)
            shafts.append(
                {
                    "bone": bone,
                    "status": "measured" if isinstance(base, Measurement) else "refused",
                    "code": None if isinstance(base, Measurement) else base.code,
                    "value": base.value if isinstance(base, Measurement) else None,
                    "repeats": repeats,
                    "length_w": round(float(length_w), 2),
                }
            )
            drawn.append((bone, taps, base, knee.width))
    if render is not None:
        for k, (bone, taps, base, width) in enumerate(drawn):
            xs = [p[0] for p in taps]
            ys = [p[1] for p in taps]
            crop = (
                int(max(0, min(xs) - 0.8 * width)),
                int(max(0, min(ys) - 0.1 * width)),
                int(max(xs) + 0.8 * width),
                int(max(ys) + 0.1 * width),
            )
            tag = "measured" if isinstance(base, Measurement) else base.code.split(".")[1]
            _render(
                g, [(bone, taps, base)], Path(render) / f"{index:03d}_{k}_{bone}_{tag}.png", crop
            )
    return {"index": index, "source": source, "knees": len(knees), "shafts": shafts}


def _ci_bootstrap_spearman(x, y, seed: int) -> list[float]:
    from scipy.stats import spearmanr

    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(2000):
        idx = rng.integers(0, len(x), len(x))
        if len(set(x[idx])) > 2:
            boots.append(spearmanr(x[idx], y[idx]).statistic)
    return [round(float(np.quantile(boots, 0.025)), 3), round(float(np.quantile(boots, 0.975)), 3)]


def _wilson(k: int, n: int) -> dict:
    lo, hi = stats.wilson_ci(k, n)
    return {
        "k": k,
        "n": n,
        "rate": round(k / n, 3) if n else None,
        "ci95": [round(lo, 3), round(hi, 3)],
    }


def _shaft_summary(results: list[dict]) -> dict:
    shafts = [s for r in results for s in r["shafts"]]
    measured = [s for s in shafts if s["status"] == "measured"]
    out = {
        "images": len(results),
        "images_with_a_knee_found": sum(r["knees"] > 0 for r in results),
        "shafts_tapped": len(shafts),
        "images_with_a_shaft_tapped": sum(bool(r["shafts"]) for r in results),
        "measured": _wilson(len(measured), len(shafts)),
        "refused": dict(Counter(s["code"] for s in shafts if s["status"] == "refused")),
    }
    for name, pick in (
        (f"taps_at_least_{LONG_TAPS}W", lambda s: s["length_w"] >= LONG_TAPS),
        (f"taps_under_{LONG_TAPS}W", lambda s: s["length_w"] < LONG_TAPS),
    ):
        group = [s for s in shafts if pick(s)]
        out[name] = _wilson(sum(s["status"] == "measured" for s in group), len(group))
    if measured:
        v = [s["value"] for s in measured]
        out["index_median"] = round(float(np.median(v)), 3)
        out["index_iqr"] = [
            round(float(np.quantile(v, 0.25)), 3),
            round(float(np.quantile(v, 0.75)), 3),
        ]
    complete = [s["repeats"] for s in shafts if all(v is not None for v in s["repeats"])]
    out["repeat_all_measured"] = len(complete)
    out["repeat_any_refused"] = sum(1 for s in shafts if any(v is None for v in s["repeats"]))
    if len(complete) >= 3:
        rep = stats.repeatability(np.array(complete), seed=SEED)
        out["repeatability"] = {
            "shafts": rep["n_phantoms"],
            "repeats": rep["repeats"],
            "within_sd": round(rep["within_sd"], 4),
            "within_sd_ci95": [round(x, 4) for x in rep["within_sd_ci95"]],
            "icc_a1": round(rep["icc_a1"], 3),
            "icc_a1_ci95": [round(x, 3) for x in rep["icc_a1_ci95"]],
            "tap_move": (
                f"each tap moved uniformly up to {TAP_MOVE:.0%} of the tap length in x and y"
            ),
        }
    return out


def visual_check(sample: dict) -> dict:
    """The reader's counts (VISUAL_CHECK) against the sample this run drew."""
    visual = {**VISUAL_CHECK, "sample": sample}
    if visual["sample_fingerprint"] == sample["fingerprint_now"] and visual["shafts_tapped"]:
        visual["taps_right"] = _wilson(
            int(visual["taps_on_intended_shaft"]), int(visual["shafts_tapped"])
        )
        if visual["measured"]:
            visual["edges_right_of_measured"] = _wilson(
                int(visual["edges_right"]), int(visual["measured"])
            )
        visual["current"] = (
            visual["shafts_tapped"] == sample["shafts_tapped_now"]
            and visual["measured"] == sample["measured_now"]
        )
    else:
        visual["current"] = False
    return visual


def knee_check(render: Path | None, workers: int) -> dict | None:
    if not (KNEE_DIR / "clinical.csv").is_file():
        return None
    with (KNEE_DIR / "clinical.csv").open(encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["image"])
    rng = np.random.default_rng(SEED)
    sample: set[int] = set()
    for source in sorted({r["source"] for r in rows}):
        members = [i for i, r in enumerate(rows) if r["source"] == source]
        sample |= {int(i) for i in rng.choice(members, size=min(5, len(members)), replace=False)}
    fingerprint = hashlib.sha256(
        "\n".join(rows[i]["image"] for i in sorted(sample)).encode()
    ).hexdigest()[:12]
    if render is not None:
        render.mkdir(parents=True, exist_ok=True)
        for old in render.glob("[0-9]*_*.png"):
            old.unlink()
    jobs = [
        (i, r["image"], r["source"], str(render) if render is not None and i in sample else None)
        for i, r in enumerate(rows)
    ]
    with Pool(workers) as pool:
        results = pool.map(_knee_job, jobs, chunksize=1)
    by_source = {
        s: _shaft_summary([r for r in results if r["source"] == s])
        for s in sorted({r["source"] for r in results})
    }
    by_bone = {}
    for bone in ("tibia", "femur"):
        sub = [{**r, "shafts": [s for s in r["shafts"] if s["bone"] == bone]} for r in results]
        by_bone[bone] = _shaft_summary(sub)
    sample_results = [r for r in results if r["index"] in sample]
    sample_shafts = [s for r in sample_results for s in r["shafts"]]
    visual = visual_check(
        {
            "images": len(sample),
            "per_source": 5,
            "seed": SEED,
            "fingerprint_now": fingerprint,
            "shafts_tapped_now": len(sample_shafts),
            "measured_now": sum(s["status"] == "measured" for s in sample_shafts),
        }
    )
    # exploratory only: the tibial index against the QUS T-score, per patient
    per_patient = []
    for r in results:
        v = [s["value"] for s in r["shafts"] if s["bone"] == "tibia" and s["status"] == "measured"]
        if v:
            row = rows[r["index"]]
            per_patient.append((float(np.mean(v)), float(row["t_score"]), float(row["age"])))
    exploratory = None
    if len(per_patient) >= 10:
        from scipy.stats import spearmanr

        idx, t, age = (np.array(c) for c in zip(*per_patient, strict=True))
        exploratory = {
            "label": (
                "EXPLORATORY, not a claim: QUS (not DXA) T-scores; normals are "
                "young, so age confounds; few patients; one source dominates"
            ),
            "patients": len(per_patient),
            "by_source": dict(
                Counter(
                    rows[r["index"]]["source"]
                    for r in results
                    if any(s["bone"] == "tibia" and s["status"] == "measured" for s in r["shafts"])
                )
            ),
            "spearman_index_vs_t_score": round(float(spearmanr(idx, t).statistic), 3),
            "spearman_index_vs_t_score_ci95": _ci_bootstrap_spearman(idx, t, SEED),
            "spearman_index_vs_age": round(float(spearmanr(idx, age).statistic), 3),
            "spearman_t_score_vs_age": round(float(spearmanr(t, age).statistic), 3),
        }
    return {
        "data": (
            "knee development set (147 AP knee JPEGs, sources A/B/C, QUS T-scores); "
            "aggregate figures only"
        ),
        "method": (
            "mci 1.0.0 method class called directly (body-part gate bypassed), "
            "pixels only (no scale needed)"
        ),
        "tap_rule": {
            "near_W": NEAR,
            "far_W_max": FAR,
            "min_shaft_W": MIN_SHAFT,
            "locator": "edgeosteo.knee_roi.detect_knees",
        },
        "all": _shaft_summary(results),
        "by_bone": by_bone,
        "by_source": by_source,
        "visual_check": visual,
        "exploratory_t_score": exploratory,
    }


# --- report --------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    inv = report["inventory_summary"]
    lines = [
        "# Measurement methods on real radiographs",
        "",
        f"Command: `{COMMAND}` (fixed seed {SEED}; {report['seconds']:.0f} s on {WORKERS} "
        "workers).",
        "",
        "## Inventory of installed DICOMs",
        "",
        f"{inv['files']} DICOM files on disk "
        f"({', '.join(f'{k} {v}' for k, v in inv['by_package'].items())}); "
        f"intake reads {inv['intake_read']}, refuses {inv['files'] - inv['intake_read']} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(inv['intake_refused'].items()))}).",
        "",
        "Modalities: " + ", ".join(f"{k} {v}" for k, v in sorted(inv["by_modality"].items())) + ".",
        "",
        "Body part the box assigns: "
        + ", ".join(f"{k} {v}" for k, v in sorted(inv["by_box_body_part"].items()))
        + ".",
        "",
        "Projection radiographs (CR/DX): " + ", ".join(inv["projection_radiographs"]) + ".",
        "",
        "| file | modality | body part / view (header) | box body part / view | intake | methods |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in report["inventory"]:
        if e["modality"] in ("CR", "DX", "DR") or e["box_body_part"] or e["methods_covering"]:
            lines.append(
                f"| {e['package']}:{e['file']} | {e['modality']} | {e['body_part_examined']} / "
                f"{e['view_position']} | {e['box_body_part']} / {e['box_view']} | {e['intake']} | "
                f"{', '.join(e['methods_covering'] + e['pending_methods_covering']) or 'none'} |"
            )
    covered = inv["covered_by_a_shipped_method"] + inv["covered_by_a_pending_method"]
    lines += [
        "",
        "**Covered by a method: "
        + (", ".join(covered) if covered else "none")
        + ".** No hand, hip, jaw or lateral spine film is among them, so no method was "
        "checked end to end (taps, gate, band) on a real image of its own body part.",
    ]
    for c in report["covered_files"]:
        lines += [
            "",
            f"{c['file']}: {c['reader']}. Quality usable: {c.get('quality_usable')} "
            f"({', '.join(c.get('quality_refusals') or [])}); six stand-in taps through the one "
            f"path: {c.get('stand_in_taps_through_measure')}; past the quality gate: "
            f"{c.get('stand_in_taps_if_usable')}.",
        ]
    lines += [
        "",
        "## Real bone no method covers: RG3 (distal tibia, AP, CR)",
        "",
        "MCI's edge finder called directly on the tibial diaphysis, taps placed by eye; the "
        "one path refuses it (`wrong_body_part`, EXTREMITY).",
        "",
        "| encoding | through measure() | direct | 20 jittered taps (5 %) |",
        "| --- | --- | --- | --- |",
    ]
    for name, e in report["rg3_tibia"].items():
        if e.get("status") == "missing":
            continue
        d = e["method_class_direct"]
        j = e["jittered_20"]
        direct = f"{d['value']:.3f}" if d["status"] == "measured" else d["code"]
        lines.append(
            f"| {name} | "
            f"{e['through_measure'].get('code', e['through_measure']['status'])} | {direct} | "
            f"{j['measured']}/20 measured, SD {j['sd']}, range {j['range']}, refused "
            f"{j['refused']} |"
        )
    knee = report.get("knee")
    lines += ["", "## Knee development set: the MCI edge finder on tibial and femoral shafts", ""]
    if knee is None:
        lines.append("Not run: the data directory is not on this machine.")
    else:
        a = knee["all"]
        lines += [
            f"{a['images']} images, a knee found in {a['images_with_a_knee_found']}; "
            f"{a['shafts_tapped']} shafts tapped by the rule in "
            f"{a['images_with_a_shaft_tapped']} images. "
            f"Measured {a['measured']['k']}/{a['measured']['n']} "
            f"({a['measured']['rate']}, 95 % CI {a['measured']['ci95']}); refused {a['refused']}.",
            "",
            "| group | shafts | measured (95 % CI) | refused | index median [IQR] | "
            "repeat: within-SD (CI) | ICC (CI) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        groups = (
            [("all", a)]
            + list(knee["by_bone"].items())
            + [(f"source {k}", v) for k, v in knee["by_source"].items()]
        )
        for name, g in groups:
            rep = g.get("repeatability")
            lines.append(
                f"| {name} | {g['shafts_tapped']} | {g['measured']['k']} "
                f"({g['measured']['ci95']}) | "
                f"{g['refused']} | {g.get('index_median', '-')} {g.get('index_iqr', '')} | "
                + (
                    f"{rep['within_sd']} ({rep['within_sd_ci95']}), n={rep['shafts']} | "
                    f"{rep['icc_a1']} ({rep['icc_a1_ci95']})"
                    if rep
                    else f"- (n={g['repeat_all_measured']}) | -"
                )
                + " |"
            )
        for name, g in (("all", a), ("tibia", knee["by_bone"]["tibia"])):
            long_, short = g[f"taps_at_least_{LONG_TAPS}W"], g[f"taps_under_{LONG_TAPS}W"]
            lines.append(
                f"\nBy tap length ({name}): taps >= {LONG_TAPS} W measured "
                f"{long_['k']}/{long_['n']} "
                f"(95 % CI {long_['ci95']}); shorter taps {short['k']}/{short['n']} "
                f"(95 % CI {short['ci95']}). MCI's edge finder accepts a bone at most 30 % of "
                "the tap length wide (a metacarpal's proportions); the short-tap refusals are "
                "consistent with that limit (a design limit, not a defect)."
            )
        v = knee["visual_check"]
        lines += [
            "",
            "Visual check of the sample (5 images per source, renders outside the repository):",
        ]
        if v.get("taps_right"):
            lines.append(
                f"taps on the intended shaft {v['taps_right']['k']}/{v['taps_right']['n']} "
                f"(95 % CI {v['taps_right']['ci95']})"
                + (
                    "; edges right on "
                    f"{v['edges_right_of_measured']['k']}/{v['edges_right_of_measured']['n']} "
                    f"measured shafts (95 % CI {v['edges_right_of_measured']['ci95']})"
                    if v.get("edges_right_of_measured")
                    else ""
                )
                + ("." if v["current"] else " (counts from an earlier run: re-check).")
            )
        else:
            lines.append("not recorded for this sample.")
        x = knee["exploratory_t_score"]
        if x:
            lines += [
                "",
                f"Exploratory only ({x['label']}): Spearman of the tibial index with the "
                "QUS T-score "
                f"{x['spearman_index_vs_t_score']} (95 % CI {x['spearman_index_vs_t_score_ci95']}, "
                f"{x['patients']} patients, {x['by_source']}); with age "
                f"{x['spearman_index_vs_age']}; "
                f"T-score with age {x['spearman_t_score_vs_age']}.",
            ]
    lines += ["", "## Findings", ""] + [f"- {n}" for n in report.get("findings", [])]
    lines += ["", "## What could not be checked", ""] + [f"- {n}" for n in report["not_checked"]]
    return "\n".join(lines) + "\n"


FINDINGS = [
    "Anatomy (fixed after this check was first run): a description's view pattern matched "
    "the start of any word, so ' PA' read 'PANCREAS' (pydicom-data explicit_VR-UN.dcm), "
    "'PATELLA' and 'PAROTID' as PA and ' AP' read 'APPENDIX' as AP; a pattern with a leading "
    "space now matches a whole word only (edgeosteo/anatomy.py _first_match).",
    "Gate: MethodCard.reads checks body part and view only, not modality: deid-data's "
    "ultrasound 'US CHEST WALL/SOFT TISSUE' passes the vertebrae gate (CHEST, no view); the "
    "quality gates refuse it (quality.wrong_modality), so the one path answers "
    "measurement.image_unusable: safe, but the method list offered for it names vertebrae.",
    "Header view contradicted by the image: deid-data's cat thorax is a lateral film whose "
    "ViewPosition says AP (series 'Thorax LAT'); the coded tag wins, so vertebrae is not "
    "offered (right for a cat; the same on a human film would need the user's choice).",
    "MCI's edge finder on real long bones: it needs the medulla brighter than the tissue "
    "either side (mci.py line 63) and a bone at most 30 % of the tap length wide (line 50); "
    "on RG3's tibia (thick leg, fibula beside it) every profile failed the first and the "
    "method refused edge_not_found, as designed (no number was guessed).",
]

NOT_CHECKED = [
    "Any method end to end on a real image of its own body part: the installed packages hold no "
    "hand, hip/pelvis, jaw/panoramic or lateral spine radiograph (the one chest film, RG1, is PA; "
    "the lateral thorax in deid-data is a cat, and its header says AP).",
    "MCI's accuracy on real bone: no reference cortical widths exist for these images; the knee "
    "and RG3 figures are about whether the edge finder measures, where its edges fall, "
    "and repeatability.",
    "Vertebral morphometry, CTI and MCW on real films: no lateral spine, hip or jaw film "
    "is on disk.",
    "Cervical spine: the only lateral spine film on disk (pydicom's dicomdirtests CR1, CSPINE "
    "LL) is a 16 x 16 thumbnail intake refuses, and no method reads CSPINE.",
    "The index's meaning on a tibia or femur: MCI's bands are for the second metacarpal; the "
    "knee figures test the edge finder and its repeatability on real bone, not a diagnosis.",
    "Run time: the knee part took about half an hour of wall time on 2 workers while other "
    "jobs loaded the machine (load average 6-12 on 2 cores); --visual-only re-writes the "
    "report from the written JSON without re-measuring.",
    "Millimetre scale on real films: the knee JPEGs have no pixel spacing (MCI is a "
    "ratio and needs none).",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knee-dir", type=Path, default=KNEE_DIR)
    parser.add_argument("--render", type=Path, default=RENDER_DIR)
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument(
        "--visual-only",
        action="store_true",
        help="re-apply VISUAL_CHECK to the written report (after looking at the renders)",
    )
    parser.add_argument(
        "--inventory-only",
        action="store_true",
        help="re-run the inventory of installed DICOMs (after an intake, anatomy or method "
        "change) and keep the written knee and RG3 figures",
    )
    args = parser.parse_args()
    if args.inventory_only:
        report = json.loads(REPORT.read_text(encoding="utf-8"))
        screener = Screener()
        entries = inventory(screener)
        report["methods_in_tree"] = [c.id for c in screener.methods]
        report["pending_methods"] = {k: list(v) for k, v in PENDING_METHODS.items()}
        report["inventory_summary"] = inventory_summary(entries)
        report["inventory"] = entries
        report["covered_files"] = covered_files(screener, entries)
        report["not_checked"], report["findings"] = NOT_CHECKED, FINDINGS
        REPORT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        SUMMARY.write_text(markdown(report), encoding="utf-8")
        return
    if args.visual_only:
        report = json.loads(REPORT.read_text(encoding="utf-8"))
        report["not_checked"], report["findings"] = NOT_CHECKED, FINDINGS
        if report.get("knee"):
            report["knee"]["visual_check"] = visual_check(report["knee"]["visual_check"]["sample"])
        REPORT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        SUMMARY.write_text(markdown(report), encoding="utf-8")
        print(SUMMARY.read_text(encoding="utf-8"))
        return
    globals()["KNEE_DIR"] = args.knee_dir
    render = None if args.no_render else args.render
    started = time.time()
    screener = Screener()
    entries = inventory(screener)
    report = {
        "command": COMMAND,
        "seed": SEED,
        "methods_in_tree": [c.id for c in screener.methods],
        "pending_methods": {k: list(v) for k, v in PENDING_METHODS.items()},
        "inventory_summary": inventory_summary(entries),
        "inventory": entries,
        "covered_files": covered_files(screener, entries),
        "rg3_tibia": rg3_tibia(screener, render),
        "knee": knee_check(render, min(args.workers, WORKERS)),
        "not_checked": NOT_CHECKED,
        "findings": FINDINGS,
    }
    report["seconds"] = round(time.time() - started, 1)
    REPORT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    SUMMARY.write_text(markdown(report), encoding="utf-8")
    print(SUMMARY.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
