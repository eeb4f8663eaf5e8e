from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeosteo.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def _site_data(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} not installed"
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    # pydicom-data installs its files under site-packages/data_store/data
    import deid_data

    site = Path(deid_data.__file__).resolve().parents[1]
    path = site / "data_store" / "data"
    assert path.is_dir(), "pydicom-data is a test dependency"
    return path


@pytest.fixture(scope="session")
def deid_data_dir() -> Path:
    return _site_data("deid_data", "data")


def shared_knee_dir() -> Path | None:
    root = os.environ.get("EDGEOSTEO_SHARED_DATA")
    base = Path(root) if root else REPO.parent / "shared" / "data"
    knee = base / "knee" if (base / "knee").is_dir() else base
    return knee if (knee / "clinical.csv").is_file() else None


@pytest.fixture(scope="session")
def knee_dir() -> Path:
    path = shared_knee_dir()
    if path is None:
        pytest.skip("../shared/data/knee is not present")
    return path


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        data_dir=tmp_path / "data", environ={}, models_dir=str(tmp_path / "no-models")
    )


RADIOGRAPH_DICOMS = (
    "RG1_UNCR.dcm",
    "RG1_J2KR.dcm",
    "RG1_J2KI.dcm",
    "RG3_UNCR.dcm",
    "RG3_J2KR.dcm",
    "RG3_UNCI.dcm",
    "RG3_J2KI.dcm",
    "RG1_UNCI.dcm",
)
