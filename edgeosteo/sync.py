"""The sender: posts pending outbox records to the regional hub, in batches.

It runs as its own short process (``edgeosteo sync``, from a systemd timer), never inside
the screening page: it reads a batch in one short read, talks to the hub holding no
database lock, and records the answer in one short write. A kill at any point leaves each
record either still pending (sent again next run; the hub keeps the first copy) or sent.
Before it reads the cases it marks the batch as taken (offered), so a case decided again
from then on goes as a revision instead of changing a record the hub may already hold.

The hub's answer decides each record's fate: a 2xx transaction-response marks the batch
sent; a 4xx that is about the records parks them (state failed, with the hub's words) for
an admin, after a batch is split so that one bad record cannot hold back the others; 5xx,
timeouts, broken connections, 408 and 429 leave them pending with exponential backoff and
full jitter. A refused token (401/403) stops the run without blaming any record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

from edgeosteo.anonymise import (
    AnonymisedRecord,
    anonymise_case,
    deidentify_dicom,
    load_site_secret,
    site_secret_location,
)
from edgeosteo.config import Settings, SyncSettings
from edgeosteo.dxa import dxa_result_from
from edgeosteo.errors import FollowUpError
from edgeosteo.fhir import (
    BundleError,
    DeliveredDxa,
    bundle_bytes,
    read_dxa_result,
    transaction_bundle,
)
from edgeosteo.follow_up import record_dxa
from edgeosteo.records import CaseRecord
from edgeosteo.store import CaseStore, OutboxRecord

TOKEN_FILE_NAME = "sync-token"
LOCK_FILE_NAME = "sync.lock"
ERROR_TEXT_LIMIT = 500
# statuses that say "not now" rather than "not this record"
RETRY_STATUSES = frozenset({408, 425, 429})
CREDENTIAL_STATUSES = frozenset({401, 403})
# who recorded a DXA result the hub delivered (the case page shows it)
HUB_RECORDER = "hub"
DXA_RESULTS_PATH = "dxa-results"


class SyncConfigError(RuntimeError):
    """The box is not set up to sync (no endpoint, ids or token); nothing was sent."""


@dataclass(frozen=True)
class SyncResult:
    sent: int = 0
    parked: int = 0
    deferred: int = 0
    requests: int = 0
    # why the run ended before the queue was empty: "busy" (another sender holds the lock),
    # "hub_unavailable", "credentials_refused", "batch_limit"; None when it emptied the queue
    stopped: str | None = None
    # DXA results the hub delivered: recorded on their cases, or refused (the hub is told why)
    dxa_recorded: int = 0
    dxa_refused: int = 0

    def __add__(self, other: SyncResult) -> SyncResult:
        return SyncResult(
            self.sent + other.sent,
            self.parked + other.parked,
            self.deferred + other.deferred,
            self.requests + other.requests,
            other.stopped or self.stopped,
            self.dxa_recorded + other.dxa_recorded,
            self.dxa_refused + other.dxa_refused,
        )


@dataclass(frozen=True)
class _Answer:
    """What one POST came to."""

    kind: str  # "sent" | "record_refused" | "retry" | "credentials"
    error: str | None = None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def token_path(settings: Settings) -> Path:
    return Path(settings.sync.token_file or settings.data_dir / TOKEN_FILE_NAME)


def site_secret_path(settings: Settings) -> Path:
    return site_secret_location(settings.data_dir, settings.sync)


def check_endpoint(sync: SyncSettings) -> str:
    """The hub URL, if it is one the box may send to (https, or http to a local host)."""
    if not sync.endpoint:
        raise SyncConfigError("no hub endpoint is configured ([sync] endpoint)")
    parts = urlsplit(sync.endpoint)
    if parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in sync.plain_http_hosts
    ):
        return sync.endpoint
    raise SyncConfigError(f"the hub endpoint must be https: {sync.endpoint}")


def backoff_delay(attempts: int, sync: SyncSettings, rng: random.Random) -> float:
    """Full jitter: uniform over [0, min(cap, base * 2**attempts)]."""
    ceiling = min(sync.backoff_cap_s, sync.backoff_base_s * 2 ** min(attempts, 32))
    return rng.uniform(0.0, ceiling)


@contextmanager
def _single_sender(data_dir: Path) -> Iterator[bool]:
    """True when this process is the only sender; the lock dies with the process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_FILE_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _error_text(response: requests.Response) -> str:
    detail = response.text[:ERROR_TEXT_LIMIT]
    try:
        issues = response.json().get("issue") or []
        detail = "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues) or detail
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code}: {detail}"[:ERROR_TEXT_LIMIT]


