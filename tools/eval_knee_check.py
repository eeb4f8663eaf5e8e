"""Measure the knee applicability check (edgeosteo.knee_check) on real images.

Every file in the pydicom-data and deid-data packages that intake reads is screened as if the
body part were KNEE; none of them is a knee (each is classified below by its DICOM
BodyPartExamined / descriptions and by looking at it), so every one must be refused. On the
knee development films the share still accepted is reported, per source.

    python tools/eval_knee_check.py [--knee-dir ../shared/data/knee]

writes tools/reports/knee_check.json. Deterministic; timings vary with the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgeosteo import knee_check
from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image

REPO = Path(__file__).resolve().parents[1]
SKIP_SUFFIXES = {".py", ".pyc", ".md", ".txt"}

# What each readable public image shows, by looking at it (DICOM tags where present agree).
# None of them is a knee radiograph.
CONTENT = {
    "693_": "CT axial slice (head)",
    "JPEG-LL": "NM whole-body bone scan, a narrow flat strip",
    "JPEG2000_UNC": "NM whole-body bone scan, a narrow flat strip",
    "JPGLosslessP14SV1": "echocardiogram (ultrasound)",
    "MR-SIEMENS": "MR abdomen (liver)",
    "MR2_": "MR shoulder",
    "OBXXXX1A": "obstetric ultrasound",
    "RG1_": "CR chest PA",
    "RG3_": "CR lower leg / ankle (distal tibia and fibula, no knee joint)",
    "SC_": "100x100 colour bar test pattern",
    "US1_": "ultrasound (lymph node)",
    "bad_sequence": "CT axial slice (neck/vertebra)",
    "color-p": "echocardiogram (colour ultrasound)",
    "explicit_VR-UN": "CT axial slice, low contrast (tags: pancreas)",
    "gdcm-US-ALOKA": "ultrasound (pelvis)",
    "mlut_18": "SMPTE test pattern",
    "vlut_04": "SMPTE test pattern",
    "cat": "DX lateral thorax of a cat",
    "image": "photographs of cookies (dicom-cookies)",
    "ctbrain": "line drawing of a face (tags say CT head; a deid test file)",
    "GREYSCALE_IMAGE": "ultrasound (tags say kidney)",
    "RGB_IMAGE": "ultrasound (liver view; tags say chest wall)",
}


def public_roots() -> dict[str, Path]:
    import deid_data

    site = Path(deid_data.__file__).resolve().parents[1]
    return {"pydicom-data": site / "data_store" / "data", "deid-data": site / "deid_data" / "data"}


def public_files() -> list[tuple[str, Path]]:
    out = []
    for source, root in public_roots().items():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix.lower() not in SKIP_SUFFIXES and "__pycache__" not in path.parts:
                out.append((source, path))
    return out


def dicom_tags(path: Path) -> dict[str, str]:
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # a tag we cannot read is just absent
        return {}
    keys = ("Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription")
    return {k: str(ds.get(k)) for k in keys if ds.get(k) not in (None, "")}


def content_of(path: Path) -> str:
    for prefix, what in CONTENT.items():
        if path.name.startswith(prefix):
            return what
    return "UNCLASSIFIED"


def check(pixels: np.ndarray) -> tuple[knee_check.KneeCheck, float]:
    started = time.perf_counter()
    verdict = knee_check.knee_plausibility(pixels)
    return verdict, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knee-dir", type=Path, default=REPO.parent / "shared" / "data" / "knee")
    parser.add_argument("--out", type=Path, default=REPO / "tools" / "reports" / "knee_check.json")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    times: list[float] = []

    public, unread = [], []
    for source, path in public_files():
        name = str(path.relative_to(public_roots()[source]))
        try:
            pixels = read_image(path).radiograph.pixels
        except IntakeError as exc:
            unread.append({"source": source, "file": name, "intake": exc.code})
            continue
        verdict, seconds = check(pixels)
        times.append(seconds)
        public.append(
            {
                "source": source,
                "file": name,
                "tags": dicom_tags(path),
                "content": content_of(path),
                "is_knee": False,
                "accepted_as_knee": verdict.plausible,
                "failed": list(verdict.failed),
                "proposals_passing": verdict.knees,
            }
        )
        print(f"{source:13s} {name:45s} {'ACCEPTED' if verdict.plausible else 'refused'}")

    films = []
    with (args.knee_dir / "clinical.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        pixels = read_image(args.knee_dir / "images" / row["image"]).radiograph.pixels
        verdict, seconds = check(pixels)
        times.append(seconds)
        films.append(
            {
                "image": row["image"],
                "source": row["source"],
                "accepted": verdict.plausible,
                "knees": verdict.knees,
                "failed": list(verdict.failed),
            }
        )
        if not verdict.plausible:
            print(f"knee film refused: {row['image']} {verdict.detail}")

    by_source: dict[str, dict[str, int]] = {}
    for source in ("pydicom-data", "deid-data"):
        items = [p for p in public if p["source"] == source]
        by_source[source] = {
            "readable": len(items),
            "unreadable_by_intake": sum(u["source"] == source for u in unread),
            "accepted_as_knee": sum(p["accepted_as_knee"] for p in items),
        }
    knee_by_source = {
        s: {
            "films": sum(f["source"] == s for f in films),
            "accepted": sum(f["accepted"] for f in films if f["source"] == s),
        }
        for s in sorted({f["source"] for f in films})
    }
    accepted = sum(f["accepted"] for f in films)
    report = {
        "check": "edgeosteo.knee_check.knee_plausibility",
        "thresholds": {
            k: getattr(knee_check, k)
            for k in dir(knee_check)
            if k.isupper() and k != "NOT_KNEE" and not k.startswith("_")
        },
        "non_knee": {
            "images": len(public),
            "accepted_as_knee": sum(p["accepted_as_knee"] for p in public),
            "by_source": by_source,
        },
        "knee_films": {
            "films": len(films),
            "accepted": accepted,
            "share_accepted": round(accepted / len(films), 4) if films else None,
            "by_source": knee_by_source,
            "refused": [f for f in films if not f["accepted"]],
        },
        "seconds_per_image": {
            "median": round(float(np.median(times)), 4),
            "p95": round(float(np.percentile(times, 95)), 4),
            "max": round(float(np.max(times)), 4),
        },
        "eval_seconds": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "public_images": public,
        "public_unreadable": unread,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"non-knee accepted {report['non_knee']['accepted_as_knee']}/{len(public)}; "
        f"knee films accepted {accepted}/{len(films)}; {report['eval_seconds']} s"
    )
    return 0 if report["non_knee"]["accepted_as_knee"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
