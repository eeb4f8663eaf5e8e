"""The reference hub on SQLite, and on PostgreSQL when one answers (tools/setup-tests starts
Debian's; EDGEOSTEO_TEST_POSTGRES_URL points elsewhere)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from loopback import LoopbackServer
from sqlalchemy import create_engine, text
from test_sync import SITE, box_settings

from edgeosteo.anonymise import (
    AgeGroup,
    AnonymisedRecord,
    InstrumentScore,
    MeasurementSummary,
    ModelOutput,
    VertebraGrade,
)
from edgeosteo.config import HubSettings
from edgeosteo.fhir import bundle_bytes, transaction_bundle
from edgeosteo.hub import create_hub_app
from edgeosteo.hub.store import HubStore, age_band

DEVICE = "box-1"
POSTGRES_URL = os.environ.get(
    "EDGEOSTEO_TEST_POSTGRES_URL",
    "postgresql+psycopg://edgeosteo:edgeosteo@127.0.0.1:5432/edgeosteo_test",
)


def _postgres_schema_url() -> Iterator[str]:
    """A fresh schema per test in the test database, dropped afterwards."""
    try:
        admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with admin.begin() as connection:
            schema = f"hub_{uuid.uuid4().hex[:12]}"
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # no server, no driver, no database: SQLite only
        pytest.skip(f"PostgreSQL not available: {type(exc).__name__}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[HubStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
        hub_store = HubStore(url)
        yield hub_store
        hub_store.close()
        return
    schema_urls = _postgres_schema_url()
    url = next(schema_urls)
    hub_store = HubStore(url)
    assert hub_store.dialect == "postgresql"
    yield hub_store
    hub_store.close()
    next(schema_urls, None)


@pytest.fixture
def app(store, tmp_path):
    return create_hub_app(HubSettings(), tmp_path, store)


@pytest.fixture
def device_token(store) -> str:
    return store.add_credential("device", SITE, DEVICE)


def record(
    *,
    sex: str | None = "female",
    age: int | None = 67,
    category: str = "refer",
    site: str = SITE,
    device: str = DEVICE,
    capture_time: str = "2026-03-04T09:30:00+00:00",
    synchronised: bool = True,
    models: tuple[tuple[str, str], ...] = (("knee-clinical", "1.0.0"),),
    quality: str | None = "pass",
    quality_codes: tuple[str, ...] = (),
    intake_error: str | None = None,
    patient: str | None = None,
    revises: AnonymisedRecord | None = None,
    measurements: tuple[MeasurementSummary, ...] = (),
) -> AnonymisedRecord:
    """A record; with ``revises``, the next revision of that record's case."""
    record_uuid = str(uuid.uuid4())
    if revises is not None:
        patient = revises.patient_key
    return AnonymisedRecord(
        record_uuid=record_uuid,
        site_id=site,
        device_id=device,
        patient_key=patient or uuid.uuid4().hex * 2,
        patient_key_source="local_id",
        capture_time=capture_time,
        boot_id="9b2c4f0e-0000-4000-8000-000000000001",
        monotonic_ns=123_456_789_012_345,
        clock_synchronised=synchronised,
        edgeosteo_version="0.1.0",
        schema_version="1.0",
        age=AgeGroup.of(age, 90),
        sex=sex,
        body_part="KNEE",
        modality="CR",
        view_position="AP",
        intake_error_code=intake_error,
        quality_verdict=quality,
        quality_codes=quality_codes,
        instruments=(InstrumentScore("osta", -3.0, "intermediate", "clinical.osta_intermediate"),),
        models=tuple(
            ModelOutput(m, v, "clinical", True, 0.9, 0.6, -2.6, 0.4, "onnxruntime", "fp32")
            for m, v in models
        ),
        primary_model_id=models[0][0] if models else None,
        dxa_indicated=True,
        indications_met=("clinical.indication.age",),
        referral_category=category,
        referral_severity=4,
        referral_reason_codes=("clinical.indication.age",),
        case_record=revises.case_record if revises else record_uuid,
        revision=revises.revision + 1 if revises else 1,
        supersedes=revises.record_uuid if revises else None,
        measurements=measurements,
    )


def post(client, bundle: dict, token: str | None, content_type="application/fhir+json"):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/fhir", data=bundle_bytes(bundle), headers=headers)


