"""Measure the photo-or-digital guess (edgeosteo.intake.capture) on files as uploaded.

Photos: simulated phone photos (tools/photo_sim.py, every condition, fixed seeds) of the
knee development films, as the phone writes them (no EXIF, like photo_sim's and messaging
apps' JPEGs), and, as a harder extra, the good ones turned gray by an editor. Radiographs:
the knee development files read as they are, and every readable DICOM of pydicom-data and
deid-data, as the DICOM file and as PNG (8 and 16 bit), TIFF and JPEG (gray and RGB)
exports of its pixels.

The thresholds are fitted twice on half the knee films (the films behind the photos and
the radiographs themselves, split by file) and judged on the other half; the report gives
both folds and the shipped thresholds (config.CaptureThresholds) on everything.

    python tools/eval_capture.py [--knee-dir ../shared/data/knee] [--per-condition 49]

writes tools/reports/capture.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Mapping, Sequence
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from edgeosteo.config import CaptureThresholds
from edgeosteo.intake import read_image
from edgeosteo.intake.capture import guess_capture, judge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_sim import CONDITIONS, load_source, simulate

REPORT = Path(__file__).resolve().parent / "reports" / "capture.json"
DEFAULT_KNEE = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee"
SEED = 31000
Item = dict[str, object]


def packaged_dicoms() -> list[Path]:
    import deid_data

    site = Path(deid_data.__file__).resolve().parents[1]
    roots = [site / "data_store" / "data", site / "deid_data" / "data"]
    return sorted(p for root in roots for p in root.rglob("*.dcm"))


def exports(pixels: np.ndarray) -> dict[str, bytes]:
    """A radiograph's pixels (gray float, 0-1) written as a PACS viewer or converter might."""
    u8 = np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    u16 = np.clip(pixels * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    rgb = cv2.merge([u8, u8, u8])
    out = {}
    for name, image, ext, params in (
        ("png8", u8, ".png", []),
        ("png16", u16, ".png", []),
        ("tiff8", u8, ".tif", []),
        ("jpeg_gray_q90", u8, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
        ("jpeg_rgb_q85", rgb, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 85]),
        ("png_rgb", rgb, ".png", []),
    ):
        ok, buf = cv2.imencode(ext, image, params)
        if ok:
            out[name] = buf.tobytes()
    return out


def _measure(data: bytes) -> dict[str, float]:
    return dict(guess_capture(data).measures)


@functools.lru_cache(maxsize=8)
def _source(path: str) -> np.ndarray:
    return load_source(path)


def _photo_task(task: tuple[str, int, str, bool]) -> Item:
    path, seed, condition, gray = task
    photo = simulate(_source(path), seed, condition, Path(path).name)
    data = photo.jpeg
    if gray:  # an editor's "black and white": gray JPEG, no EXIF
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    start = time.perf_counter()
    measures = _measure(data)
    return {
        "truth": "photo",
        "group": "photo_gray" if gray else f"photo_{condition}",
        "name": f"{Path(path).name}@{seed}",
        "source": Path(path).name,
        "seconds": time.perf_counter() - start,
        "measures": measures,
    }


def _file_task(task: tuple[str, str, str]) -> list[Item]:
    group, name, path = task
    data = Path(path).read_bytes()
    start = time.perf_counter()
    measures = _measure(data)
    items: list[Item] = [
        {
            "truth": "digital",
            "group": group,
            "name": name,
            "source": name,
            "seconds": time.perf_counter() - start,
            "measures": measures,
        }
    ]
    if group == "packaged_dicom":
        try:
            pixels = read_image(data).radiograph.pixels
        except Exception:
            return items
        for kind, blob in exports(pixels).items():
            start = time.perf_counter()
            measures = _measure(blob)
            items.append(
                {
                    "truth": "digital",
                    "group": "packaged_raster",
                    "name": f"{name}:{kind}",
                    "source": name,
                    "seconds": time.perf_counter() - start,
                    "measures": measures,
                }
            )
    return items


def collect(knee_dir: Path, per_condition: int, n_gray: int, workers: int) -> list[Item]:
    knees = sorted((knee_dir / "images").iterdir())
    photo_tasks = []
    for c_index, condition in enumerate(CONDITIONS):
        for i in range(per_condition):
            k = (i * 7919 + c_index * 31) % len(knees)
            photo_tasks.append((str(knees[k]), SEED + 1000 * c_index + i, condition, False))
    for i in range(n_gray):
        k = (i * 7919 + 17) % len(knees)
        photo_tasks.append((str(knees[k]), SEED + 9000 + i, "good", True))
    photo_tasks.sort()  # a worker keeps the few sources it has loaded
    file_tasks = [("knee", p.name, str(p)) for p in knees]
    dicoms = packaged_dicoms()
    for p in dicoms:
        file_tasks.append(("packaged_dicom", f"{p.parent.name}/{p.name}", str(p)))
    with Pool(workers) as pool:
        photos = pool.map(_photo_task, photo_tasks, chunksize=4)
        files = pool.map(_file_task, file_tasks, chunksize=2)
    # folds: the knee films by file (a photo goes with the film it shows), the packaged
    # DICOMs by file (a raster export goes with its DICOM)
    fold = {p.name: i % 2 for i, p in enumerate(knees)}
    fold.update({f"{p.parent.name}/{p.name}": i % 2 for i, p in enumerate(dicoms)})
    items = photos + [item for batch in files for item in batch]
    for item in items:
        item["fold"] = fold.get(str(item["source"]), -1)
    return items


# --- fitting and judging --------------------------------------------------------------------


def _positive_floor(values: Sequence[float], negatives: Sequence[float], floor: float) -> float:
    """A threshold between the radiographs' largest value (at least ``floor``) and the
    photos' lower values: their geometric mean with the photos' 5th percentile."""
    top_negative = max([floor, *negatives])
    low_positive = float(np.percentile(values, 5)) if len(values) else top_negative * 4
    return float(np.sqrt(top_negative * max(low_positive, top_negative)))


# the conditions in which the film is visible (an overexposed photo's film is at the
# phone's white): the thresholds are fitted on these, and judged on every condition
FIT_GROUPS = tuple(f"photo_{c}" for c in CONDITIONS if c != "overexposed")


def fit(items: Sequence[Item]) -> CaptureThresholds:
    """Thresholds from the colour and film measures of labelled items."""
    pos = [i["measures"] for i in items if i["group"] in FIT_GROUPS]
    neg = [i["measures"] for i in items if i["truth"] == "digital"]
    base = CaptureThresholds()

    def vals(rows, key, where=lambda m: True):
        return [float(m.get(key, 0.0)) for m in rows if m.get("raster") and where(m)]

    def lit(m):
        return bool(m.get("film_found")) and m.get("rim_level", 0.0) >= base.rim_min_level

    # floors, whatever the sample: a gray export's chroma is exactly neutral, but a viewer
    # that tints or burns in a coloured label moves a few pixels (share) or the median by a
    # quantisation step; a radiograph's own light surround may step up by 0.15 (knee OP*)
    median = _positive_floor(vals(pos, "chroma_median"), vals(neg, "chroma_median"), 0.25)
    share = _positive_floor(vals(pos, "chroma_share"), vals(neg, "chroma_share"), 0.02)
    rim = _positive_floor(vals(pos, "rim_step", lit), vals(neg, "rim_step", lit), 0.2)
    return dataclasses.replace(
        base,
        chroma_median_photo=round(median, 2),
        chroma_share_photo=round(share, 3),
        rim_step_photo=round(rim, 2),
    )


def judge_all(items: Sequence[Item], t: CaptureThresholds) -> dict[str, object]:
    groups: dict[str, dict[str, object]] = {}
    for item in items:
        guess = judge(item["measures"], t)  # type: ignore[arg-type]
        g = groups.setdefault(
            str(item["group"]), {"truth": item["truth"], "n": 0, "photo": 0, "cues": {}}
        )
        g["n"] += 1  # type: ignore[operator]
        g["photo"] += int(guess.is_photo)  # type: ignore[operator]
        cues = g["cues"]
        for cue in guess.evidence:
            cues[cue] = cues.get(cue, 0) + 1  # type: ignore[union-attr]
        wrong = guess.is_photo != (item["truth"] == "photo")
        if wrong:
            g.setdefault("wrong", []).append(  # type: ignore[union-attr]
                {"name": item["name"], "score": round(guess.score, 3)}
            )
    main_pos = [g for k, g in groups.items() if g["truth"] == "photo" and k != "photo_gray"]
    knee = groups.get("knee", {"n": 0, "photo": 0})
    packaged = [g for k, g in groups.items() if k.startswith("packaged")]
    n_pos = sum(int(g["n"]) for g in main_pos)
    hit = sum(int(g["photo"]) for g in main_pos)
    return {
        "photos": n_pos,
        "photos_recognised": hit,
        "photo_recall": round(hit / max(1, n_pos), 4),
        "knee_radiographs": knee["n"],
        "knee_taken_for_photos": knee["photo"],
        "knee_false_photo_rate": round(int(knee["photo"]) / max(1, int(knee["n"])), 4),
        "packaged_radiographs": sum(int(g["n"]) for g in packaged),
        "packaged_taken_for_photos": sum(int(g["photo"]) for g in packaged),
        "groups": groups,
    }


def summary(items: Sequence[Item], keys: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Percentiles (0, 5, 50, 95, 100) of each measure per group."""
    out: dict[str, dict[str, list[float]]] = {}
    for group in sorted({str(i["group"]) for i in items}):
        rows = [i["measures"] for i in items if i["group"] == group]
        out[group] = {
            key: [
                round(float(v), 4)
                for v in np.percentile([float(m.get(key, 0.0)) for m in rows], [0, 5, 50, 95, 100])
            ]
            for key in keys
        }
    return out


def report(items: Sequence[Item], seconds: float, args: argparse.Namespace) -> Mapping[str, object]:
    folds = []
    for held in (0, 1):
        train = [i for i in items if i["fold"] == 1 - held]
        test = [i for i in items if i["fold"] == held]
        t = fit(train)
        folds.append(
            {
                "fitted_on_fold": 1 - held,
                "judged_on_fold": held,
                "thresholds": dataclasses.asdict(t),
                "train": _headline(judge_all(train, t)),
                "held_out": _headline(judge_all(test, t)),
            }
        )
    shipped = CaptureThresholds()
    keys = (
        "chroma_median",
        "chroma_share",
        "chroma_fine",
        "colour_fringe",
        "jpeg_subsampling",
        "film_found",
        "film_tilt_deg",
        "rim_step",
        "rim_level",
    )
    timing = [float(i["seconds"]) for i in items if i["measures"].get("raster")]
    return {
        "what": "phone photo or digital radiograph, from the file as uploaded",
        "settings": {
            "per_condition": args.per_condition,
            "gray_photos": args.gray,
            "seed": SEED,
            "conditions": list(CONDITIONS),
        },
        "shipped_thresholds": dataclasses.asdict(shipped),
        "shipped": judge_all(items, shipped),
        "fitted_on_all": dataclasses.asdict(fit(items)),
        "cross_validation": folds,
        "measures": summary(items, keys),
        "seconds_per_file": {
            "median": round(float(np.median(timing)), 3),
            "max": round(float(np.max(timing)), 3),
        },
        "eval_seconds": round(seconds, 1),
    }


def _headline(result: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k != "groups"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knee-dir", type=Path, default=DEFAULT_KNEE)
    parser.add_argument("--per-condition", type=int, default=49)
    parser.add_argument("--gray", type=int, default=49, help="good photos turned gray")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--items", type=Path, help="also write every item's measures here")
    args = parser.parse_args()
    if not (args.knee_dir / "images").is_dir():
        raise SystemExit(f"{args.knee_dir} has no images/ (the knee development set)")
    start = time.perf_counter()
    items = collect(args.knee_dir, args.per_condition, args.gray, args.workers)
    result = report(items, time.perf_counter() - start, args)
    if args.items:
        args.items.write_text(json.dumps(items))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    shipped = result["shipped"]
    print(json.dumps(_headline(shipped), indent=1))  # type: ignore[arg-type]
    for g, v in shipped["groups"].items():  # type: ignore[index]
        print(f"{g:18s} {v['photo']}/{v['n']} taken for photos  cues {v['cues']}")


if __name__ == "__main__":
    main()
