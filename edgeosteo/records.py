"""The records the box keeps, as plain frozen dataclasses: a stored case, its outbox rows,
the sync status, users, and what the receiver took in (instances and screening jobs).

A floor-level module: it imports nothing from the rest of edgeosteo, so the code that only
reads records (anonymise, fhir, the hub) needs no store. ``edgeosteo.store`` writes and reads
them and re-exports them.
"""

from __future__ import annotations

import dataclasses
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
    # the patient's answer to research use of their de-identified case: "yes", "no", or None
    # (never asked); only "yes" goes into ``edgeosteo export-labelled``
    research_consent: str | None = None


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
    disabled: bool = False
    must_change_password: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# what account_audit records; never a password
ACCOUNT_ACTIONS = (
    "create",
    "reset_password",
    "unlock",
    "disable",
    "enable",
    "delete",
    "role_change",
    "password_change",
)


@dataclass(frozen=True)
class AccountAuditEntry:
    """One action on an account: when (UTC, as stored), by whom, what, on whom, and for a
    creation or a role change the role given."""

    at: str
    actor: str
    action: str  # one of ACCOUNT_ACTIONS
    target: str
    role: str | None = None


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


DXA_SITES = ("femoral_neck", "total_hip", "lumbar_spine")
# outcomes of a referral: the DXA was done (a result), or the patient did not go
REFERRAL_OUTCOMES = ("dxa_done", "declined", "could_not_travel")


@dataclass(frozen=True)
class DxaResult:
    """A DXA report as the clinic received it: the T-score at each measured site (at least
    one), the Z-scores where given. ``lumbar_spine`` is L1-L4."""

    scan_date: str  # YYYY-MM-DD
    centre: str
    device: str | None = None
    femoral_neck_t_score: float | None = None
    total_hip_t_score: float | None = None
    lumbar_spine_t_score: float | None = None
    femoral_neck_z_score: float | None = None
    total_hip_z_score: float | None = None
    lumbar_spine_z_score: float | None = None

    def t_scores(self) -> dict[str, float]:
        """The measured sites' T-scores, by site."""
        scores = {site: getattr(self, f"{site}_t_score") for site in DXA_SITES}
        return {site: value for site, value in scores.items() if value is not None}

    @property
    def lowest_t_score(self) -> float:
        """The T-score the WHO band is read from: the lowest of the measured sites."""
        return min(self.t_scores().values())

    @property
    def lowest_t_site(self) -> str:
        scores = self.t_scores()
        return min(scores, key=scores.__getitem__)

    @property
    def who_band(self) -> str:
        """WHO: osteoporosis at T <= -2.5, low bone mass (osteopenia) below -1, else normal."""
        lowest = self.lowest_t_score
        if lowest <= -2.5:
            return "osteoporosis"
        return "low_bone_mass" if lowest < -1.0 else "normal"

    def to_dict(self) -> dict[str, object]:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "lowest_t_score": self.lowest_t_score,
            "lowest_t_site": self.lowest_t_site,
            "who_band": self.who_band,
        }


@dataclass(frozen=True)
class ReferralOutcome:
    """What became of a case's referral: a DXA result, or why there is none."""

    case_id: int
    outcome: str  # one of REFERRAL_OUTCOMES
    recorded_at: str
    recorded_by: str | None
    dxa: DxaResult | None  # set exactly when outcome is dxa_done

    def to_dict(self) -> dict[str, object]:
        return {
            "case": self.case_id,
            "outcome": self.outcome,
            "recorded_at": self.recorded_at,
            "recorded_by": self.recorded_by,
            "dxa": self.dxa.to_dict() if self.dxa else None,
        }


class OutcomeExists(Exception):
    """The case already has a DXA result; a second one is refused, never merged."""
