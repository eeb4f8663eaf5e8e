"""The records the box keeps, as plain frozen dataclasses: a stored case, its outbox rows,
the sync status, users, and what the receiver took in (instances and screening jobs).

A floor-level module: it imports nothing from the rest of edgeosteo, so the code that only
reads records (anonymise, fhir, the hub) needs no store. ``edgeosteo.store`` writes and reads
them and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CaseRecord:
    id: int
    uuid: str
    created_at: str
    created_by: str | None
    local_patient_id: str | None
    state: str
    category: str | None
    body_part: str | None
    quality_verdict: str | None
    result: dict
    identity: dict
    original_name: str | None
    image_file: str | None
    display_file: str | None
    heatmap_file: str | None


@dataclass(frozen=True)
class OutboxRecord:
    """One outbox row: what the sender needs besides the case itself."""

    id: int
    record_uuid: str
    case_id: int
    capture_time: str
    boot_id: str
    monotonic_ns: int
    clock_synchronised: bool
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    sent_at: str | None
    # 1 for a case's first record; n+1 for the record that replaces revision n at the hub
    revision: int = 1
    supersedes: str | None = None  # the record_uuid of the revision before this one
    offered: bool = False


@dataclass(frozen=True)
class SyncStatus:
    """The outbox at a glance, for the settings page and ``edgeosteo sync --status``."""

    counts: dict[str, int]
    last_attempt_at: str | None
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None
    # parked records (state failed) with the hub's answer, newest first
    parked: tuple[OutboxRecord, ...]


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password_hash: str
    language: str | None
    failed_logins: int
    locked_until: float
    session_generation: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class QueueFull(Exception):
    """The screening queue holds as many jobs as the receiver allows."""


@dataclass(frozen=True)
class IncomingInstance:
    """An image just written to disk by the receiver, before it has a row."""

    source: str  # "scp" | "folder"
    file: str  # relative to the data directory
    size_bytes: int
    content_sha256: str
    eligible: bool
    reason_code: str | None = None
    body_part: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    calling_ae: str | None = None
    peer: str | None = None
    origin_path: str | None = None
    modality: str | None = None
    dicom_body_part: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    identity: dict | None = None


@dataclass(frozen=True)
class ReceivedInstance:
    """One image that arrived from the X-ray unit, and what became of it.

    ``state``: queued (waiting for the worker), screened, needs_answers, refused (intake or
    quality refused the image), ineligible (the rules kept it from automatic screening).
    """

    id: int
    received_at: str
    source: str
    sop_instance_uid: str | None
    sop_class_uid: str | None
    calling_ae: str | None
    peer: str | None
    origin_path: str | None
    file: str
    size_bytes: int
    content_sha256: str
    modality: str | None
    dicom_body_part: str | None
    view_position: str | None
    laterality: str | None
    body_part: str | None
    identity: dict
    state: str
    reason_code: str | None
    case_id: int | None


@dataclass(frozen=True)
class ReceivedConflict:
    """A resend of a received SOP instance whose pixels differ from the stored first copy
    (kept); only its hash and where it came from are recorded."""

    id: int
    instance_id: int
    received_at: str
    source: str
    calling_ae: str | None
    peer: str | None
    origin_path: str | None
    size_bytes: int
    content_sha256: str


@dataclass(frozen=True)
class ScreeningJob:
    id: int
    instance_id: int
    # fixed when the job is queued, so a job re-run after a crash finds the case it stored
    case_uuid: str
    state: str  # queued | running | done | failed
    attempts: int
    last_error: str | None