def test_a_replayed_batch_creates_nothing_new(app, store, device_token):
    client = app.test_client()
    batch = [record(), record(sex="male", age=72), record(age=95)]
    bundle = transaction_bundle(batch)
    first = post(client, bundle, device_token)
    assert first.status_code == 200
    answers = [e["response"]["status"] for e in first.get_json()["entry"]]
    assert len(answers) == len(bundle["entry"]) and set(answers) == {"201 Created"}
    again = post(client, transaction_bundle(batch), device_token)
    assert again.status_code == 200
    assert {e["response"]["status"] for e in again.get_json()["entry"]} == {"200 OK"}
    assert sorted(store.record_uuids()) == sorted(r.record_uuid for r in batch)
    assert store.delivery_totals() == (2, 3, 3)
    stored = store.get_record(batch[2].record_uuid)
    assert (stored["age_years"], stored["age_at_least"]) == (90, True)
    kinds = [r["resourceType"] for r in json.loads(stored["resources"])]
    assert kinds[0] == "Patient" and kinds[-1] == "RiskAssessment"


def _deliver_at_once(store, tmp_path, device_token, bodies: list[bytes]) -> list[int]:
    """POST every body to a real hub on loopback, all released together; the statuses."""
    server = LoopbackServer(create_hub_app(HubSettings(), tmp_path, store), threads=len(bodies))
    url = f"{server.url}/fhir"
    start = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def deliver(body: bytes) -> None:
        start.wait(10)
        response = requests.post(
            url,
            data=body,
            headers={"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"},
            timeout=60,
        )
        statuses.append(response.status_code)

    senders = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    server.close()
    return statuses


def test_concurrent_deliveries_of_one_batch_leave_one_copy(store, device_token, tmp_path):
    batch = [record() for _ in range(20)]
    body = bundle_bytes(transaction_bundle(batch))
    statuses = _deliver_at_once(store, tmp_path, device_token, [body] * 6)
    assert statuses == [200] * 6
    assert store.count_records() == 20
    deliveries, created, replayed = store.delivery_totals()
    assert (deliveries, created, replayed) == (6, 20, 100)


def test_devices_must_authenticate_and_tokens_are_stored_hashed(app, store, device_token):
    client = app.test_client()
    bundle = transaction_bundle([record()])
    assert post(client, bundle, None).status_code == 401
    assert post(client, bundle, "guess").status_code == 401
    viewer = store.add_credential("viewer", "*", "analyst")
    assert post(client, bundle, viewer).status_code == 401
    assert post(client, bundle, device_token, content_type="text/plain").status_code == 415
    with store.engine.connect() as connection:
        rows = [tuple(map(str, r)) for r in connection.execute(text("SELECT * FROM credentials"))]
    assert rows and not any(device_token in value for row in rows for value in row)
    assert store.revoke(SITE, DEVICE) == 1
    assert post(client, bundle, device_token).status_code == 401
    assert store.count_records() == 0


