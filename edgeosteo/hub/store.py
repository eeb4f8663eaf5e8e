"""The hub's database (SQLAlchemy Core): SQLite by default, PostgreSQL when a URL says so.

A record is inserted at most once, keyed by the box's record UUID (INSERT .. ON CONFLICT
DO NOTHING in the bundle's one transaction), so replays and concurrent deliveries of the
same record leave one row. Device tokens are kept as SHA-256 digests only: they are 256-bit
random strings, so a slow password hash would add nothing.

A case decided again on the box after it was sent comes as a revision: a new record with
the case's first record UUID (``case_record``) and a higher revision number. Of a case's
records the one with the highest revision is current (``superseded_by`` NULL), whatever
order they arrive in; the others are kept, marked with the record that superseded them, and
everything the dashboard counts reads current records only. Schema changes are numbered
steps in HUB_MIGRATIONS, applied in place when the store opens (as the box's MIGRATIONS).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from edgeosteo.fhir import DeliveredDxa, ReceivedRecord

TOKEN_BYTES = 32

metadata = MetaData()
credentials = Table(
    "credentials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role", String(16), nullable=False),  # device | viewer | reporter
    Column("site_id", String(80), nullable=False),
    Column("device_id", String(80), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
records = Table(
    "records",
    metadata,
    Column("record_uuid", String(64), primary_key=True),
    Column("site_id", String(80), nullable=False, index=True),
    Column("device_id", String(80), nullable=False),
    Column("patient_key", String(64), nullable=False, index=True),
    Column("capture_time", String(40), nullable=False),
    # ISO week of the capture, or of the receipt when the box's clock was not synchronised
    Column("week", String(10), nullable=False, index=True),
    Column("clock_synchronised", Boolean, nullable=False),
    Column("sex", String(8)),
    Column("age_years", Integer),
    Column("age_at_least", Boolean, nullable=False),
    Column("referral_category", String(40)),
    Column("quality_verdict", String(16)),
    Column("refusal_codes", Text, nullable=False),  # JSON list
    Column("models", Text, nullable=False),  # JSON list of "id@version"
    Column("resources", Text, nullable=False),  # JSON list of the FHIR resources
    Column("received_at", DateTime(timezone=True), nullable=False),
    # revisions (HUB_MIGRATIONS step 1): the case's first record UUID, this record's
    # revision number, the record it supersedes, and the newer record that superseded it
    Column("case_record", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("supersedes", String(64)),
    Column("superseded_by", String(64)),
    # HUB_MIGRATIONS step 2: JSON object, method -> band of each measurement (or "refused")
    Column("measurement_bands", Text, nullable=False, server_default="{}"),
    # HUB_MIGRATIONS step 3: the decision's versions and score (drift), and the referral's
    # outcome (result / declined / could_not_travel; for a result the WHO band, the lowest
    # T-score and whether the scan was within six months of the screening)
    Column("policy_version", String(80)),
    Column("primary_model", String(170)),
    Column("referral_score", Float),
    Column("referral_score_kind", String(180)),
    Column("dxa_outcome", String(20)),
    Column("dxa_who_band", String(20)),
    Column("dxa_lowest_t_score", Float),
    Column("dxa_within_six_months", Boolean),
    Index("ix_records_case", "site_id", "device_id", "case_record"),
)
schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

# Each entry upgrades a hub database made by an earlier release by one version; never edit
# a released step, add one. The statements run in one transaction, in SQLite and PostgreSQL.
HUB_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "ALTER TABLE records ADD COLUMN case_record VARCHAR(64) NOT NULL DEFAULT ''",
        "ALTER TABLE records ADD COLUMN revision INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE records ADD COLUMN supersedes VARCHAR(64)",
        "ALTER TABLE records ADD COLUMN superseded_by VARCHAR(64)",
        "UPDATE records SET case_record = record_uuid",
        "CREATE INDEX ix_records_case ON records (site_id, device_id, case_record)",
    ),
    ("ALTER TABLE records ADD COLUMN measurement_bands TEXT NOT NULL DEFAULT '{}'",),
    (
        "ALTER TABLE records ADD COLUMN policy_version VARCHAR(80)",
        "ALTER TABLE records ADD COLUMN primary_model VARCHAR(170)",
        "ALTER TABLE records ADD COLUMN referral_score FLOAT",
        "ALTER TABLE records ADD COLUMN referral_score_kind VARCHAR(180)",
        "ALTER TABLE records ADD COLUMN dxa_outcome VARCHAR(20)",
        "ALTER TABLE records ADD COLUMN dxa_who_band VARCHAR(20)",
        "ALTER TABLE records ADD COLUMN dxa_lowest_t_score FLOAT",
        "ALTER TABLE records ADD COLUMN dxa_within_six_months BOOLEAN",
    ),
)
VERTEBRAL_METHOD = "vertebrae"
VERTEBRAL_FRACTURE = "vertebral_fracture"
VERTEBRAL_ASSESSED = ("vertebral_fracture", "possible_vertebral_fracture", "no_vertebral_fracture")
images = Table(
    "images",
    metadata,
    Column("record_uuid", String(64), primary_key=True),
    Column("dicom", LargeBinary, nullable=False),
)
# DXA results given to the hub for a pseudonymous case record, waiting for the box (state
# pending) or answered by it (recorded, refused with the box's code); one per case
dxa_results = Table(
    "dxa_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(80), nullable=False),
    Column("device_id", String(80), nullable=False),
    Column("case_record", String(64), nullable=False),
    Column("patient_key", String(64), nullable=False),
    Column("observation", Text, nullable=False),  # the FHIR Observation as given
    Column("given_by", String(80), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Column("refusal_code", String(80)),
    UniqueConstraint("site_id", "device_id", "case_record", name="uq_dxa_results_case"),
)
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(80), nullable=False),
    Column("device_id", String(80), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("records", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("replayed", Integer, nullable=False),
)


class DxaResultRefused(Exception):
    """A DXA result the hub cannot keep for a box; ``code`` is the stable code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class CaseOutcomeRow:
    """One case (its current record) as the outcome figures read it."""

    site_id: str
    sex: str | None
    age_years: int | None
    age_at_least: bool
    capture_time: str
    referral_category: str | None
    policy_version: str | None
    primary_model: str | None
    referral_score: float | None
    referral_score_kind: str | None
    dxa_outcome: str | None
    dxa_who_band: str | None
    dxa_within_six_months: bool | None


