from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from edgeosteo.config import load_settings
from edgeosteo.warnings_filter import install_warning_filters

REPO = Path(__file__).resolve().parents[1]


def _site_data(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} not installed"
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


@pytest.fixture(autouse=True)
def _decoder_warnings_ignored():
    """pytest restores its own warning filters after collection and around each test, which
    drops those edgeosteo installs when it is imported: put them back, as the server has
    them (tests/test_warnings_filter.py checks the import in a fresh process)."""
    install_warning_filters()


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


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN_PASSWORD = "correct horse battery"
TECH_PASSWORD = "technician-pass"


def csrf_token(client, path="/login") -> str:
    match = CSRF_FIELD.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def upload_facts(client, data: bytes, name: str) -> dict:
    """What the page's file check says of a file before screening it."""
    import io

    token = csrf_token(client, "/screenings/new")
    return client.post(
        "/screenings/upload-facts",
        data={"csrf_token": token, "image": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    ).get_json()


@pytest.fixture
def web_settings(tmp_path):
    return load_settings(data_dir=tmp_path / "box", environ={})


@pytest.fixture
def box(web_settings):
    from edgeosteo.app import build

    return build(web_settings)


@pytest.fixture
def app(box):
    from edgeosteo.web.auth import ensure_admin, hash_password

    application = box.web
    store = box.store
    ensure_admin(store, {"EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    store.create_user("tech", "technician", hash_password(TECH_PASSWORD))
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def log_in(client, username="admin", password=ADMIN_PASSWORD):
    token = csrf_token(client)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.fixture
def admin_client(client):
    assert log_in(client).status_code == 302
    return client


@pytest.fixture
def tech_client(app):
    client = app.test_client()
    assert log_in(client, "tech", TECH_PASSWORD).status_code == 302
    return client