def test_a_device_cannot_send_another_devices_records(app, store, device_token):
    response = post(app.test_client(), transaction_bundle([record(device="box-9")]), device_token)
    assert response.status_code == 403
    assert "box-9" in response.get_json()["issue"][0]["diagnostics"]
    assert store.count_records() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(type="batch"), "transaction"),
        (lambda b: b["entry"][1]["request"].pop("ifNoneExist"), "ifNoneExist"),
        (lambda b: b.update(entry=[e for e in b["entry"] if "Risk" not in json.dumps(e)]), "Risk"),
        (lambda b: b.update(resourceType="Patient"), "Bundle"),
        (lambda b: b["entry"][-1]["resource"].pop("extension"), "captureTime"),
    ],
)
def test_malformed_bundles_are_refused_with_a_reason(app, store, device_token, change, message):
    bundle = transaction_bundle([record()])
    change(bundle)
    response = post(app.test_client(), bundle, device_token)
    assert response.status_code == 400
    assert message in response.get_json()["issue"][0]["diagnostics"]
    not_json = app.test_client().post(
        "/fhir",
        data=b"{not json",
        headers={"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert store.count_records() == 0


def test_an_image_is_stored_with_its_record(app, store, device_token):
    item = record()
    image = b"\0" * 128 + b"DICM" + bytes(range(256))
    response = post(
        app.test_client(), transaction_bundle([item], {item.record_uuid: image}), device_token
    )
    assert response.status_code == 200
    assert store.get_image(item.record_uuid) == image


def test_dashboard_counts_sites_weeks_referral_rates_models_and_refusals(app, store):
    other = store.add_credential("device", "site-b", "box-7")
    mine = store.add_credential("device", SITE, DEVICE)
    client = app.test_client()
    week_10 = "2026-03-04T09:30:00+00:00"  # ISO week 10
    week_11 = "2026-03-10T09:30:00+00:00"
    site_a = [
        record(sex="female", age=55, category="refer", capture_time=week_10),
        record(sex="female", age=58, category="routine", capture_time=week_10),
        record(sex="female", age=93, category="urgent", capture_time=week_11),
        record(sex="male", age=71, category="consider", capture_time=week_11),
        record(
            sex="male",
            age=None,
            category="retake",
            capture_time=week_11,
            quality="fail",
            quality_codes=("quality.blur",),
            models=(("knee-clinical", "1.0.0"), ("knee-image", "0.3.0")),
        ),
        record(
            sex=None,
            age=66,
            category="cannot_assess",
            capture_time="2020-01-01T00:00:00+00:00",
            synchronised=False,
            quality=None,
            intake_error="intake.not_dicom",
            models=(),
        ),
    ]
    site_b = [record(site="site-b", device="box-7", capture_time=week_10, category="refer", age=81)]
    assert post(client, transaction_bundle(site_a), mine).status_code == 200
    assert post(client, transaction_bundle(site_b), other).status_code == 200
    assert client.get("/dashboard.json").status_code == 401
    viewer = store.add_credential("viewer", "*", "analyst")
    data = client.get("/dashboard.json", headers={"Authorization": f"Bearer {viewer}"}).get_json()
    this_week = datetime.now(UTC).isocalendar()
    unsynchronised_week = f"{this_week[0]}-W{this_week[1]:02d}"
    assert data["total"] == 7
    per_site_week = {(r["site"], r["week"]): r["results"] for r in data["per_site_week"]}
    assert per_site_week == {
        (SITE, "2026-W10"): 2,
        (SITE, "2026-W11"): 3,
        (SITE, unsynchronised_week): 1,  # the box's clock was wrong: week of receipt
        ("site-b", "2026-W10"): 1,
    }
    rates = {
        (r["sex"], r["age_band"]): (r["referred"], r["results"]) for r in data["referral_rates"]
    }
    assert rates == {
        ("female", "50-59"): (1, 2),
        ("female", "90+"): (1, 1),
        ("female", "80-89"): (1, 1),
        ("male", "70-79"): (0, 1),
        ("male", "unknown"): (0, 1),
        ("unknown", "60-69"): (0, 1),
    }
    assert data["model_versions"] == {"knee-clinical@1.0.0": 6, "knee-image@0.3.0": 1}
    assert data["refusals"] == {"quality.blur": 1, "intake.not_dicom": 1}
    basic = base64.b64encode(f"analyst:{viewer}".encode()).decode()
    page = client.get("/", headers={"Authorization": f"Basic {basic}"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for expected in ("Results per site per week", "2026-W11", "knee-image@0.3.0", "quality.blur"):
        assert expected in html
    assert client.get("/").status_code == 401


@pytest.mark.parametrize(
    ("age", "at_least", "band"),
    [
        (None, False, "unknown"),
        (12, False, "0-49"),
        (50, False, "50-59"),
        (89, False, "80-89"),
        (90, True, "90+"),
        (90, False, "90+"),
    ],
)
def test_age_bands(age, at_least, band):
    assert age_band(age, at_least, HubSettings().age_band_edges) == band


def test_hub_commands_issue_a_working_device_token(tmp_path):
    from click.testing import CliRunner

    from edgeosteo.cli import main

    data_dir = tmp_path / "hub"
    args = ["--data-dir", str(data_dir)]
    issued = CliRunner().invoke(main, [*args, "hub", "add-device", SITE, DEVICE])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    store = HubStore(f"sqlite:///{data_dir / 'hub.sqlite3'}")
    credential = store.authenticate(token)
    assert (credential.role, credential.site_id, credential.device_id) == ("device", SITE, DEVICE)
    viewer = CliRunner().invoke(main, [*args, "hub", "add-viewer", "analyst"]).output.strip()
    assert store.authenticate(viewer).role == "viewer"
    command = [*args, "hub", "add-reporter", "county-dxa", "--site", SITE]
    reporter = CliRunner().invoke(main, command).output.strip()
    found = store.authenticate(reporter)
    assert (found.role, found.site_id, found.device_id) == ("reporter", SITE, "county-dxa")
    store.close()


def test_a_box_syncs_into_a_postgresql_or_sqlite_hub(store, device_token, tmp_path):
    from test_sync import add_cases, assert_exactly_once, drain, start_hub, stop_hub

    from edgeosteo.store import CaseStore

    hub = start_hub(tmp_path / "hubdata", database_url=store.url)
    settings = box_settings(tmp_path / "box", hub.url, device_token, batch_size=4)
    box = CaseStore(settings.data_dir)
    add_cases(box, 10)
    drain(settings, box)
    assert_exactly_once(box, hub, 10)
    stop_hub(hub)


# --- revisions ------------------------------------------------------------------------------


def _current(store: HubStore, first: AnonymisedRecord) -> list[tuple[int, str]]:
    history = store.case_history(SITE, DEVICE, first.case_record)
    return [(r["revision"], r["referral_category"]) for r in history if not r["superseded_by"]]


def test_revisions_arriving_out_of_order_end_on_the_highest(app, store, device_token):
    client = app.test_client()
    first = record(category="cannot_assess", age=None)
    second = record(category="routine", revises=first)
    third = record(category="refer", age=81, revises=second)
    other = record(category="routine", age=55)
    for delivered in ([third], [first, other], [second]):
        answer = post(client, transaction_bundle(delivered), device_token)
        assert answer.status_code == 200
        assert {e["response"]["status"] for e in answer.get_json()["entry"]} == {"201 Created"}
        assert _current(store, first) == [(3, "refer")]
    history = store.case_history(SITE, DEVICE, first.record_uuid)
    assert [r["record_uuid"] for r in history] == [u.record_uuid for u in (first, second, third)]
    assert [r["superseded_by"] for r in history] == [third.record_uuid, third.record_uuid, None]
    assert history[2]["supersedes"] == second.record_uuid
    # a replay of a revision changes nothing
    again = post(client, transaction_bundle([second, third]), device_token)
    assert {e["response"]["status"] for e in again.get_json()["entry"]} == {"200 OK"}
    assert store.count_records() == 4 and _current(store, first) == [(3, "refer")]
    viewer = store.add_credential("viewer", "*", "analyst")
    data = client.get("/dashboard.json", headers={"Authorization": f"Bearer {viewer}"}).get_json()
    assert (data["total"], data["superseded_records"]) == (2, 2)
    assert sum(r["results"] for r in data["per_site_week"]) == 2
    rates = {
        (r["sex"], r["age_band"]): (r["referred"], r["results"]) for r in data["referral_rates"]
    }
    assert rates == {("female", "80-89"): (1, 1), ("female", "50-59"): (0, 1)}
    assert data["model_versions"] == {"knee-clinical@1.0.0": 2}
    basic = base64.b64encode(f"analyst:{viewer}".encode()).decode()
    page = client.get("/", headers={"Authorization": f"Basic {basic}"}).get_data(as_text=True)
    assert "2 earlier" in page


def test_revisions_of_one_case_delivered_at_once_leave_one_current(store, device_token, tmp_path):
    chain = [record(category="cannot_assess")]
    for _ in range(5):
        chain.append(record(category="refer", revises=chain[-1]))
    bodies = [bundle_bytes(transaction_bundle([item])) for item in reversed(chain)]
    statuses = _deliver_at_once(store, tmp_path, device_token, bodies)
    assert statuses == [200] * len(chain)
    history = store.case_history(SITE, DEVICE, chain[0].record_uuid)
    assert [r["superseded_by"] is None for r in history] == [False] * 5 + [True]
    assert history[-1]["record_uuid"] == chain[-1].record_uuid


def test_a_revision_and_its_original_in_one_bundle(app, store, device_token):
    first = record(category="cannot_assess")
    second = record(category="refer", revises=first)
    answer = post(app.test_client(), transaction_bundle([second, first]), device_token)
    assert answer.status_code == 200
    assert _current(store, first) == [(2, "refer")]
    assert store.get_record(first.record_uuid)["superseded_by"] == second.record_uuid


def test_a_device_cannot_supersede_another_devices_case(app, store, device_token):
    other = store.add_credential("device", SITE, "box-2")
    theirs = record(device="box-2", category="refer")
    assert post(app.test_client(), transaction_bundle([theirs]), other).status_code == 200
    mine = record(category="routine", revises=theirs)
    assert post(app.test_client(), transaction_bundle([mine]), device_token).status_code == 200
    assert store.get_record(theirs.record_uuid)["superseded_by"] is None
    assert store.case_history(SITE, "box-2", theirs.record_uuid)[0]["referral_category"] == "refer"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda parts: parts.pop(), "supersedes"),  # revision 2 that names nothing
        (lambda parts: parts[1].update(valueInteger=0), "revision out of range"),
        (lambda parts: parts[1].update(valueInteger="2"), "integer"),
        (lambda parts: parts[0].update(valueString="a b"), "caseRecord"),
    ],
)
def test_malformed_revisions_are_refused(app, store, device_token, change, message):
    first = record()
    bundle = transaction_bundle([record(revises=first)])
    risk = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "RiskAssessment")
    (revision,) = [x for x in risk["resource"]["extension"] if x["url"].endswith("revision")]
    change(revision["extension"])
    response = post(app.test_client(), bundle, device_token)
    assert response.status_code == 400
    assert message in response.get_json()["issue"][0]["diagnostics"]
    assert store.count_records() == 0


