"""The local case store: SQLite (WAL) for cases, outbox, users and the receiver's queue;
image files beside it.

CaseStore is the one public class, composed of one part per concern: ``cases`` (a case and
its first outbox record, written together), ``outbox`` (the sender's side), ``inbox`` (images
received and the screening queue), ``users`` and ``follow_up`` (referral outcomes, DXA
results and research consent); ``db`` holds the connections, transactions
and migrations they share. The record types live in edgeosteo.records and are re-exported
here.
"""

from __future__ import annotations

from edgeosteo.records import (
    AccountAuditEntry,
    CaseRecord,
    DxaResult,
    IncomingInstance,
    OutboxRecord,
    OutcomeExists,
    QueueFull,
    ReceivedInstance,
    ReferralOutcome,
    ScreeningJob,
    SyncStatus,
    User,
)
from edgeosteo.store.cases import Cases, clock_synchronised
from edgeosteo.store.db import DATABASE_NAME, MIGRATIONS, SQLITE_MAX_INTEGER
from edgeosteo.store.follow_up import FollowUps
from edgeosteo.store.inbox import Inbox
from edgeosteo.store.lock import DataDirInUse, DataDirLock, lock_data_dir
from edgeosteo.store.outbox import SYNC_STATUS_KEYS, Outbox
from edgeosteo.store.users import Users


class CaseStore(Cases, Outbox, Inbox, Users, FollowUps):
    """The box's store in one data directory: ``edgeosteo.sqlite3`` and ``images/``."""


__all__ = [
    "DATABASE_NAME",
    "MIGRATIONS",
    "SQLITE_MAX_INTEGER",
    "SYNC_STATUS_KEYS",
    "AccountAuditEntry",
    "CaseRecord",
    "CaseStore",
    "DataDirInUse",
    "DataDirLock",
    "DxaResult",
    "IncomingInstance",
    "OutboxRecord",
    "OutcomeExists",
    "QueueFull",
    "ReceivedInstance",
    "ReferralOutcome",
    "ScreeningJob",
    "SyncStatus",
    "User",
    "clock_synchronised",
    "lock_data_dir",
]