def _is_transaction_response(response: requests.Response, entries: int) -> bool:
    """A 2xx from a captive portal or a proxy is not the hub's receipt."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or body.get("type") != "transaction-response":
        return False
    answered = body.get("entry") or []
    return len(answered) == entries and all(
        str((e.get("response") or {}).get("status", "")).startswith("2") for e in answered
    )


class Sender:
    """One sync run's worth of work. Make a new one per run."""

    def __init__(
        self,
        settings: Settings,
        store: CaseStore | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sync = settings.sync
        self.store = store or CaseStore(settings.data_dir)
        self.session = session or requests.Session()
        self.clock = clock
        self.rng = rng or random.SystemRandom()

    @property
    def _longest_wait_s(self) -> float:
        """No row legitimately waits longer than this; one that does was scheduled before
        the clock was stepped back."""
        return max(self.sync.backoff_cap_s, self.sync.hold_unanswered_hours * 3600.0)

    def run(self) -> SyncResult:
        with _single_sender(self.settings.data_dir) as alone:
            if not alone:
                return SyncResult(stopped="busy")
            try:
                endpoint = check_endpoint(self.sync)
                token = self._token()
                if not (self.sync.site_id and self.sync.device_id):
                    raise SyncConfigError("[sync] site_id and device_id are required")
            except SyncConfigError as exc:
                self.store.note_sync_problem(str(exc), _now_iso())
                raise
            secret = load_site_secret(site_secret_path(self.settings))
            # results first, so the revisions they queue go up in this run's drain
            fetched = self._fetch_dxa_results(endpoint, token, secret)
            if fetched.stopped:
                return fetched
            return fetched + self._drain(endpoint, token, secret)

    def _token(self) -> str:
        path = token_path(self.settings)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SyncConfigError(f"no device token at {path}") from exc
        if not token:
            raise SyncConfigError(f"the device token file {path} is empty")
        return token

    def _drain(self, endpoint: str, token: str, secret: bytes) -> SyncResult:
        total = SyncResult()
        size = self.sync.image_batch_size if self.sync.include_images else self.sync.batch_size
        for _ in range(self.sync.max_batches_per_run):
            batch = self.store.due_outbox(self.clock(), max(1, size), self._longest_wait_s)
            if not batch:
                return total
            self.store.mark_offered([item.record_uuid for item in batch])
            result = self._deliver(endpoint, token, secret, batch)
            total = total + result
            if result.stopped:
                return total
        return total + SyncResult(stopped="batch_limit")

    def _deliver(
        self, endpoint: str, token: str, secret: bytes, batch: Sequence[OutboxRecord]
    ) -> SyncResult:
        records: list[AnonymisedRecord] = []
        images: dict[str, bytes] = {}
        parked = 0
        for item in batch:
            try:
                record, image = self._prepare(item, secret)
            except Exception as exc:  # a case that cannot be summarised stays for an admin
                self.store.mark_failed(
                    item.record_uuid, f"not sent: {type(exc).__name__}: {exc}", _now_iso()
                )
                parked += 1
                continue
            records.append(record)
            if image is not None:
                images[record.record_uuid] = image
        if not records:
            return SyncResult(parked=parked)
        answer = self._post(endpoint, token, records, images)
        uuids = [r.record_uuid for r in records]
        if answer.kind == "sent":
            self.store.mark_sent(uuids, _now_iso())
            return SyncResult(sent=len(uuids), parked=parked, requests=1)
        if answer.kind == "record_refused" and len(records) > 1:
            # find the record the hub objects to; the others go through
            total = SyncResult(parked=parked, requests=1)
            for item in batch:
                if item.record_uuid in uuids:
                    total = total + self._deliver(endpoint, token, secret, [item])
                    if total.stopped:
                        break
            return total
        if answer.kind == "record_refused":
            self.store.mark_failed(uuids[0], answer.error or "refused", _now_iso())
            return SyncResult(parked=parked + 1, requests=1)
        error = answer.error or "unknown"
        if answer.kind == "credentials":
            self.store.note_sync_problem(error, _now_iso())
            return SyncResult(parked=parked, requests=1, stopped="credentials_refused")
        now = self.clock()
        attempts = {item.record_uuid: item.attempts for item in batch}
        self.store.mark_retry(
            {u: now + backoff_delay(attempts[u], self.sync, self.rng) for u in uuids},
            error,
            _now_iso(),
        )
        return SyncResult(parked=parked, deferred=len(uuids), requests=1, stopped="hub_unavailable")

    # --- DXA results from the hub ------------------------------------------------------------

    def _fetch_dxa_results(self, endpoint: str, token: str, secret: bytes) -> SyncResult:
        """Take the DXA results the hub holds for this device, record each through the
        page's path (edgeosteo.follow_up.record_dxa) and give the hub a receipt for each:
        recorded, or refused with the code. A result whose receipt was lost comes again;
        the same result on a case that has it already is answered recorded, a different one
        dxa.duplicate. A hub that cannot be reached is no reason to hold back the records."""
        url = endpoint.rstrip("/") + "/" + DXA_RESULTS_PATH
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        timeout = (self.sync.connect_timeout_s, self.sync.read_timeout_s)
        try:
            response = self.session.get(
                url,
                headers=headers,
                timeout=timeout,
                verify=self.sync.ca_file or True,
                allow_redirects=False,
            )
        except requests.RequestException:
            return SyncResult()
        if response.status_code in CREDENTIAL_STATUSES:
            self.store.note_sync_problem(_error_text(response), _now_iso())
            return SyncResult(requests=1, stopped="credentials_refused")
        try:
            body = response.json() if response.status_code == 200 else {}
        except ValueError:
            body = {}
        entries = body.get("entry") if isinstance(body, dict) else None
        if not isinstance(entries, list) or body.get("type") != "searchset":
            return SyncResult(requests=1)  # a hub from before deliveries, or not the hub
        total = SyncResult(requests=1)
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            delivery_id = resource.get("id") if isinstance(resource, dict) else None
            if not isinstance(delivery_id, str) or not delivery_id:
                continue
            code = self._record_delivered(resource, secret)
            receipt = (
                {"status": "recorded"} if code is None else {"status": "refused", "code": code}
            )
            # a lost receipt: the hub offers the result again next run, the box answers the same
            with contextlib.suppress(requests.RequestException):
                self.session.post(
                    f"{url}/{delivery_id}/receipt",
                    json=receipt,
                    headers=headers,
                    timeout=timeout,
                    verify=self.sync.ca_file or True,
                    allow_redirects=False,
                )
            total = total + SyncResult(
                requests=1, dxa_recorded=int(code is None), dxa_refused=int(code is not None)
            )
        return total

    def _record_delivered(self, resource: dict, secret: bytes) -> str | None:
        """None when the result is on its case now, else the refusal code."""
        try:
            delivered = read_dxa_result(resource)
        except BundleError:
            return "sync.dxa_not_a_result"
        case = self._case_of(delivered, secret)
        if case is None:
            return "sync.dxa_unknown_case"
        try:
            record_dxa(
                self.store,
                case.id,
                delivered.fields,
                self.settings.follow_up,
                HUB_RECORDER,
                date.today(),
            )
        except FollowUpError as exc:
            if exc.code == "dxa.duplicate" and self._same_result(case, delivered):
                return None
            return exc.code
        return None

    def _case_of(self, delivered: DeliveredDxa, secret: bytes) -> CaseRecord | None:
        """The case the result names: its first record UUID, at this site, whose patient
        key (the pseudonym the hub holds) is the one the result was given for."""
        if delivered.site_id != self.sync.site_id:
            return None
        case = self.store.get_case_by_uuid(delivered.case_record)
        if case is None:
            return None
        outbox = self.store.case_outbox(case.id)
        if not outbox:
            return None
        # the pseudonym exactly as the case's records carried it to the hub
        sent = anonymise_case(case, outbox[0], secret, self.sync)
        if not hmac_equal(sent.patient_key, delivered.patient_key):
            return None
        return case

    def _same_result(self, case: CaseRecord, delivered: DeliveredDxa) -> bool:
        existing = self.store.get_outcome(case.id)
        try:
            incoming = dxa_result_from(delivered.fields, self.settings.follow_up, date.today())
        except FollowUpError:
            return False
        return existing is not None and existing.dxa == incoming

    def _prepare(self, item: OutboxRecord, secret: bytes) -> tuple[AnonymisedRecord, bytes | None]:
        case = self.store.get_case(item.case_id)
        if case is None:
            raise LookupError(f"case {item.case_id} is missing")
        image = None
        withheld = None
        if self.sync.include_images:
            if case.image_file:
                source = (self.settings.data_dir / case.image_file).read_bytes()
                first = anonymise_case(case, item, secret, self.sync)
                deidentified = deidentify_dicom(source, secret, first.patient_key, self.sync)
                image, withheld = deidentified.dicom, deidentified.withheld_code
            else:
                withheld = "image.none"
        outcome = self.store.get_outcome(case.id)
        return anonymise_case(case, item, secret, self.sync, withheld, outcome), image

    def _post(
        self,
        endpoint: str,
        token: str,
        records: Sequence[AnonymisedRecord],
        images: dict[str, bytes],
    ) -> _Answer:
        bundle = transaction_bundle(records, images)
        try:
            response = self.session.post(
                endpoint,
                data=bundle_bytes(bundle),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/fhir+json",
                    "Accept": "application/fhir+json",
                },
                timeout=(self.sync.connect_timeout_s, self.sync.read_timeout_s),
                verify=self.sync.ca_file or True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return _Answer("retry", f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT])
        status = response.status_code
        if 200 <= status < 300:
            if _is_transaction_response(response, len(bundle["entry"])):
                return _Answer("sent")
            return _Answer("retry", f"HTTP {status}: not a transaction-response from the hub")
        if status in CREDENTIAL_STATUSES:
            return _Answer("credentials", _error_text(response))
        if 400 <= status < 500 and status not in RETRY_STATUSES:
            return _Answer("record_refused", _error_text(response))
        return _Answer("retry", _error_text(response))


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def run_sync(settings: Settings) -> SyncResult:
    return Sender(settings).run()


def status_dict(store: CaseStore) -> dict[str, object]:
    status = store.sync_status()
    return {
        "pending": status.counts.get("pending", 0),
        "sent": status.counts.get("sent", 0),
        "failed": status.counts.get("failed", 0),
        "last_attempt_at": status.last_attempt_at,
        "last_success_at": status.last_success_at,
        "last_error": status.last_error,
        "parked": [
            {
                "record_uuid": r.record_uuid,
                "case_id": r.case_id,
                "revision": r.revision,
                "error": r.last_error,
            }
            for r in status.parked
        ],
    }


def format_status(store: CaseStore) -> str:
    return json.dumps(status_dict(store), indent=2, ensure_ascii=False)
