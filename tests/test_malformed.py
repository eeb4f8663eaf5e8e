from __future__ import annotations

import pytest

from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image
from edgeosteo.screening import Screener
from malformed import corpus

SEEDS = ("vlut_04.dcm", "JPEG2000_UNC.dcm", "RG3_J2KI.dcm", "OBXXXX1A_rle.dcm", "JPEG-LL.dcm")


@pytest.fixture(scope="module")
def malformed(pydicom_data_dir):
    seeds = {f"dcm-{name}": (pydicom_data_dir / name).read_bytes() for name in SEEDS}
    return corpus(seeds)


def test_corpus_is_large_enough(malformed):
    assert len(malformed) >= 200


def test_malformed_files_yield_typed_errors_only(malformed):
    unexpected = []
    codes = set()
    for name, data in malformed:
        try:
            read_image(data)
        except IntakeError as exc:
            codes.add(exc.code)
        except Exception as exc:
            unexpected.append(f"{name}: {type(exc).__name__}: {exc}")
    assert unexpected == []
    # the corpus exercises the main refusal paths, not one catch-all
    assert {
        "intake.empty_file",
        "intake.truncated",
        "intake.not_an_image",
        "intake.too_large",
        "intake.multi_frame",
    } <= codes


def test_a_batch_never_stops_on_a_bad_file(malformed, settings):
    screener = Screener(settings)
    results = [screener.screen(data) for _, data in malformed[:60]]
    assert len(results) == 60
    refused = [r for r in results if r.intake_error]
    assert refused and all(r.intake_error["code"].startswith("intake.") for r in refused)
