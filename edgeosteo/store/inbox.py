"""Received images and the screening queue: what arrived from the X-ray unit (the SCP or the
watch folder), the persistent jobs that screen it, and what became of each."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

from edgeosteo.records import (
    IncomingInstance,
    QueueFull,
    ReceivedConflict,
    ReceivedInstance,
    ScreeningJob,
)
from edgeosteo.store.db import Database, Day, day_clause, row_to, utc_now


class Inbox(Database):
    """The receiver's and the screening worker's side of the store."""

    def record_received(
        self, incoming: IncomingInstance, queue_limit: int
    ) -> tuple[ReceivedInstance, bool]:
        """Record an image the receiver wrote, and queue its screening when it is eligible,
        in one transaction. Returns the row and whether it is new: an instance whose SOP
        Instance UID is already here is not recorded again. Raises QueueFull."""
        now = utc_now()
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

    def discard_received_image(self, instance_id: int) -> None:
        """Delete a received file that holds no radiograph (a photo of a person, say); the
        instance stays listed with its reason, without the image."""
        instance = self.get_received(instance_id)
        if instance is None or not instance.file:
            return
        with self.transaction() as connection:
            connection.execute("UPDATE received_instances SET file='' WHERE id=?", (instance_id,))
        (self.data_dir / instance.file).unlink(missing_ok=True)

    def clear_origin(self, instance_id: int) -> None:
        """The watch-folder file has been moved to processed/ or rejected/."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE received_instances SET origin_path=NULL WHERE id=?", (instance_id,)
            )

    def list_received(
        self, *, day: Day | None = None, without_case: bool = False, limit: int = 500
    ) -> list[ReceivedInstance]:
        clauses, params = [], []
        if day:
            clause, day_params = day_clause("received_at", day)
            clauses.append(clause)
            params += day_params
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

    def record_conflict(self, instance_id: int, incoming: IncomingInstance) -> bool:
        """Note a resend of instance ``instance_id`` with other pixels; False when this
        copy (by content hash) was noted before."""
        with self.transaction() as connection:
            cursor = connection.execute(
                """INSERT OR IGNORE INTO received_conflicts (instance_id, received_at, source,
                   calling_ae, peer, origin_path, size_bytes, content_sha256)
                   VALUES (?,?,?,?,?,?,?,?)""",
                (
                    instance_id,
                    utc_now(),
                    incoming.source,
                    incoming.calling_ae,
                    incoming.peer,
                    incoming.origin_path,
                    incoming.size_bytes,
                    incoming.content_sha256,
                ),
            )
            return cursor.rowcount == 1

    def list_conflicts(
        self, *, day: Day | None = None, limit: int = 500
    ) -> list[tuple[ReceivedConflict, ReceivedInstance]]:
        """Conflicting resends, newest first, each with the instance whose copy was kept."""
        where, params = "", []
        if day:
            clause, params = day_clause("c.received_at", day)
            where = "WHERE " + clause
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT c.id FROM received_conflicts c {where} ORDER BY c.id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
            found = []
            for (conflict_id,) in rows:
                conflict = connection.execute(
                    "SELECT * FROM received_conflicts WHERE id=?", (conflict_id,)
                ).fetchone()
                instance = connection.execute(
                    "SELECT * FROM received_instances WHERE id=?", (conflict["instance_id"],)
                ).fetchone()
                found.append((row_to(ReceivedConflict, conflict), _received(instance)))
        return found

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
                "UPDATE jobs SET state='queued', updated_at=? WHERE state='running'", (utc_now(),)
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
                (utc_now(), row["id"]),
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
                ("done" if case_id is not None else "failed", utc_now(), job_id),
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
                (error, not_before, utc_now(), job_id),
            )

    def set_case_state(self, case_id: int, state: str) -> None:
        """A case's state changed after the fact (clinical answers added); its received
        instance follows."""
        with self.transaction() as connection:
            connection.execute("UPDATE cases SET state=? WHERE id=?", (state, case_id))
            connection.execute(
                "UPDATE received_instances SET state=? WHERE case_id=?", (state, case_id)
            )


def _received(row: sqlite3.Row) -> ReceivedInstance:
    return row_to(ReceivedInstance, row, identity=json.loads)


def _job(row: sqlite3.Row) -> ScreeningJob:
    return row_to(ScreeningJob, row)
