"""The store's database: connections, the transaction helper and the schema migrations, and
the one mapper from a row to a record.

A CaseStore opens a fresh connection per call (WAL, foreign keys on, synchronous FULL);
every write is one ``BEGIN IMMEDIATE`` transaction that rolls back on any exception.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

DATABASE_NAME = "edgeosteo.sqlite3"
SQLITE_MAX_INTEGER = 2**63 - 1

# Each entry upgrades the schema by one version; never edit a released step, add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT,
        local_patient_id TEXT,
        identity_json TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL,
        category TEXT,
        body_part TEXT,
        quality_verdict TEXT,
        result_json TEXT NOT NULL,
        original_name TEXT,
        image_file TEXT,
        display_file TEXT,
        heatmap_file TEXT
    );
    CREATE INDEX cases_created ON cases(created_at);
    CREATE INDEX cases_category ON cases(category);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        record_uuid TEXT NOT NULL UNIQUE,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        capture_time TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        monotonic_ns INTEGER NOT NULL,
        clock_synchronised INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX outbox_state ON outbox(state, next_attempt_at);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'technician')),
        password_hash TEXT NOT NULL,
        language TEXT,
        created_at TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0
    );
    """,
    # 2: what the sender last saw (last success, last error), for the settings page
    """
    CREATE TABLE sync_status (
        key TEXT PRIMARY KEY,
        value TEXT
    );
    CREATE INDEX outbox_record_state ON outbox(state, id);
    """,
    # receiver: images from the X-ray unit and the persistent queue that screens them
    """
    CREATE TABLE received_instances (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('scp', 'folder')),
        sop_instance_uid TEXT UNIQUE,
        sop_class_uid TEXT,
        calling_ae TEXT,
        peer TEXT,
        origin_path TEXT,
        file TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        content_sha256 TEXT NOT NULL,
        modality TEXT,
        dicom_body_part TEXT,
        view_position TEXT,
        laterality TEXT,
        body_part TEXT,
        identity_json TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL,
        reason_code TEXT,
        case_id INTEGER REFERENCES cases(id)
    );
    CREATE INDEX received_day ON received_instances(received_at);
    CREATE INDEX received_origin ON received_instances(origin_path);
    CREATE INDEX received_case ON received_instances(case_id);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL UNIQUE REFERENCES received_instances(id),
        case_uuid TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_error TEXT
    );
    CREATE INDEX jobs_queue ON jobs(state, not_before, id);
    """,
    # 4: revisions. A case decided again after its record may have reached the hub gets a
    # new record (revision n+1) that names the one it supersedes. offered: the record's
    # summary may have left the box (a sender took it), so it can no longer carry a change.
    """
    ALTER TABLE outbox ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE outbox ADD COLUMN supersedes TEXT;
    ALTER TABLE outbox ADD COLUMN offered INTEGER NOT NULL DEFAULT 0;
    UPDATE outbox SET offered=1 WHERE attempts > 0 OR state <> 'pending';
    CREATE UNIQUE INDEX outbox_case_revision ON outbox(case_id, revision);
    """,
    # 5: received conflicts: a resend with a known SOP Instance UID but other pixels. The first
    # copy stays; each distinct other copy (by hash) is listed on the worklist for review.
    """
    CREATE TABLE received_conflicts (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES received_instances(id),
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        calling_ae TEXT,
        peer TEXT,
        origin_path TEXT,
        size_bytes INTEGER NOT NULL,
        content_sha256 TEXT NOT NULL,
        UNIQUE (instance_id, content_sha256)
    );
    CREATE INDEX received_conflicts_day ON received_conflicts(received_at);
    """,
    # 6: a page session carries its user's session generation from the login; logging out
    # or changing the password bumps it, which ends every session issued before. Failed
    # logins for names with no account are counted and locked like an account's.
    """
    ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE unknown_logins (
        username TEXT PRIMARY KEY,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX unknown_logins_updated ON unknown_logins(updated_at);
    """,
    # 7: referral follow-through. A case's referral outcome: its DXA result (one per case),
    # or that the patient declined or could not travel; and the patient's answer to research
    # use of the de-identified case (NULL: never asked), which the labelled export honours.
    """
    ALTER TABLE cases ADD COLUMN research_consent TEXT
        CHECK (research_consent IS NULL OR research_consent IN ('yes', 'no'));
    CREATE TABLE referral_outcomes (
        case_id INTEGER PRIMARY KEY REFERENCES cases(id),
        outcome TEXT NOT NULL CHECK (outcome IN ('dxa_done', 'declined', 'could_not_travel')),
        recorded_at TEXT NOT NULL,
        recorded_by TEXT,
        scan_date TEXT,
        centre TEXT,
        device TEXT,
        femoral_neck_t_score REAL,
        total_hip_t_score REAL,
        lumbar_spine_t_score REAL,
        femoral_neck_z_score REAL,
        total_hip_z_score REAL,
        lumbar_spine_z_score REAL,
        lowest_t_score REAL,
        CHECK ((outcome = 'dxa_done') = (scan_date IS NOT NULL AND lowest_t_score IS NOT NULL))
    );
    CREATE INDEX referral_outcomes_recorded ON referral_outcomes(recorded_at);
    """,
    # 8: accounts an admin can disable, and a password that must be changed at the next login
    # (a one-time password from the install or an admin's reset)
    """
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: who did what to which account, and when (UTC). Names are kept as text, so an entry
    # outlives a deleted account; there is no column a password could go in.
    """
    CREATE TABLE account_audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('create', 'reset_password', 'unlock', 'disable',
            'enable', 'delete', 'role_change', 'password_change')),
        target TEXT NOT NULL,
        role TEXT CHECK (role IS NULL OR role IN ('admin', 'technician'))
    );
    CREATE INDEX account_audit_at ON account_audit(at);
    """,
)

T = TypeVar("T")


def migrate(connection: sqlite3.Connection) -> None:
    """Run the MIGRATIONS this database has not had yet, each with its version stamp in one
    transaction."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.executescript("BEGIN;" + script + f"PRAGMA user_version={number};COMMIT;")


class Database:
    """The store's files and its SQLite database (created and migrated on opening)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.images_dir = self.data_dir / "images"
        self.images_dir.mkdir(exist_ok=True)
        self.path = self.data_dir / DATABASE_NAME
        with self.connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            migrate(connection)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=FULL")
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self.connect() as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])


def row_to(cls: type[T], row: sqlite3.Row, **converters: Callable[[Any], Any]) -> T:
    """The record ``cls`` (a dataclass) from one row. Each field takes the column of its name,
    or ``<field>_json`` where the table keeps it as JSON text; a converter named after a field
    is applied to that column's value (json.loads for JSON text, bool for a 0/1 flag).
    Columns no field names are left out. A field with no column, a JSON column without a
    converter, or a converter for no field is an error."""
    columns = set(row.keys())
    names = [field.name for field in dataclasses.fields(cls)]
    if unknown := set(converters) - set(names):
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    values = {}
    for name in names:
        column = name if name in columns else f"{name}_json"
        if column not in columns:
            raise KeyError(f"no column {name} for {cls.__name__}.{name}")
        if column != name and name not in converters:
            raise TypeError(f"{cls.__name__}.{name}: column {column} needs a converter")
        convert = converters.get(name)
        values[name] = row[column] if convert is None else convert(row[column])
    return cls(**values)


def utc_now() -> str:
    """Now in UTC, as the store writes times (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# a day to list: "YYYY-MM-DD" (that UTC day), or (start, end) UTC timestamps as stored, for a
# local day that does not begin at midnight UTC
Day = str | tuple[str, str]


def day_clause(column: str, day: Day) -> tuple[str, list[str]]:
    """The SQL condition and parameters that keep rows whose UTC timestamp falls in ``day``
    (stored timestamps share one ISO form, so they compare as text)."""
    if isinstance(day, tuple):
        return f"({column} >= ? AND {column} < ?)", [day[0], day[1]]
    return f"substr({column}, 1, 10) = ?", [day]
