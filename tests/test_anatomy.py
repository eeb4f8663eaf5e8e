"""Body part and view from the image's own header: the one table, and the path's refusals."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

import model_factory
from edgeosteo.anatomy import choose_body_part, from_header
from edgeosteo.config import AnatomySettings, load_settings
from edgeosteo.screening import Screener

TABLE = AnatomySettings()


@pytest.mark.parametrize(
    ("description", "part", "view"),
    [
        ("膝关节正位", "KNEE", "AP"),
        ("双膝负重位", "KNEE", "AP"),
        ("左膝关节侧位", "KNEE", "LATERAL"),
        ("腰椎侧位", "LSPINE", "LATERAL"),
        ("胸腰段侧位", "TLSPINE", "LATERAL"),
        ("胸椎正位", "TSPINE", "AP"),
        ("胸部正位", "CHEST", "PA"),
        ("骨盆正位", "HIP", "AP"),
        ("左手正位", "HAND", "PA"),
        ("全景片", "JAW", "PANORAMIC"),
        ("KNEE AP STANDING", "KNEE", "AP"),
        ("Tibial plateau", None, None),  # "PLATEAU" holds "LAT": no lateral view from it
        # a view is a word, not the start of one (found on pydicom-data's files)
        ("Pancreas", None, None),
        ("KNEE PATELLA", "KNEE", None),
        ("CT APPENDIX", None, None),
        ("CHEST PA/LAT", "CHEST", "PA"),
        ("HAND PA", "HAND", "PA"),
    ],
)
def test_console_descriptions_map_to_a_body_part_and_view(description, part, view):
    anatomy = from_header(None, None, (description,), TABLE)
    assert (anatomy.body_part, anatomy.view) == (part, view)
    if part:
        assert anatomy.body_part_source == "description"


def test_coded_tags_win_and_an_unknown_code_stands_for_itself():
    anatomy = from_header("pelvis", "ll", ("膝关节正位",), TABLE)
    assert (anatomy.body_part, anatomy.view) == ("HIP", "LATERAL")
    assert anatomy.body_part_source == "BodyPartExamined"
    # EXTREMITY could be any limb: it is not taken for a knee
    assert from_header("EXTREMITY", None, (), TABLE).body_part == "EXTREMITY"


def test_a_choice_against_the_header_needs_confirmation():
    header = from_header("CHEST", "PA", (), TABLE)
    against = choose_body_part("knee", False, header, TABLE)
    assert against.conflict and against.refusal().code == "image.wrong_body_part"
    confirmed = choose_body_part("knee", True, header, TABLE)
    assert not confirmed.conflict and confirmed.body_part == "KNEE"
    assert confirmed.to_dict()["header_body_part"] == "CHEST"
    automatic = choose_body_part(None, False, header, TABLE)
    assert automatic.body_part == "CHEST" and automatic.refusal() is None


def _every_dicom(*folders: Path) -> list[Path]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            if "PixelData" in ds or (ds.get("Rows") and ds.get("Columns")):
                found.append(path)
    return found


def test_no_knee_model_runs_on_any_non_knee_dicom_screened_as_knee(
    tmp_path, pydicom_data_dir, deid_data_dir
):
    """Every image in pydicom-data and deid-data, screened with body part KNEE (as the CLI's
    --body-part KNEE or the page's old default did): none is a knee, none runs a knee image
    model, and each says why."""
    models = model_factory.build_models_dir(tmp_path / "models")
    screener = Screener(load_settings(data_dir=tmp_path / "d", environ={}, models_dir=str(models)))
    files = _every_dicom(pydicom_data_dir, deid_data_dir)
    assert len(files) > 40
    ran = []
    for path in files:
        result = screener.screen(path, {"age_years": 70, "sex": "female"}, body_part="KNEE")
        if any(f.kind != "clinical" for f in result.findings.results):
            ran.append(path.name)
            continue
        codes = [u.code for u in result.findings.unavailable if u.kind != "clinical"]
        assert codes, path.name
    assert ran == []
