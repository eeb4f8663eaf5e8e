"""Cases: a screened image's result, its image files and its first outbox record, written
together; and a case decided again, which may queue a revision of its record.

A case and its outbox row are written in one transaction, so a power cut can leave
neither half. Image files are written first under a temporary name in ``images/.incoming``
and renamed into their day folder inside the transaction that records them, just before it
commits; they are removed again if it fails. A process killed in between leaves either a
``.part`` in ``.incoming`` or a file no case row names, and ``sweep_orphan_files`` (run by a
box that holds the data directory's lock, at start-up) removes both.
Patient identifiers stay in this store only; nothing here is synced as is.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgeosteo.hardware import boot_id
from edgeosteo.imaging import display_png, heatmap_png
from edgeosteo.intake.types import PatientIdentity, Radiograph
from edgeosteo.records import CaseRecord
from edgeosteo.store.db import SQLITE_MAX_INTEGER, Database, Day, day_clause, row_to, utc_now

logger = logging.getLogger(__name__)

INCOMING = ".incoming"
CASE_FILE_COLUMNS = ("image_file", "display_file", "heatmap_file")


def clock_synchronised() -> bool:
    """True when systemd-timesyncd (or chrony via the same flag file) reports sync."""
    return Path("/run/systemd/timesync/synchronized").exists()


class Cases(Database):
    """Writing and finding cases."""

    def _write_file(self, name: str, data: bytes, staged: list[tuple[Path, Path]]) -> str:
        """Write ``data`` under a temporary name in ``images/.incoming``; ``_place`` renames
        it into its day folder inside the transaction that records it."""
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        path = self.images_dir / day / name
        incoming = self.images_dir / INCOMING
        incoming.mkdir(exist_ok=True)
        temporary = incoming / f"{name}.part"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        staged.append((temporary, path))
        return str(path.relative_to(self.data_dir))

    @staticmethod
    def _place(staged: list[tuple[Path, Path]], placed: list[Path]) -> None:
        for temporary, path in staged:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.replace(path)
            placed.append(path)

    def sweep_orphan_files(self, older_than: float | None = None) -> int:
        """Remove what a killed process left in the image tree: every ``.part`` in
        ``images/.incoming`` and every file no case row names, modified before
        ``older_than`` (default: now). Only for a process that holds the data directory's
        lock (``lock_data_dir``), so no other writer is between a rename and its commit.
        Returns how many files went."""
        cutoff = time.time() if older_than is None else older_than
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(CASE_FILE_COLUMNS)} FROM cases"
            ).fetchall()
        named = {self.data_dir / name for row in rows for name in row if name}
        removed = 0
        for path in sorted(self.images_dir.rglob("*")):
            if path in named or path.is_symlink() or not path.is_file():
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        if removed:
            logger.warning("removed %d image file(s) that no case names", removed)
        return removed

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
        staged: list[tuple[Path, Path]] = []
        placed: list[Path] = []
        try:
            image_file = display_file = heatmap_file = None
            if source_bytes is not None:
                image_file = self._write_file(f"{case_uuid}.orig", source_bytes, staged)
            if radiograph is not None:
                display_file = self._write_file(
                    f"{case_uuid}.png", display_png(radiograph.pixels), staged
                )
                if heatmap is not None:
                    heatmap_file = self._write_file(
                        f"{case_uuid}.heatmap.png", heatmap_png(heatmap, radiograph.shape), staged
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
                        result.get("created_at") or utc_now(),
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
                        result.get("created_at") or utc_now(),
                        boot_id(),
                        time.monotonic_ns(),
                        int(clock_synchronised()),
                        send_after,
                    ),
                )
                # last before the commit: a kill after it leaves files no row names (swept)
                self._place(staged, placed)
        except BaseException:
            for path in placed:
                path.unlink(missing_ok=True)
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
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
                _insert_revision(connection, latest)
        return self.get_case(case_id)

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
        day: Day | None = None,
        category: str | None = None,
        limit: int = 200,
    ) -> list[CaseRecord]:
        clauses, params = [], []
        if text:
            # the case number, the local ID, or the DICOM name (its ^ read as a space), patient
            # ID or accession number held in the identity column
            needle = f"%{text.strip()}%"
            clauses.append(
                "(CAST(id AS TEXT) = ? OR local_patient_id LIKE ?"
                " OR replace(json_extract(identity_json, '$.name'), '^', ' ') LIKE ?"
                " OR json_extract(identity_json, '$.patient_id') LIKE ?"
                " OR json_extract(identity_json, '$.accession_number') LIKE ?)"
            )
            params += [text.strip(), needle, needle, needle, needle]
        if day:
            clause, day_params = day_clause("created_at", day)
            clauses.append(clause)
            params += day_params
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

    def screened_since(
        self, since: str, with_results: bool = False, limit: int = 20000
    ) -> tuple[str | None, int, list[dict]]:
        """When the first case of all was screened (None: no case), how many were screened at
        or after ``since`` (ISO 8601 UTC), and with ``with_results`` their results, newest
        first: the screening volume site calibration divides its DXA capacity by."""
        with self.connect() as connection:
            first = connection.execute("SELECT MIN(created_at) FROM cases").fetchone()[0]
            count = connection.execute(
                "SELECT COUNT(*) FROM cases WHERE created_at >= ?", (since,)
            ).fetchone()[0]
            rows = (
                connection.execute(
                    "SELECT result_json FROM cases WHERE created_at >= ? ORDER BY id DESC LIMIT ?",
                    (since, limit),
                ).fetchall()
                if with_results
                else []
            )
        return first, int(count), [json.loads(row["result_json"]) for row in rows]


def _insert_revision(connection: sqlite3.Connection, latest: sqlite3.Row) -> None:
    connection.execute(
        """INSERT INTO outbox (record_uuid, case_id, capture_time, boot_id,
           monotonic_ns, clock_synchronised, revision, supersedes)
           VALUES (?,?,?,?,?,?,?,?)""",
        (
            str(uuid.uuid4()),
            latest["case_id"],
            latest["capture_time"],
            latest["boot_id"],
            latest["monotonic_ns"],
            latest["clock_synchronised"],
            latest["revision"] + 1,
            latest["record_uuid"],
        ),
    )


def revise_outbox(connection: sqlite3.Connection, case_id: int) -> None:
    """Something the hub is sent changed on a case outside its result (its referral
    outcome), in the caller's transaction: a latest record no sender has taken carries the
    change when it goes; one that may have reached the hub gets a revision."""
    latest = connection.execute(
        "SELECT * FROM outbox WHERE case_id=? ORDER BY revision DESC LIMIT 1", (case_id,)
    ).fetchone()
    if latest is None or (latest["state"] == "pending" and not latest["offered"]):
        return
    _insert_revision(connection, latest)


def _identity_dict(identity: PatientIdentity | None) -> dict:
    if identity is None:
        return {}
    return {k: v for k, v in asdict(identity).items() if v}


def _without_decision_time(result: dict) -> dict:
    """A result as the hub would see it change: deciding the same case again with the same
    answers gives a new created_at and nothing else, which is no reason for a revision."""
    return {key: value for key, value in result.items() if key != "created_at"}


def _case(row: sqlite3.Row) -> CaseRecord:
    return row_to(CaseRecord, row, result=json.loads, identity=json.loads)
