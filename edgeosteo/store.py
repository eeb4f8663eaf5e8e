"""The local case store: SQLite (WAL) for cases, outbox and users; image files beside it.

A case and its outbox row are written in one transaction, so a power cut can leave
neither half. Image files are written first and removed again if the transaction fails.
Patient identifiers stay in this store only; nothing here is synced as is.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgeosteo.hardware import boot_id
from edgeosteo.imaging import display_png, heatmap_png
from edgeosteo.intake.types import PatientIdentity, Radiograph
from edgeosteo.records import (
    CaseRecord,
    IncomingInstance,
    OutboxRecord,
    QueueFull,
    ReceivedInstance,
    ScreeningJob,
    SyncStatus,
    User,
)

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
)

SYNC_STATUS_KEYS = ("last_attempt_at", "last_success_at", "last_error", "last_error_at")


def clock_synchronised() -> bool:
    """True when systemd-timesyncd (or chrony via the same flag file) reports sync."""
    return Path("/run/systemd/timesync/synchronized").exists()


class CaseStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.images_dir = self.data_dir / "images"
        self.images_dir.mkdir(exist_ok=True)
        self.path = self.data_dir / DATABASE_NAME
        with self.connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            self._migrate(connection)

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

    def _migrate(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            connection.executescript("BEGIN;" + script + f"PRAGMA user_version={number};COMMIT;")

    @property
    def schema_version(self) -> int:
        with self.connect() as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

    # --- cases -------------------------------------------------------------------------

    def _write_file(self, name: str, data: bytes, written: list[Path]) -> str:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        folder = self.images_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)
        written.append(path)
        return str(path.relative_to(self.data_dir))

    def save_case(
        self,
        result: dict,
        *,
        identity: PatientIdentity | None = None,
        radiograph: Radiograph | None = None,
        heatmap: np.ndarray | None = None,
        source_bytes: bytes | None = None,
        original_name: str | None = None,
        local_patient_id: str | None = None,
        created_by: str | None = None,
        state: str = "screened",
        send_after: float = 0.0,
    ) -> CaseRecord:
        """Store one case and its outbox row in a single transaction; the sender leaves the
        row alone until ``send_after`` (epoch seconds)."""
        case_uuid = str(result.get("screening_id") or uuid.uuid4())
        written: list[Path] = []
        try:
            image_file = display_file = heatmap_file = None
            if source_bytes is not None:
                image_file = self._write_file(f"{case_uuid}.orig", source_bytes, written)
            if radiograph is not None:
                display_file = self._write_file(
                    f"{case_uuid}.png", display_png(radiograph.pixels), written
                )
                if heatmap is not None:
                    heatmap_file = self._write_file(
                        f"{case_uuid}.heatmap.png", heatmap_png(heatmap, radiograph.shape), written
                    )
            referral = result.get("referral") or {}
            quality = result.get("quality") or {}
            identity_json = json.dumps(_identity_dict(identity), ensure_ascii=False)
            with self.transaction() as connection:
                cursor = connection.execute(
                    """INSERT INTO cases (uuid, created_at, created_by, local_patient_id,
                       identity_json, state, category, body_part, quality_verdict, result_json,
                       original_name, image_file, display_file, heatmap_file)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                    (
                        case_uuid,
                        result.get("created_at") or _now(),
                        created_by,
                        local_patient_id or None,
                        identity_json,
                        state,
                        referral.get("category"),
                        result.get("body_part"),
                        quality.get("verdict"),
                        json.dumps(result, ensure_ascii=False),
                        original_name,
                        image_file,
                        display_file,
                        heatmap_file,
                    ),
                )
                case_id = int(cursor.lastrowid)
                connection.execute(
                    """INSERT INTO outbox (record_uuid, case_id, capture_time, boot_id,
                       monotonic_ns, clock_synchronised, next_attempt_at)
                       VALUES (?,?,?,?,?,?,?)""",
                    (
                        case_uuid,
                        case_id,
                        result.get("created_at") or _now(),
                        boot_id(),
                        time.monotonic_ns(),
                        int(clock_synchronised()),
                        send_after,
                    ),
                )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        record = self.get_case(case_id)
        assert record is not None
        return record

    def update_result(self, case_id: int, result: dict, state: str) -> CaseRecord | None:
        """A case decided again (answers given after the fact), in one transaction with its
        outbox. A summary is built when it is sent, so a latest record that no sender has
        taken yet carries the new result (and goes now if it was held for its answers). One
        that may have reached the hub (sent, parked, or taken by a sender) cannot: a revision
        is queued, a new record naming the one it supersedes, and the hub makes it current."""
        referral = result.get("referral") or {}
        result_json = json.dumps(result, ensure_ascii=False)
        with self.transaction() as connection:
            before = connection.execute(
                "SELECT result_json FROM cases WHERE id=?", (case_id,)
            ).fetchone()
            if before is None:
                return None
            connection.execute(
                "UPDATE cases SET result_json=?, state=?, category=? WHERE id=?",
                (result_json, state, referral.get("category"), case_id),
            )
            latest = connection.execute(
                "SELECT * FROM outbox WHERE case_id=? ORDER BY revision DESC LIMIT 1", (case_id,)
            ).fetchone()
            if latest is None:
                pass
            elif latest["state"] == "pending" and not latest["offered"]:
                connection.execute(
                    "UPDATE outbox SET next_attempt_at=0 WHERE id=? AND attempts=0",
                    (latest["id"],),
                )
            elif _without_decision_time(json.loads(before["result_json"])) != (
                _without_decision_time(json.loads(result_json))
            ):
                connection.execute(
                    """INSERT INTO outbox (record_uuid, case_id, capture_time, boot_id,
                       monotonic_ns, clock_synchronised, revision, supersedes)
                       VALUES (?,?,?,?,?,?,?,?)""",
                    (
                        str(uuid.uuid4()),
                        case_id,
                        latest["capture_time"],
                        latest["boot_id"],
                        latest["monotonic_ns"],
                        latest["clock_synchronised"],
                        latest["revision"] + 1,
                        latest["record_uuid"],
                    ),
                )
        return self.get_case(case_id)

    def case_outbox(self, case_id: int) -> list[OutboxRecord]:
        """A case's records, first revision first."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT * FROM outbox WHERE case_id=? ORDER BY revision", (case_id,)
            ).fetchall()
        return [_outbox(r) for r in rows]

    def get_case(self, case_id: int) -> CaseRecord | None:
        if not 0 <= case_id <= SQLITE_MAX_INTEGER:
            return None  # no row has it, and sqlite3 raises OverflowError binding it
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM cases WHERE id=?", (case_id,)).fetchone()
        return _case(row) if row else None

    def get_case_by_uuid(self, case_uuid: str) -> CaseRecord | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM cases WHERE uuid=?", (case_uuid,)).fetchone()
        return _case(row) if row else None

    def search_cases(
        self,
        *,
        text: str | None = None,
        day: str | None = None,
        category: str | None = None,
        limit: int = 200,
    ) -> list[CaseRecord]:
        clauses, params = [], []
        if text:
            clauses.append("(CAST(id AS TEXT) = ? OR local_patient_id LIKE ?)")
            params += [text.strip(), f"%{text.strip()}%"]
        if day:
            clauses.append("substr(created_at, 1, 10) = ?")
            params.append(day)
        if category:
            clauses.append("category = ?")
            params.append(category)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT * FROM cases {where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_case(r) for r in rows]

    def count_cases(self) -> int:
        with self.connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM cases").fetchone()[0])

    def outbox_counts(self) -> dict[str, int]:
        with self.connect() as connection:
            rows = connection.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            return {state: count for state, count in rows}

    # --- outbox (the sender's side; every write is one short transaction) ----------------

    def due_outbox(self, now: float, limit: int, longest_wait: float) -> list[OutboxRecord]:
        """Pending records whose backoff has passed, oldest first. A wait longer than any
        backoff means the clock was stepped back since it was set: due now."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT * FROM outbox WHERE state='pending' "
                "AND (next_attempt_at <= ? OR next_attempt_at > ?) ORDER BY id LIMIT ?",
                (now, now + longest_wait, limit),
            ).fetchall()
        return [_outbox(r) for r in rows]

    def get_outbox(self, record_uuid: str) -> OutboxRecord | None:
        with self.connect() as connection:
            row = connection.execute(
                "SELECT * FROM outbox WHERE record_uuid=?", (record_uuid,)
            ).fetchone()
        return _outbox(row) if row else None

    def mark_offered(self, record_uuids: list[str]) -> None:
        """A sender took these records: from now on their summaries may reach the hub, so a
        later change to their case goes as a revision. Committed before the sender reads the
        cases, so a change is either in what it sends or in a revision."""
        with self.transaction() as connection:
            connection.executemany(
                "UPDATE outbox SET offered=1 WHERE record_uuid=? AND state='pending'",
                [(u,) for u in record_uuids],
            )

    def mark_sent(self, record_uuids: list[str], sent_at: str) -> None:
        with self.transaction() as connection:
            connection.executemany(
                "UPDATE outbox SET state='sent', sent_at=?, attempts=attempts+1, "
                "last_error=NULL WHERE record_uuid=? AND state='pending'",
                [(sent_at, u) for u in record_uuids],
            )
            _set_status(connection, last_success_at=sent_at, last_attempt_at=sent_at)

    def mark_retry(self, next_attempts: dict[str, float], error: str, at: str) -> None:
        """Leave records pending, each with its own next attempt time (the jitter)."""
        with self.transaction() as connection:
            connection.executemany(
                "UPDATE outbox SET attempts=attempts+1, next_attempt_at=?, last_error=? "
                "WHERE record_uuid=? AND state='pending'",
                [(when, error, u) for u, when in next_attempts.items()],
            )
            _set_status(connection, last_attempt_at=at, last_error=error, last_error_at=at)

    def mark_failed(self, record_uuid: str, error: str, at: str) -> None:
        """Park a record the hub refused (4xx) until an admin looks at it."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE outbox SET state='failed', attempts=attempts+1, last_error=? "
                "WHERE record_uuid=? AND state='pending'",
                (error, record_uuid),
            )
            _set_status(connection, last_attempt_at=at, last_error=error, last_error_at=at)

    def retry_failed(self) -> int:
        """Put parked records back in the queue (after the cause was fixed)."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "UPDATE outbox SET state='pending', next_attempt_at=0 WHERE state='failed'"
            )
            return int(cursor.rowcount)

    def note_sync_problem(self, error: str, at: str) -> None:
        """A run-level problem (no token, refused credentials) that is no record's fault."""
        with self.transaction() as connection:
            _set_status(connection, last_attempt_at=at, last_error=error, last_error_at=at)

    def sync_status(self, parked_limit: int = 20) -> SyncStatus:
        with self.connect() as connection:
            counts = {
                state: count
                for state, count in connection.execute(
                    "SELECT state, COUNT(*) FROM outbox GROUP BY state"
                )
            }
            values = dict(connection.execute("SELECT key, value FROM sync_status").fetchall())
            parked = connection.execute(
                "SELECT * FROM outbox WHERE state='failed' ORDER BY id DESC LIMIT ?",
                (parked_limit,),
            ).fetchall()
        return SyncStatus(
            counts=counts,
            last_attempt_at=values.get("last_attempt_at"),
            last_success_at=values.get("last_success_at"),
            last_error=values.get("last_error"),
            last_error_at=values.get("last_error_at"),
            parked=tuple(_outbox(r) for r in parked),
        )

    # --- received images and the screening queue ---------------------------------------

    def record_received(
        self, incoming: IncomingInstance, queue_limit: int
    ) -> tuple[ReceivedInstance, bool]:
        """Record an image the receiver wrote, and queue its screening when it is eligible,
        in one transaction. Returns the row and whether it is new: an instance whose SOP
        Instance UID is already here is not recorded again. Raises QueueFull."""
        now = _now()
        with self.transaction() as connection:
            if incoming.sop_instance_uid:
                row = connection.execute(
                    "SELECT * FROM received_instances WHERE sop_instance_uid=?",
                    (incoming.sop_instance_uid,),
                ).fetchone()
                if row is not None:
                    return _received(row), False
            if incoming.eligible:
                depth = connection.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
                ).fetchone()[0]
                if depth >= queue_limit:
                    raise QueueFull(f"{depth} screenings queued")
            cursor = connection.execute(
                """INSERT INTO received_instances (received_at, source, sop_instance_uid,
                   sop_class_uid, calling_ae, peer, origin_path, file, size_bytes,
                   content_sha256, modality, dicom_body_part, view_position, laterality,
                   body_part, identity_json, state, reason_code)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    now,
                    incoming.source,
                    incoming.sop_instance_uid,
                    incoming.sop_class_uid,
                    incoming.calling_ae,
                    incoming.peer,
                    incoming.origin_path,
                    incoming.file,
                    incoming.size_bytes,
                    incoming.content_sha256,
                    incoming.modality,
                    incoming.dicom_body_part,
                    incoming.view_position,
                    incoming.laterality,
                    incoming.body_part,
                    json.dumps(incoming.identity or {}, ensure_ascii=False),
                    "queued" if incoming.eligible else "ineligible",
                    None if incoming.eligible else incoming.reason_code,
                ),
            )
            instance_id = int(cursor.lastrowid)
            if incoming.eligible:
                connection.execute(
                    "INSERT INTO jobs (instance_id, case_uuid, created_at, updated_at) "
                    "VALUES (?,?,?,?)",
                    (instance_id, str(uuid.uuid4()), now, now),
                )
            row = connection.execute(
                "SELECT * FROM received_instances WHERE id=?", (instance_id,)
            ).fetchone()
        return _received(row), True

    def get_received(self, instance_id: int) -> ReceivedInstance | None:
        with self.connect() as connection:
            row = connection.execute(
                "SELECT * FROM received_instances WHERE id=?", (instance_id,)
            ).fetchone()
        return _received(row) if row else None

    def received_for_origin(self, origin_path: str) -> ReceivedInstance | None:
        """The latest instance taken from this watch-folder path."""
        with self.connect() as connection:
            row = connection.execute(
                "SELECT * FROM received_instances WHERE origin_path=? ORDER BY id DESC LIMIT 1",
                (origin_path,),
            ).fetchone()
        return _received(row) if row else None

    def clear_origin(self, instance_id: int) -> None:
        """The watch-folder file has been moved to processed/ or rejected/."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE received_instances SET origin_path=NULL WHERE id=?", (instance_id,)
            )

    def list_received(
        self, *, day: str | None = None, without_case: bool = False, limit: int = 500
    ) -> list[ReceivedInstance]:
        clauses, params = [], []
        if day:
            clauses.append("substr(received_at, 1, 10) = ?")
            params.append(day)
        if without_case:
            clauses.append("case_id IS NULL")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT * FROM received_instances {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_received(r) for r in rows]

    def received_for_cases(self, case_ids: list[int]) -> dict[int, ReceivedInstance]:
        if not case_ids:
            return {}
        marks = ",".join("?" * len(case_ids))
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT * FROM received_instances WHERE case_id IN ({marks})", case_ids
            ).fetchall()
        return {int(r["case_id"]): _received(r) for r in rows}

    def queue_depth(self) -> int:
        with self.connect() as connection:
            return int(
                connection.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
                ).fetchone()[0]
            )

    def requeue_interrupted_jobs(self) -> int:
        """Jobs left running by a process that died go back to the queue."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "UPDATE jobs SET state='queued', updated_at=? WHERE state='running'", (_now(),)
            )
            return cursor.rowcount

    def claim_job(self) -> ScreeningJob | None:
        """The oldest queued job that is due, marked running."""
        with self.transaction() as connection:
            row = connection.execute(
                "SELECT * FROM jobs WHERE state='queued' AND not_before <= ? ORDER BY id LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, updated_at=? WHERE id=?",
                (_now(), row["id"]),
            )
            row = connection.execute("SELECT * FROM jobs WHERE id=?", (row["id"],)).fetchone()
        return _job(row)

    def get_job_for_instance(self, instance_id: int) -> ScreeningJob | None:
        with self.connect() as connection:
            row = connection.execute(
                "SELECT * FROM jobs WHERE instance_id=?", (instance_id,)
            ).fetchone()
        return _job(row) if row else None

    def finish_job(
        self, job_id: int, case_id: int | None, state: str, reason_code: str | None = None
    ) -> None:
        """The job is done: its instance gets its case (if one was stored) and final state."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE id=?",
                ("done" if case_id is not None else "failed", _now(), job_id),
            )
            connection.execute(
                "UPDATE received_instances SET state=?, reason_code=?, case_id=? "
                "WHERE id=(SELECT instance_id FROM jobs WHERE id=?)",
                (state, reason_code, case_id, job_id),
            )

    def retry_job(self, job_id: int, error: str, not_before: float) -> None:
        with self.transaction() as connection:
            connection.execute(
                "UPDATE jobs SET state='queued', last_error=?, not_before=?, updated_at=? "
                "WHERE id=?",
                (error, not_before, _now(), job_id),
            )

    def set_case_state(self, case_id: int, state: str) -> None:
        """A case's state changed after the fact (clinical answers added); its received
        instance follows."""
        with self.transaction() as connection:
            connection.execute("UPDATE cases SET state=? WHERE id=?", (state, case_id))
            connection.execute(
                "UPDATE received_instances SET state=? WHERE case_id=?", (state, case_id)
            )

    # --- users -------------------------------------------------------------------------

    def create_user(
        self, username: str, role: str, password_hash: str, language: str | None = None
    ) -> User:
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO users (username, role, password_hash, language, created_at) "
                "VALUES (?,?,?,?,?)",
                (username, role, password_hash, language, _now()),
            )
        user = self.get_user(username)
        assert user is not None
        return user

    def get_user(self, username: str) -> User | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM users WHERE username=?", (username,)).fetchone()
        return _user(row) if row else None

    def get_user_by_id(self, user_id: int) -> User | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self.connect() as connection:
            return [_user(r) for r in connection.execute("SELECT * FROM users ORDER BY id")]

    def count_users(self) -> int:
        with self.connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def record_login(
        self, user_id: int, success: bool, lock_after: int, lock_seconds: float
    ) -> None:
        with self.transaction() as connection:
            if success:
                connection.execute(
                    "UPDATE users SET failed_logins=0, locked_until=0 WHERE id=?", (user_id,)
                )
                return
            failures = (
                connection.execute(
                    "SELECT failed_logins FROM users WHERE id=?", (user_id,)
                ).fetchone()[0]
                + 1
            )
            locked_until = time.time() + lock_seconds if failures >= lock_after else 0
            connection.execute(
                "UPDATE users SET failed_logins=?, locked_until=? WHERE id=?",
                (failures, locked_until, user_id),
            )

    def set_user_language(self, user_id: int, language: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE users SET language=? WHERE id=?", (language, user_id))

    def set_password(self, user_id: int, password_hash: str) -> None:
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET password_hash=? WHERE id=?", (password_hash, user_id)
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _identity_dict(identity: PatientIdentity | None) -> dict:
    if identity is None:
        return {}
    from dataclasses import asdict

    return {k: v for k, v in asdict(identity).items() if v}


def _case(row: sqlite3.Row) -> CaseRecord:
    return CaseRecord(
        id=row["id"],
        uuid=row["uuid"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        local_patient_id=row["local_patient_id"],
        state=row["state"],
        category=row["category"],
        body_part=row["body_part"],
        quality_verdict=row["quality_verdict"],
        result=json.loads(row["result_json"]),
        identity=json.loads(row["identity_json"]),
        original_name=row["original_name"],
        image_file=row["image_file"],
        display_file=row["display_file"],
        heatmap_file=row["heatmap_file"],
    )


def _set_status(connection: sqlite3.Connection, **values: str | None) -> None:
    for key, value in values.items():
        assert key in SYNC_STATUS_KEYS, key
        connection.execute(
            "INSERT INTO sync_status (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


def _without_decision_time(result: dict) -> dict:
    """A result as the hub would see it change: deciding the same case again with the same
    answers gives a new created_at and nothing else, which is no reason for a revision."""
    return {key: value for key, value in result.items() if key != "created_at"}


def _outbox(row: sqlite3.Row) -> OutboxRecord:
    return OutboxRecord(
        id=row["id"],
        record_uuid=row["record_uuid"],
        case_id=row["case_id"],
        capture_time=row["capture_time"],
        boot_id=row["boot_id"],
        monotonic_ns=row["monotonic_ns"],
        clock_synchronised=bool(row["clock_synchronised"]),
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        revision=row["revision"],
        supersedes=row["supersedes"],
        offered=bool(row["offered"]),
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        password_hash=row["password_hash"],
        language=row["language"],
        failed_logins=row["failed_logins"],
        locked_until=row["locked_until"],
    )


def _received(row: sqlite3.Row) -> ReceivedInstance:
    return ReceivedInstance(
        id=row["id"],
        received_at=row["received_at"],
        source=row["source"],
        sop_instance_uid=row["sop_instance_uid"],
        sop_class_uid=row["sop_class_uid"],
        calling_ae=row["calling_ae"],
        peer=row["peer"],
        origin_path=row["origin_path"],
        file=row["file"],
        size_bytes=row["size_bytes"],
        content_sha256=row["content_sha256"],
        modality=row["modality"],
        dicom_body_part=row["dicom_body_part"],
        view_position=row["view_position"],
        laterality=row["laterality"],
        body_part=row["body_part"],
        identity=json.loads(row["identity_json"]),
        state=row["state"],
        reason_code=row["reason_code"],
        case_id=row["case_id"],
    )


def _job(row: sqlite3.Row) -> ScreeningJob:
    return ScreeningJob(
        id=row["id"],
        instance_id=row["instance_id"],
        case_uuid=row["case_uuid"],
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )
