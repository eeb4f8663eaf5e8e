"""The committed real-image report still describes the DICOMs installed here: the same files,
the same intake outcome, the same body part and the same methods covering each. A new
package version, an intake change or an anatomy-table change that alters any of it fails
here until tools/check_real_images.py is re-run (and its covered files looked at)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import check_real_images as check  # noqa: E402

from edgeosteo.screening import Screener  # noqa: E402

KEYS = (
    "package",
    "file",
    "sha256",
    "modality",
    "body_part_examined",
    "view_position",
    "intake",
    "box_body_part",
    "box_view",
    "methods_covering",
    "pending_methods_covering",
)


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(check.REPORT.read_text(encoding="utf-8"))


def _key(entry: dict) -> tuple:
    return tuple(json.dumps(entry[k]) for k in KEYS)


def test_inventory_matches_the_committed_report(report):
    fresh = check.inventory(Screener())
    assert sorted(map(_key, fresh)) == sorted(map(_key, report["inventory"]))
    assert check.inventory_summary(fresh) == report["inventory_summary"]


def test_every_covered_file_was_looked_at(report):
    covered = report["inventory_summary"]["covered_by_a_shipped_method"]
    assert sorted(covered) == sorted(check.COVERED_READER_NOTES)
    for entry in report["covered_files"]:
        assert not entry["reader"].startswith("NOT LOOKED AT"), entry["file"]


def test_no_per_image_knee_data_in_the_report(report):
    """The knee set's terms: aggregate figures only, never an image id or per-image value."""
    knee = report.get("knee")
    if knee is None:
        pytest.skip("the report was written without the knee set")
    text = json.dumps(knee)
    for marker in ('"N', '"OP', '"OS', ".jpg", ".JPEG", '"repeats": [', '"index"', '"value"'):
        assert marker not in text, marker