def _old_hub_schema(url: str) -> None:
    """The hub's tables as released before revisions (no schema_version table)."""
    from sqlalchemy import (
        Boolean,
        Column,
        DateTime,
        Integer,
        LargeBinary,
        MetaData,
        String,
        Table,
        Text,
    )

    old = MetaData()
    Table(
        "credentials",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("role", String(16), nullable=False),
        Column("site_id", String(80), nullable=False),
        Column("device_id", String(80), nullable=False),
        Column("token_sha256", String(64), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True)),
    )
    old_records = Table(
        "records",
        old,
        Column("record_uuid", String(64), primary_key=True),
        Column("site_id", String(80), nullable=False, index=True),
        Column("device_id", String(80), nullable=False),
        Column("patient_key", String(64), nullable=False, index=True),
        Column("capture_time", String(40), nullable=False),
        Column("week", String(10), nullable=False, index=True),
        Column("clock_synchronised", Boolean, nullable=False),
        Column("sex", String(8)),
        Column("age_years", Integer),
        Column("age_at_least", Boolean, nullable=False),
        Column("referral_category", String(40)),
        Column("quality_verdict", String(16)),
        Column("refusal_codes", Text, nullable=False),
        Column("models", Text, nullable=False),
        Column("resources", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "images",
        old,
        Column("record_uuid", String(64), primary_key=True),
        Column("dicom", LargeBinary, nullable=False),
    )
    Table(
        "deliveries",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("site_id", String(80), nullable=False),
        Column("device_id", String(80), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("records", Integer, nullable=False),
        Column("created", Integer, nullable=False),
        Column("replayed", Integer, nullable=False),
    )
    engine = create_engine(url)
    old.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            old_records.insert(),
            [
                {
                    "record_uuid": name,
                    "site_id": SITE,
                    "device_id": DEVICE,
                    "patient_key": "k" * 64,
                    "capture_time": "2026-03-04T09:30:00+00:00",
                    "week": "2026-W10",
                    "clock_synchronised": True,
                    "sex": "female",
                    "age_years": 70,
                    "age_at_least": False,
                    "referral_category": "cannot_assess",
                    "refusal_codes": "[]",
                    "models": "[]",
                    "resources": "[]",
                    "received_at": datetime.now(UTC),
                }
                for name in ("old-1", "old-2")
            ],
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_hub_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old-hub.sqlite3'}"
        return
    schema_urls = _postgres_schema_url()
    yield next(schema_urls)
    next(schema_urls, None)


def test_a_hub_database_from_before_revisions_is_migrated_in_place(old_hub_url):
    from edgeosteo.fhir import read_bundle
    from edgeosteo.hub.store import HUB_MIGRATIONS, Credential

    _old_hub_schema(old_hub_url)
    store = HubStore(old_hub_url)
    try:
        assert store.schema_version == len(HUB_MIGRATIONS)
        old = store.get_record("old-1")
        assert (old["case_record"], old["revision"], old["superseded_by"]) == ("old-1", 1, None)
        # a revision from an upgraded box supersedes a record the old hub stored
        first = dataclasses.replace(record(), record_uuid="old-1", case_record="old-1")
        revision = record(category="refer", revises=first)
        outcome = store.store(
            read_bundle(transaction_bundle([revision])), Credential("device", SITE, DEVICE)
        )
        assert outcome.created == (revision.record_uuid,)
        assert store.get_record("old-1")["superseded_by"] == revision.record_uuid
        data = store.dashboard(HubSettings().age_band_edges, HubSettings().referred_categories)
        assert (data.total, data.superseded_records) == (2, 1)
    finally:
        store.close()
    reopened = HubStore(old_hub_url)  # opening again migrates nothing twice
    assert reopened.schema_version == len(HUB_MIGRATIONS) and reopened.count_records() == 3
    reopened.close()


def test_a_new_hub_database_starts_at_the_latest_schema(store):
    from edgeosteo.hub.store import HUB_MIGRATIONS

    assert store.schema_version == len(HUB_MIGRATIONS)


def _spine(band: str, grades: tuple[int, ...]) -> tuple[MeasurementSummary, ...]:
    levels = ("T11", "T12", "L1", "L2")
    vertebrae = tuple(
        VertebraGrade(level, g, "wedge" if g else None, 0.3 if g else 0.05, False)
        for level, g in zip(levels, grades, strict=False)
    )
    value = {"vertebral_fracture": 2.0, "possible_vertebral_fracture": 1.0}.get(band, 0.0)
    return (MeasurementSummary("vertebrae", "1.0.0", "measured", value, "grade", band, None,
                               vertebrae),)  # fmt: skip


def test_dashboard_counts_vertebral_fractures_per_site_sex_and_age_band(app, store):
    mine = store.add_credential("device", SITE, DEVICE)
    client = app.test_client()
    fracture = _spine("vertebral_fracture", (0, 2, 0, 0))
    possible = _spine("possible_vertebral_fracture", (0, 1, 0, 0))
    none = _spine("no_vertebral_fracture", (0, 0, 0, 0))
    mci = (MeasurementSummary("mci", "1.0.0", "measured", 0.45, "ratio", "osteoporosis_likely",
                              None),)  # fmt: skip
    refused = (MeasurementSummary("vertebrae", "1.0.0", "refused", None, None, None,
                                  "measurement.edge_not_found"),)  # fmt: skip
    first = record(sex="female", age=72, measurements=possible)
    batch = [
        record(sex="female", age=72, measurements=fracture),
        record(sex="female", age=75, measurements=none),
        first,
        # the case measured again: only its current revision counts
        record(sex="female", age=72, measurements=fracture, revises=first),
        record(sex="male", age=66, measurements=none),
        record(sex="male", age=66, measurements=refused),  # not assessed
        record(sex="female", age=58, measurements=mci),
        record(sex="female", age=58),
    ]
    assert post(client, transaction_bundle(batch), mine).status_code == 200
    viewer = store.add_credential("viewer", "*", "analyst")
    data = client.get("/dashboard.json", headers={"Authorization": f"Bearer {viewer}"}).get_json()
    found = {
        (r["site"], r["sex"], r["age_band"]): (r["fractures"], r["possible"], r["assessed"])
        for r in data["vertebral_findings"]
    }
    assert found == {(SITE, "female", "70-79"): (2, 0, 3), (SITE, "male", "60-69"): (0, 0, 1)}
    assert data["measurement_bands"] == {
        "mci": {"osteoporosis_likely": 1},
        "vertebrae": {"vertebral_fracture": 2, "no_vertebral_fracture": 2, "refused": 1},
    }
    basic = base64.b64encode(f"analyst:{viewer}".encode()).decode()
    html = client.get("/", headers={"Authorization": f"Basic {basic}"}).get_data(as_text=True)
    assert "Vertebral fractures found" in html and "osteoporosis_likely" in html
