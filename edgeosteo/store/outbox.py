"""The outbox: one record per case revision, what the sender takes and how it fared, and the
sync status the settings page shows. Every write is one short transaction."""

from __future__ import annotations

import sqlite3

from edgeosteo.records import OutboxRecord, SyncStatus
from edgeosteo.store.db import Database, row_to

SYNC_STATUS_KEYS = ("last_attempt_at", "last_success_at", "last_error", "last_error_at")


class Outbox(Database):
    """The sender's side of the store."""

    def case_outbox(self, case_id: int) -> list[OutboxRecord]:
        """A case's records, first revision first."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT * FROM outbox WHERE case_id=? ORDER BY revision", (case_id,)
            ).fetchall()
        return [_outbox(r) for r in rows]

    def outbox_counts(self) -> dict[str, int]:
        with self.connect() as connection:
            rows = connection.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            return {state: count for state, count in rows}

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


def _set_status(connection: sqlite3.Connection, **values: str | None) -> None:
    for key, value in values.items():
        assert key in SYNC_STATUS_KEYS, key
        connection.execute(
            "INSERT INTO sync_status (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


def _outbox(row: sqlite3.Row) -> OutboxRecord:
    return row_to(OutboxRecord, row, clock_synchronised=bool, offered=bool)