@dataclass(frozen=True)
class Credential:
    role: str
    site_id: str
    device_id: str


@dataclass(frozen=True)
class StoreOutcome:
    created: tuple[str, ...]
    replayed: tuple[str, ...]


@dataclass(frozen=True)
class Dashboard:
    # cases, each counted once by its current revision
    total: int
    # (site, week) -> results
    per_site_week: dict[tuple[str, str], int]
    # (sex, age band) -> (referred, results)
    referral_rates: dict[tuple[str, str], tuple[int, int]]
    model_versions: dict[str, int]
    refusals: dict[str, int]
    deliveries: int
    replayed_records: int
    # earlier revisions kept for audit, counted nowhere else
    superseded_records: int = 0
    # (site, sex, age band) -> (vertebral fractures found, possible ones, spines assessed)
    vertebral_findings: dict[tuple[str, str, str], tuple[int, int, int]] = field(
        default_factory=dict
    )
    # method -> band -> results
    measurement_bands: dict[str, dict[str, int]] = field(default_factory=dict)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _week(moment: str | datetime) -> str:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def age_band(age_years: int | None, at_least: bool, edges: Sequence[int]) -> str:
    if age_years is None:
        return "unknown"
    lower = max((e for e in edges if e <= age_years), default=edges[0])
    later = [e for e in edges if e > lower]
    if at_least or not later:
        return f"{lower}+"
    return f"{lower}-{later[0] - 1}"


class HubStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _engine(url)
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(schema_version.c.version)).scalar_one())

    def _migrate(self) -> None:
        """Create what is missing; bring a database from an earlier release up to date.

        A database whose records table predates the schema_version table is version 0."""
        existing = inspect(self.engine).has_table(records.name)
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            self._lock_for_writing(connection)
            version = connection.execute(select(schema_version.c.version)).scalar()
            if version is None:
                version = 0 if existing else len(HUB_MIGRATIONS)
                connection.execute(schema_version.insert().values(id=1, version=version))
            for number, statements in enumerate(HUB_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    connection.exec_driver_sql(statement)
                connection.execute(schema_version.update().values(version=number))

    def _lock_for_writing(self, connection: Connection, keys: Sequence[str] = ()) -> None:
        """SQLite: take the write lock now, so what this transaction reads is what it
        writes over (one writer at a time). PostgreSQL: a transaction-scoped advisory lock
        per key, in sorted order (no deadlock), so a case's revisions are filed one at a
        time; without keys, one lock for the schema."""
        if self.dialect == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        if self.dialect == "postgresql":
            for key in sorted(set(keys or ("schema",))):
                lock_id = int.from_bytes(
                    hashlib.sha256(key.encode()).digest()[:8], "big", signed=True
                )
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    # --- credentials ----------------------------------------------------------------------

    def add_credential(self, role: str, site_id: str, device_id: str) -> str:
        """A new bearer token; only its digest is stored, the token is shown once."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.engine.begin() as connection:
            connection.execute(
                credentials.insert().values(
                    role=role,
                    site_id=site_id,
                    device_id=device_id,
                    token_sha256=token_digest(token),
                    created_at=_now(),
                )
            )
        return token

    def revoke(self, site_id: str, device_id: str) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                credentials.update()
                .where(
                    credentials.c.site_id == site_id,
                    credentials.c.device_id == device_id,
                    credentials.c.revoked_at.is_(None),
                )
                .values(revoked_at=_now())
            )
            return int(result.rowcount)

    def authenticate(self, token: str) -> Credential | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(credentials.c.role, credentials.c.site_id, credentials.c.device_id).where(
                    credentials.c.token_sha256 == token_digest(token),
                    credentials.c.revoked_at.is_(None),
                )
            ).first()
        return Credential(row.role, row.site_id, row.device_id) if row else None

    # --- records --------------------------------------------------------------------------

    def _insert(self, table: Table, key: str) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing(index_elements=[key])

    def store(self, received: Sequence[ReceivedRecord], credential: Credential) -> StoreOutcome:
        now = _now()
        created: list[str] = []
        replayed: list[str] = []
        with self.engine.begin() as connection:
            self._lock_for_writing(
                connection, [f"{r.site_id}|{r.device_id}|{r.case_record}" for r in received]
            )
            for record in received:
                result = connection.execute(
                    self._insert(records, "record_uuid")
                    .values(
                        record_uuid=record.record_uuid,
                        site_id=record.site_id,
                        device_id=record.device_id,
                        patient_key=record.patient_key,
                        capture_time=record.capture_time,
                        week=_week(record.capture_time if record.clock_synchronised else now),
                        clock_synchronised=record.clock_synchronised,
                        sex=record.sex,
                        age_years=record.age_years,
                        age_at_least=record.age_at_least,
                        referral_category=record.referral_category,
                        quality_verdict=record.quality_verdict,
                        refusal_codes=json.dumps(list(record.quality_refusal_codes)),
                        models=json.dumps(list(record.models)),
                        resources=json.dumps(list(record.resources), sort_keys=True),
                        received_at=now,
                        case_record=record.case_record,
                        revision=record.revision,
                        supersedes=record.supersedes,
                        measurement_bands=json.dumps(
                            dict(record.measurement_bands), sort_keys=True
                        ),
                        policy_version=record.policy_version,
                        primary_model=record.primary_model,
                        referral_score=record.referral_score,
                        referral_score_kind=record.referral_score_kind,
                        dxa_outcome=record.dxa_outcome,
                        dxa_who_band=record.dxa_who_band,
                        dxa_lowest_t_score=record.dxa_lowest_t_score,
                        dxa_within_six_months=record.dxa_within_six_months,
                    )
                    # a row comes back only when this call inserted it
                    .returning(records.c.record_uuid)
                )
                inserted = result.first() is not None
                (created if inserted else replayed).append(record.record_uuid)
                if inserted:
                    _file_revision(connection, record)
                if record.image is not None:
                    connection.execute(
                        self._insert(images, "record_uuid").values(
                            record_uuid=record.record_uuid, dicom=record.image
                        )
                    )
            connection.execute(
                deliveries.insert().values(
                    site_id=credential.site_id,
                    device_id=credential.device_id,
                    received_at=now,
                    records=len(received),
                    created=len(created),
                    replayed=len(replayed),
                )
            )
        return StoreOutcome(tuple(created), tuple(replayed))

    def record_uuids(self) -> list[str]:
        with self.engine.connect() as connection:
            return [r[0] for r in connection.execute(select(records.c.record_uuid))]

    def case_history(self, site_id: str, device_id: str, case_record: str) -> list[dict[str, Any]]:
        """All stored records of one case, lowest revision first (the audit trail)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(records)
                .where(
                    records.c.site_id == site_id,
                    records.c.device_id == device_id,
                    records.c.case_record == case_record,
                )
                .order_by(records.c.revision, records.c.received_at)
            ).all()
        return [dict(r._mapping) for r in rows]

    def count_records(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(records)).scalar())

    def get_record(self, record_uuid: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(records).where(records.c.record_uuid == record_uuid)
            ).first()
        return dict(row._mapping) if row else None

    def get_image(self, record_uuid: str) -> bytes | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(images.c.dicom).where(images.c.record_uuid == record_uuid)
            ).first()
        return bytes(row[0]) if row else None

    def delivery_totals(self) -> tuple[int, int, int]:
        """(deliveries, records created, records replayed) over all time."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(deliveries.c.created), 0),
                    func.coalesce(func.sum(deliveries.c.replayed), 0),
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    # --- DXA results for the boxes --------------------------------------------------------

    def add_dxa_result(
        self, delivered: DeliveredDxa, observation: Mapping[str, Any], given_by: str
    ) -> int:
        """Keep a DXA result for the box that holds the case: matched by the site, the
        patient's pseudonymous key and the case record the hub already holds (any revision).
        DxaResultRefused hub.dxa_unknown_case when there is no such case record,
        hub.dxa_duplicate when the case has a result already (given here, or on the box). One
        the box refused (its code is on the dashboard) may be given again, corrected."""
        with self.engine.begin() as connection:
            self._lock_for_writing(connection, [f"dxa|{delivered.site_id}|{delivered.case_record}"])
            known = connection.execute(
                select(records.c.device_id)
                .where(
                    records.c.site_id == delivered.site_id,
                    records.c.case_record == delivered.case_record,
                    records.c.patient_key == delivered.patient_key,
                )
                .limit(1)
            ).first()
            if known is None:
                raise DxaResultRefused("hub.dxa_unknown_case")
            recorded = connection.execute(
                select(func.count())
                .select_from(records)
                .where(
                    records.c.site_id == delivered.site_id,
                    records.c.device_id == known.device_id,
                    records.c.case_record == delivered.case_record,
                    records.c.superseded_by.is_(None),
                    records.c.dxa_outcome == "result",
                )
            ).scalar()
            given = connection.execute(
                select(dxa_results.c.id, dxa_results.c.state).where(
                    dxa_results.c.site_id == delivered.site_id,
                    dxa_results.c.device_id == known.device_id,
                    dxa_results.c.case_record == delivered.case_record,
                )
            ).first()
            if recorded or (given is not None and given.state != "refused"):
                raise DxaResultRefused("hub.dxa_duplicate")
            if given is not None:
                connection.execute(dxa_results.delete().where(dxa_results.c.id == given.id))
            result = connection.execute(
                dxa_results.insert()
                .values(
                    site_id=delivered.site_id,
                    device_id=known.device_id,
                    case_record=delivered.case_record,
                    patient_key=delivered.patient_key,
                    observation=json.dumps(dict(observation), sort_keys=True, ensure_ascii=False),
                    given_by=given_by[:80],
                    received_at=_now(),
                    state="pending",
                )
                .returning(dxa_results.c.id)
            )
            return int(result.scalar_one())

    def pending_dxa_results(self, site_id: str, device_id: str) -> list[dict[str, Any]]:
        """The results waiting for this box, each Observation with its delivery id."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(dxa_results.c.id, dxa_results.c.observation)
                .where(
                    dxa_results.c.site_id == site_id,
                    dxa_results.c.device_id == device_id,
                    dxa_results.c.state == "pending",
                )
                .order_by(dxa_results.c.id)
            ).all()
        return [{**json.loads(r.observation), "id": str(r.id)} for r in rows]

    def answer_dxa_result(
        self, delivery_id: int, site_id: str, device_id: str, refusal_code: str | None
    ) -> bool:
        """The box's receipt for one result; False when it is not this box's."""
        with self.engine.begin() as connection:
            result = connection.execute(
                dxa_results.update()
                .where(
                    dxa_results.c.id == delivery_id,
                    dxa_results.c.site_id == site_id,
                    dxa_results.c.device_id == device_id,
                )
                .values(
                    state="recorded" if refusal_code is None else "refused",
                    refusal_code=refusal_code,
                    answered_at=_now(),
                )
            )
            return result.rowcount == 1

    def dxa_result_states(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    dxa_results.c.id,
                    dxa_results.c.site_id,
                    dxa_results.c.device_id,
                    dxa_results.c.case_record,
                    dxa_results.c.state,
                    dxa_results.c.refusal_code,
                ).order_by(dxa_results.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def outcome_rows(self) -> list[CaseOutcomeRow]:
        """Every case by its current record, with what the outcome figures need."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    records.c.site_id,
                    records.c.sex,
                    records.c.age_years,
                    records.c.age_at_least,
                    records.c.capture_time,
                    records.c.referral_category,
                    records.c.policy_version,
                    records.c.primary_model,
                    records.c.referral_score,
                    records.c.referral_score_kind,
                    records.c.dxa_outcome,
                    records.c.dxa_who_band,
                    records.c.dxa_within_six_months,
                )
                .where(records.c.superseded_by.is_(None))
                .order_by(records.c.capture_time, records.c.record_uuid)
            ).all()
        return [CaseOutcomeRow(**r._mapping) for r in rows]

    def dashboard(self, age_band_edges: Sequence[int], referred: Sequence[str]) -> Dashboard:
        per_site_week: Counter[tuple[str, str]] = Counter()
        rates: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        versions: Counter[str] = Counter()
        refusals: Counter[str] = Counter()
        total = 0
        columns = (
            records.c.site_id,
            records.c.week,
            records.c.sex,
            records.c.age_years,
            records.c.age_at_least,
            records.c.referral_category,
            records.c.models,
            records.c.refusal_codes,
            records.c.measurement_bands,
        )
        spines: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        bands: dict[str, Counter[str]] = defaultdict(Counter)
        with self.engine.connect() as connection:
            superseded = int(
                connection.execute(
                    select(func.count())
                    .select_from(records)
                    .where(records.c.superseded_by.is_not(None))
                ).scalar()
            )
            current = select(*columns).where(records.c.superseded_by.is_(None))
            for row in connection.execute(current):
                total += 1
                per_site_week[(row.site_id, row.week)] += 1
                band = age_band(row.age_years, row.age_at_least, age_band_edges)
                cell = rates[(row.sex or "unknown", band)]
                cell[0] += row.referral_category in referred
                cell[1] += 1
                versions.update(json.loads(row.models))
                refusals.update(json.loads(row.refusal_codes))
                measured = json.loads(row.measurement_bands or "{}")
                for method, measured_band in measured.items():
                    bands[method][measured_band] += 1
                finding = measured.get(VERTEBRAL_METHOD)
                if finding in VERTEBRAL_ASSESSED:
                    spine = spines[(row.site_id, row.sex or "unknown", band)]
                    spine[0] += finding == VERTEBRAL_FRACTURE
                    spine[1] += finding == "possible_vertebral_fracture"
                    spine[2] += 1
        count, _, replayed = self.delivery_totals()
        return Dashboard(
            total=total,
            per_site_week=dict(sorted(per_site_week.items())),
            referral_rates={k: (v[0], v[1]) for k, v in sorted(rates.items())},
            model_versions=dict(versions.most_common()),
            refusals=dict(refusals.most_common()),
            deliveries=count,
            replayed_records=replayed,
            superseded_records=superseded,
            vertebral_findings={k: (v[0], v[1], v[2]) for k, v in sorted(spines.items())},
            measurement_bands={m: dict(c.most_common()) for m, c in sorted(bands.items())},
        )


def _file_revision(connection: Connection, record: ReceivedRecord) -> None:
    """A new record joins its case: the one with the highest revision stays or becomes
    current, the other is marked superseded by it. Runs under the case's lock."""
    case = (
        records.c.site_id == record.site_id,
        records.c.device_id == record.device_id,
        records.c.case_record == record.case_record,
    )
    current = connection.execute(
        select(records.c.record_uuid, records.c.revision, records.c.week).where(
            *case,
            records.c.superseded_by.is_(None),
            records.c.record_uuid != record.record_uuid,
        )
    ).first()
    if current is None:
        return
    if record.revision > current.revision:
        older, newer = current.record_uuid, record.record_uuid
        if not record.clock_synchronised:
            # the case stays in the week the hub first heard of it
            connection.execute(
                records.update()
                .where(records.c.record_uuid == newer, records.c.week > current.week)
                .values(week=current.week)
            )
    else:  # an older revision arriving late (or a tie: the first one filed stays)
        older, newer = record.record_uuid, current.record_uuid
    connection.execute(
        records.update().where(records.c.record_uuid == older).values(superseded_by=newer)
    )


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
