"""The local case store: SQLite (WAL) for cases, outbox, users and the receiver's queue;
image files beside it.

CaseStore is the one public class, composed of one part per concern: ``cases`` (a case and
its first outbox record, written together), ``outbox`` (the sender's side), ``inbox`` (images
received and the screening queue) and ``users``; ``db`` holds the connections, transactions
and migrations they share. The record types live in edgeosteo.records and are re-exported
here.
"""

from __future__ import annotations

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
from edgeosteo.store.cases import Cases, clock_synchronised
from edgeosteo.store.db import DATABASE_NAME, MIGRATIONS, SQLITE_MAX_INTEGER
from edgeosteo.store.inbox import Inbox
from edgeosteo.store.lock import DataDirInUse, DataDirLock, lock_data_dir
from edgeosteo.store.outbox import SYNC_STATUS_KEYS, Outbox
from edgeosteo.store.users import Users


class CaseStore(Cases, Outbox, Inbox, Users):
    """The box's store in one data directory: ``edgeosteo.sqlite3`` and ``images/``."""


__all__ = [
    "DATABASE_NAME",
    "MIGRATIONS",
    "SQLITE_MAX_INTEGER",
    "SYNC_STATUS_KEYS",
    "CaseRecord",
    "CaseStore",
    "DataDirInUse",
    "DataDirLock",
    "IncomingInstance",
    "OutboxRecord",
    "QueueFull",
    "ReceivedInstance",
    "ScreeningJob",
    "SyncStatus",
    "User",
    "clock_synchronised",
    "lock_data_dir",
]
