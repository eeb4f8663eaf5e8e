"""The sender against a real hub on loopback, through a proxy that injects faults.

Every test ends on the same invariant: each record the box stored is at the hub exactly
once, and the box knows it was sent. The kill test runs this file as a harness process
that forks a sender per run and SIGKILLs it at a random moment.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import http.client
import json
import os
import random
import signal
import socket
import socketserver
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w
from loopback import LoopbackServer
from sqlalchemy import select

from edgeosteo.config import HubSettings, Settings, load_settings
from edgeosteo.hub import create_hub_app
from edgeosteo.hub.store import HubStore
from edgeosteo.hub.store import records as records_table
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore
from edgeosteo.sync import Sender, SyncConfigError, backoff_delay, check_endpoint

SITE, DEVICE = "site-a", "box-1"
NO_MODELS = "no-models"

# --- shared helpers (test_hub and test_anonymise import these) ---------------------------


@dataclass
class Hub:
    url: str
    port: int
    store: HubStore
    token: str
    server: object


def start_hub(data_dir: Path, database_url: str | None = None, port: int = 0) -> Hub:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = HubStore(database_url or f"sqlite:///{data_dir / 'hub.sqlite3'}")
    token = store.add_credential("device", SITE, DEVICE)
    app = create_hub_app(HubSettings(), data_dir, store)
    server = LoopbackServer(app, threads=4, port=port)
    bound = server.port
    return Hub(f"http://127.0.0.1:{bound}/fhir", bound, store, token, server)


def stop_hub(hub: Hub) -> None:
    hub.server.close()
    hub.store.close()


def box_settings(data_dir: Path, endpoint: str, token: str, **sync: object) -> Settings:
    """A box whose settings file is on disk, so a separate process loads the same ones."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "sync-token").write_text(token + "\n")
    config = {
        "sync": {
            "endpoint": endpoint,
            "site_id": SITE,
            "device_id": DEVICE,
            "backoff_base_s": 0.0,
            "read_timeout_s": 0.5,
            "connect_timeout_s": 0.5,
            **sync,
        }
    }
    (data_dir / "edgeosteo.toml").write_text(tomli_w.dumps(config))
    return load_settings(data_dir=data_dir, environ={}, models_dir=str(data_dir.parent / NO_MODELS))


_TEMPLATE: dict | None = None


def result_template() -> dict:
    """One real clinical-only screening's JSON (no models installed: quick)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        settings = load_settings(
            data_dir=Path("/nonexistent-edgeosteo"), environ={}, models_dir="/nonexistent"
        )
        screening = Screener(settings).screen(
            None, {"age_years": 71, "sex": "female", "weight_kg": 50, "height_m": 1.52}
        )
        _TEMPLATE = screening.to_dict()
    return json.loads(json.dumps(_TEMPLATE))


def add_cases(store: CaseStore, count: int, start: int = 0) -> list[str]:
    uuids = []
    for number in range(start, start + count):
        result = result_template()
        result["screening_id"] = str(uuid.uuid4())
        result["clinical"]["answers"]["age_years"] = 45 + number % 50
        store.save_case(result, local_patient_id=f"PAT-{number:05d}")
        uuids.append(result["screening_id"])
    return uuids


def box_uuids(store: CaseStore) -> set[str]:
    with store.connect() as connection:
        return {r[0] for r in connection.execute("SELECT record_uuid FROM outbox")}


def outbox_states(store: CaseStore) -> collections.Counter:
    with store.connect() as connection:
        return collections.Counter(r[0] for r in connection.execute("SELECT state FROM outbox"))


def assert_exactly_once(store: CaseStore, hub: Hub, expected: int) -> None:
    at_hub = hub.store.record_uuids()
    assert len(at_hub) == len(set(at_hub)) == expected
    assert set(at_hub) == box_uuids(store)
    assert outbox_states(store) == {"sent": expected}
    _, created, _ = hub.store.delivery_totals()
    assert created == expected  # no record was ever created twice


def assert_current_is_latest(store: CaseStore, hub: Hub) -> None:
    """At the hub, each case's current record is the box's latest revision of it."""
    with store.connect() as connection:
        latest = dict(
            connection.execute(
                "SELECT c.uuid, o.record_uuid FROM outbox o JOIN cases c ON c.id = o.case_id "
                "WHERE o.revision = (SELECT max(revision) FROM outbox WHERE case_id = o.case_id)"
            ).fetchall()
        )
    for case_uuid, record_uuid in latest.items():
        history = hub.store.case_history(SITE, DEVICE, case_uuid)
        current = [r["record_uuid"] for r in history if r["superseded_by"] is None]
        assert current == [record_uuid], (case_uuid, history)


def drain(settings: Settings, store: CaseStore, runs: int = 60) -> None:
    for _ in range(runs):
        Sender(settings, store, rng=random.Random(0)).run()
        if outbox_states(store).get("pending", 0) == 0:
            return
    raise AssertionError(f"outbox not drained after {runs} runs: {outbox_states(store)}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- a fault-injecting proxy in front of the hub -------------------------------------------


class FaultProxy:
    """Takes one fault from the script per connection; "forward" when the script is empty.

    500: answers 500. stall: reads the request and never answers (the sender times out).
    reset_mid_body: reads half the body, then resets the connection. drop_response: the
    hub gets and stores the request, the sender gets a reset instead of the answer.
    portal: a captive portal's 200 with an HTML page.
    """

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.script: collections.deque[str] = collections.deque()
        self.used: list[str] = []
        # every request body that reached the proxy in full: what left the box
        self.bodies: list[bytes] = []
        self.asked = 0  # GETs: the box asking the hub for DXA results
        self.stalled = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _reset(connection: socket.socket) -> None:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()

    def _handle(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        request_line = reader.readline().decode()
        headers: dict[str, str] = {}
        while (line := reader.readline().decode()) not in ("\r\n", "\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        # the script's faults are for deliveries; the box's asking for DXA results passes
        if request_line.startswith("GET "):
            self.asked += 1
            fault = "forward"
        else:
            fault = self.script.popleft() if self.script else "forward"
            self.used.append(fault)
        if fault == "reset_mid_body":
            reader.read(length // 2)
            self._reset(connection)
            return
        body = reader.read(length)
        if body:
            self.bodies.append(body)
        if fault == "stall":
            self.stalled.set()
            self.release.wait(10)
            connection.close()
            return
        if fault in ("500", "portal"):
            status, kind, payload = (
                ("500 Internal Server Error", "application/json", b'{"error": "boom"}')
                if fault == "500"
                else ("200 OK", "text/html", b"<html>Welcome to the clinic Wi-Fi</html>")
            )
            self._answer(connection, status, kind, payload)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        method, path, _ = request_line.split(" ", 2)
        forwarded = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        upstream.request(method, path, body=body, headers=forwarded)
        response = upstream.getresponse()
        payload = response.read()
        upstream.close()
        if fault == "drop_response":
            self._reset(connection)
            return
        self._answer(
            connection,
            f"{response.status} {response.reason}",
            response.getheader("Content-Type", "application/octet-stream"),
            payload,
        )

    @staticmethod
    def _answer(connection: socket.socket, status: str, kind: str, payload: bytes) -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(head.encode() + payload)
        connection.close()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    running = start_hub(tmp_path / "hub")
    yield running
    stop_hub(running)


@pytest.fixture
def proxy(hub) -> Iterator[FaultProxy]:
    running = FaultProxy(hub.port)
    yield running
    running.close()


# --- tests ---------------------------------------------------------------------------------


def test_records_arrive_once_through_down_hub_500s_timeouts_and_resets(tmp_path, hub):
    port = free_port()  # nothing listens here yet: the hub is down
    settings = box_settings(
        tmp_path / "box", f"http://127.0.0.1:{port}/fhir", hub.token, batch_size=7
    )
    store = CaseStore(settings.data_dir)
    add_cases(store, 40)
    for _ in range(3):
        result = Sender(settings, store).run()
        assert result.stopped == "hub_unavailable" and result.sent == 0
    assert outbox_states(store) == {"pending": 40}
    first = store.due_outbox(time.time(), 1, 0)[0]
    assert first.attempts == 3 and "ConnectionError" in (first.last_error or "")

    proxy = FaultProxy(hub.port, port=port)  # the hub comes up, on a flaky line
    faults = ["500", "stall", "reset_mid_body", "drop_response", "portal", "500"]
    faults += ["forward", "drop_response", "reset_mid_body", "forward", "drop_response"]
    proxy.script.extend(faults)
    try:
        drain(settings, store)
    finally:
        proxy.close()
    assert not proxy.script, "every scripted fault was met"
    assert_exactly_once(store, hub, 40)
    _, _, replayed = hub.store.delivery_totals()
    assert replayed >= 7  # the dropped answers: the hub had those records and kept one copy
    status = store.sync_status()
    assert status.last_success_at and status.counts == {"sent": 40}


def test_a_timeout_leaves_records_pending_and_never_holds_the_database(tmp_path, hub, proxy):
    settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
    store = CaseStore(settings.data_dir)
    add_cases(store, 3)
    proxy.script.append("stall")
    outcome: list = []
    sender = threading.Thread(target=lambda: outcome.append(Sender(settings, store).run()))
    sender.start()
    assert proxy.stalled.wait(10)
    # mid-request, a screening can still write at once (timeout 0: no waiting for a lock)
    connection = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("ROLLBACK")
    connection.close()
    add_cases(store, 1, start=3)
    sender.join(10)
    assert outcome[0].stopped == "hub_unavailable" and outcome[0].deferred == 3
    assert "Timeout" in (store.sync_status().last_error or "")
    drain(settings, store)
    assert_exactly_once(store, hub, 4)


def test_a_captive_portal_200_is_not_taken_as_delivery(tmp_path, hub, proxy):
    settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
    store = CaseStore(settings.data_dir)
    add_cases(store, 2)
    proxy.script.append("portal")
    result = Sender(settings, store).run()
    assert result.sent == 0 and result.deferred == 2
    assert outbox_states(store) == {"pending": 2}
    assert hub.store.count_records() == 0


def test_a_refused_record_is_parked_and_the_rest_of_its_batch_goes(tmp_path, hub):
    settings = box_settings(tmp_path / "box", hub.url, hub.token, batch_size=10)
    store = CaseStore(settings.data_dir)
    uuids = add_cases(store, 5)
    with store.transaction() as connection:  # a record the hub cannot accept
        connection.execute("UPDATE outbox SET capture_time='' WHERE record_uuid=?", (uuids[2],))
    result = Sender(settings, store).run()
    assert (result.sent, result.parked) == (4, 1)
    status = store.sync_status()
    assert status.counts == {"sent": 4, "failed": 1}
    (parked,) = status.parked
    assert parked.record_uuid == uuids[2]
    assert parked.last_error.startswith("HTTP 400") and "captureTime" in parked.last_error
    assert set(hub.store.record_uuids()) == set(uuids) - {uuids[2]}
    # the admin fixes the cause and queues it again
    with store.transaction() as connection:
        connection.execute(
            "UPDATE outbox SET capture_time='2026-01-05T10:00:00+00:00' WHERE record_uuid=?",
            (uuids[2],),
        )
    assert store.retry_failed() == 1
    drain(settings, store)
    assert_exactly_once(store, hub, 5)


def test_a_refused_token_blames_no_record(tmp_path, hub):
    settings = box_settings(tmp_path / "box", hub.url, "not-a-token")
    store = CaseStore(settings.data_dir)
    add_cases(store, 2)
    result = Sender(settings, store).run()
    assert result.stopped == "credentials_refused" and result.parked == 0
    assert outbox_states(store) == {"pending": 2}
    assert store.sync_status().last_error.startswith("HTTP 401")
    (settings.data_dir / "sync-token").write_text(hub.token)
    drain(settings, store)
    assert_exactly_once(store, hub, 2)


def test_a_box_cannot_send_as_another_device(tmp_path, hub):
    other = hub.store.add_credential("device", SITE, "box-2")
    settings = box_settings(tmp_path / "box", hub.url, other)
    store = CaseStore(settings.data_dir)
    add_cases(store, 1)
    assert Sender(settings, store).run().stopped == "credentials_refused"
    assert "HTTP 403" in store.sync_status().last_error
    assert hub.store.count_records() == 0


def test_configuration_is_checked_before_anything_is_sent(tmp_path):
    settings = box_settings(tmp_path / "box", "http://192.0.2.10/fhir", "token")
    with pytest.raises(SyncConfigError, match="https"):
        check_endpoint(settings.sync)
    (settings.data_dir / "sync-token").unlink()
    local = box_settings(tmp_path / "box", "http://127.0.0.1:9/fhir", "x")
    (local.data_dir / "sync-token").write_text("")
    with pytest.raises(SyncConfigError, match="empty"):
        Sender(local).run()
    assert "empty" in CaseStore(local.data_dir).sync_status().last_error


def test_backoff_is_exponential_with_full_jitter(tmp_path):
    sync = box_settings(tmp_path / "box", "https://hub.invalid/fhir", "t").sync
    sync = type(sync)(**{**sync.__dict__, "backoff_base_s": 30.0, "backoff_cap_s": 3600.0})
    rng = random.Random(1)
    for attempts, ceiling in ((0, 30.0), (1, 60.0), (3, 240.0), (7, 3600.0), (60, 3600.0)):
        draws = [backoff_delay(attempts, sync, rng) for _ in range(400)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # full jitter spreads over the whole interval, not around the ceiling
        assert min(draws) < 0.1 * ceiling and max(draws) > 0.9 * ceiling


def test_retry_times_follow_the_backoff_and_a_clock_stepped_back_does_not_strand(tmp_path, hub):
    settings = box_settings(
        tmp_path / "box",
        f"http://127.0.0.1:{free_port()}/fhir",
        hub.token,
        backoff_base_s=100.0,
        backoff_cap_s=1000.0,
    )
    store = CaseStore(settings.data_dir)
    add_cases(store, 1)
    now = 1_000_000.0
    Sender(settings, store, clock=lambda: now, rng=random.Random(3)).run()
    (record,) = store.due_outbox(now + 100.0, 5, 1000.0)
    assert now <= record.next_attempt_at <= now + 100.0 and record.attempts == 1
    assert store.due_outbox(now - 1, 5, 1000.0) == []  # not due before its time
    # the clock jumps back a year (it was wrong when the retry was set): due at once
    assert store.due_outbox(now - 365 * 86400, 5, 1000.0)


def test_only_one_sender_runs_at_a_time(tmp_path, hub):
    import fcntl

    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    store = CaseStore(settings.data_dir)
    add_cases(store, 1)
    with open(settings.data_dir / "sync.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert Sender(settings, store).run().stopped == "busy"
    assert Sender(settings, store).run().sent == 1


def test_sync_command_sends_and_shows_status(tmp_path, hub):
    from click.testing import CliRunner

    from edgeosteo.cli import main

    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    add_cases(CaseStore(settings.data_dir), 3)
    args = ["--data-dir", str(settings.data_dir), "--models-dir", str(tmp_path / NO_MODELS)]
    sent = CliRunner().invoke(main, [*args, "sync"])
    assert sent.exit_code == 0, sent.output
    assert "sent 3" in sent.output
    shown = CliRunner().invoke(main, [*args, "sync", "--status"])
    status = json.loads(shown.output)
    assert (status["pending"], status["sent"], status["failed"]) == (0, 3, 0)
    assert status["last_success_at"]


# --- revisions: a case decided again after its record left ---------------------------------

ANSWERS = {"age_years": 81, "sex": "female", "weight_kg": 45, "height_m": 1.55}


def unanswered_case(settings: Settings, store: CaseStore, patient: str = "PAT-R") -> int:
    """A case screened without clinical answers, as the receiver stores one."""
    result = Screener(settings).screen(None, {}).to_dict()
    assert result["referral"]["category"] == "cannot_assess"
    return store.save_case(result, local_patient_id=patient, state="needs_answers").id


def add_answers(settings: Settings, store: CaseStore, case_id: int, answers=ANSWERS) -> None:
    """The technician's path: the case page's answers decide the case again."""
    from edgeosteo.cases import CaseWorkflow

    CaseWorkflow(Screener(settings), store).add_answers(case_id, answers)


def dashboard(hub: Hub):
    hub_settings = HubSettings()
    return hub.store.dashboard(hub_settings.age_band_edges, hub_settings.referred_categories)


def test_answers_after_send_go_as_a_revision_that_the_hub_makes_current(tmp_path, hub, proxy):
    settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
    store = CaseStore(settings.data_dir)
    case_id = unanswered_case(settings, store)
    drain(settings, store)
    (first,) = store.case_outbox(case_id)
    assert (first.state, first.revision) == ("sent", 1)
    assert dashboard(hub).total == 1

    add_answers(settings, store, case_id)
    first, revision = store.case_outbox(case_id)
    assert (revision.state, revision.revision, revision.supersedes) == (
        "pending",
        2,
        first.record_uuid,
    )
    assert revision.record_uuid != first.record_uuid
    assert (revision.capture_time, revision.boot_id) == (first.capture_time, first.boot_id)
    proxy.script.append("drop_response")  # the hub files the revision, the answer is lost
    drain(settings, store)
    assert proxy.used[-2:] == ["drop_response", "forward"]  # the revision went twice
    assert_exactly_once(store, hub, 2)
    assert hub.store.delivery_totals()[2] == 1  # the replayed revision was not stored again
    history = hub.store.case_history(SITE, DEVICE, store.get_case(case_id).uuid)
    assert [(r["revision"], r["referral_category"]) for r in history] == [
        (1, "cannot_assess"),
        (2, "refer"),
    ]
    assert history[0]["superseded_by"] == revision.record_uuid
    assert history[1]["superseded_by"] is None and history[1]["supersedes"] == first.record_uuid
    assert history[1]["patient_key"] == history[0]["patient_key"]
    data = dashboard(hub)
    assert data.total == 1 and data.superseded_records == 1
    assert data.referral_rates == {("female", "80-89"): (1, 1)}
    assert sum(data.per_site_week.values()) == 1
    # the revision carries what a first record carries, nothing that names the patient
    body = proxy.bodies[-1].decode()
    assert revision.record_uuid in body and "PAT-R" not in body
    assert '"amended"' in body and first.record_uuid in body


def test_answers_while_the_record_waits_change_it_and_only_one_is_sent(tmp_path, hub):
    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    store = CaseStore(settings.data_dir)
    case_id = unanswered_case(settings, store)
    add_answers(settings, store, case_id)
    add_answers(settings, store, case_id, {**ANSWERS, "age_years": 84})
    (only,) = store.case_outbox(case_id)
    assert (only.revision, only.state) == (1, "pending")
    drain(settings, store)
    assert_exactly_once(store, hub, 1)
    stored = hub.store.get_record(only.record_uuid)
    assert (stored["referral_category"], stored["age_years"]) == ("refer", 84)
    assert stored["superseded_by"] is None
    # the same answers again change nothing: no revision (decided in a later second, so only
    # the result's created_at differs)
    time.sleep(1.1)
    add_answers(settings, store, case_id, {**ANSWERS, "age_years": 84})
    assert len(store.case_outbox(case_id)) == 1


def test_a_record_whose_answer_was_lost_is_revised_not_changed(tmp_path, hub, proxy):
    """The hub may hold a pending record already (its answer was lost): a change goes as a
    revision, because a resend of the same record would be kept as the first copy."""
    settings = box_settings(tmp_path / "box", f"http://127.0.0.1:{proxy.port}/fhir", hub.token)
    store = CaseStore(settings.data_dir)
    case_id = unanswered_case(settings, store)
    proxy.script.append("drop_response")
    assert Sender(settings, store).run().deferred == 1
    (first,) = store.case_outbox(case_id)
    assert first.state == "pending" and first.offered
    add_answers(settings, store, case_id)
    drain(settings, store)
    assert_exactly_once(store, hub, 2)
    assert_current_is_latest(store, hub)
    assert dashboard(hub).referral_rates == {("female", "80-89"): (1, 1)}


def test_a_revision_of_a_parked_record_arrives_first_and_stays_current(tmp_path, hub):
    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    store = CaseStore(settings.data_dir)
    case_id = unanswered_case(settings, store)
    (first,) = store.case_outbox(case_id)
    store.mark_offered([first.record_uuid])  # the sender took it and the hub refused it
    store.mark_failed(first.record_uuid, "HTTP 400: refused", "2026-05-06T08:00:00+00:00")
    add_answers(settings, store, case_id)
    drain(settings, store)
    assert hub.store.record_uuids() == [store.case_outbox(case_id)[1].record_uuid]
    assert store.retry_failed() == 1  # the admin sends the parked first record after all
    drain(settings, store)
    assert_exactly_once(store, hub, 2)
    assert_current_is_latest(store, hub)
    history = hub.store.case_history(SITE, DEVICE, store.get_case(case_id).uuid)
    # a summary is built when it is sent: the late first record carries the answers too
    assert [(r["revision"], r["referral_category"]) for r in history] == [
        (1, "refer"),
        (2, "refer"),
    ]
    assert history[0]["superseded_by"] == history[1]["record_uuid"]
    assert dashboard(hub).total == 1
    assert dashboard(hub).referral_rates == {("female", "80-89"): (1, 1)}


# the box's schema before revisions (MIGRATIONS[:3] as released)
OLD_BOX_SCHEMA_VERSION = 3


def test_a_box_store_from_before_revisions_is_migrated_in_place(tmp_path, hub):
    from edgeosteo.store import MIGRATIONS

    settings = box_settings(tmp_path / "box", hub.url, hub.token)
    connection = sqlite3.connect(settings.data_dir / "edgeosteo.sqlite3", isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:OLD_BOX_SCHEMA_VERSION], start=1):
        connection.executescript(f"BEGIN;{script}PRAGMA user_version={number};COMMIT;")
    template = Screener(settings).screen(None, {}).to_dict()
    rows = {"sent": (1, "sent"), "waiting": (0, "pending"), "retrying": (2, "pending")}
    for number, (name, (attempts, state)) in enumerate(rows.items(), start=1):
        connection.execute(
            "INSERT INTO cases (id, uuid, created_at, local_patient_id, state, result_json) "
            "VALUES (?,?,?,?,?,?)",
            (
                number,
                name,
                template["created_at"],
                f"P-{name}",
                "needs_answers",
                json.dumps({**template, "screening_id": name}),
            ),
        )
        connection.execute(
            "INSERT INTO outbox (record_uuid, case_id, capture_time, boot_id, monotonic_ns, "
            "clock_synchronised, state, attempts) VALUES (?,?,?,?,?,?,?,?)",
            (name, number, template["created_at"], "boot", 1, 1, state, attempts),
        )
    connection.close()

    store = CaseStore(settings.data_dir)
    assert store.schema_version == len(MIGRATIONS) > OLD_BOX_SCHEMA_VERSION
    migrated = {r.record_uuid: r for case in (1, 2, 3) for r in store.case_outbox(case)}
    assert {u: (r.revision, r.supersedes, r.offered) for u, r in migrated.items()} == {
        "sent": (1, None, True),
        "waiting": (1, None, False),
        "retrying": (1, None, True),  # tried before: the hub may have it
    }
    for case_id in (1, 2, 3):
        add_answers(settings, store, case_id)
    assert [len(store.case_outbox(c)) for c in (1, 2, 3)] == [2, 1, 2]
    assert store.case_outbox(1)[1].supersedes == "sent"
    drain(settings, store)
    # "sent" is at the hub only as the box says; its revision arrives without it
    assert sorted(hub.store.record_uuids()) == sorted(
        [
            store.case_outbox(1)[1].record_uuid,
            "waiting",
            "retrying",
            store.case_outbox(3)[1].record_uuid,
        ]
    )
    assert_current_is_latest(store, hub)
    assert dashboard(hub).total == 3


# --- SIGKILL at random points ----------------------------------------------------------------

KILL_RUNS = 200
CASES_PER_RUN = 2


def test_sender_killed_at_random_points_over_200_runs_loses_and_duplicates_nothing(tmp_path, hub):
    settings = box_settings(tmp_path / "box", hub.url, hub.token, batch_size=2)
    CaseStore(settings.data_dir)
    harness = subprocess.run(
        [sys.executable, __file__, "kill-harness", str(settings.data_dir), str(KILL_RUNS), "7"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EDGEOSTEO_MODELS_DIR": str(tmp_path / NO_MODELS)},
    )
    assert harness.returncode == 0, harness.stderr[-3000:]
    summary = json.loads(harness.stdout.strip().splitlines()[-1])
    assert summary["runs"] == KILL_RUNS
    store = CaseStore(settings.data_dir)
    summary["at_hub_before_drain"] = hub.store.count_records()
    summary["replayed"] = hub.store.delivery_totals()[2]
    # the killed senders delivered most of it between kills; a clean run sends the rest
    assert summary["at_hub_before_drain"] > 0
    drain(settings, store)
    records = len(box_uuids(store))
    assert store.count_cases() == KILL_RUNS * CASES_PER_RUN
    assert records == KILL_RUNS * CASES_PER_RUN + summary["revisions"]
    assert_exactly_once(store, hub, records)
    assert_current_is_latest(store, hub)
    # and the current record holds the box's last result of every case
    with hub.store.engine.connect() as connection:
        current = dict(
            connection.execute(
                select(records_table.c.record_uuid, records_table.c.age_years).where(
                    records_table.c.superseded_by.is_(None)
                )
            ).all()
        )
    for case in store.search_cases(limit=KILL_RUNS * CASES_PER_RUN):
        latest = store.case_outbox(case.id)[-1]
        assert current[latest.record_uuid] == min(
            case.result["clinical"]["answers"]["age_years"], 90
        )
    print(f"kill harness: {summary}")


def _kill_harness(data_dir: str, runs: int, seed: int) -> None:
    """Each run: store new cases, fork a sender, decide an earlier case again while it may
    be sending, SIGKILL it after a random delay."""
    settings = load_settings(data_dir=data_dir, environ={})
    store = CaseStore(settings.data_dir)
    result_template()
    rng = random.Random(seed)
    killed = finished = 0
    for run in range(runs):
        uuids = add_cases(store, CASES_PER_RUN, start=run * CASES_PER_RUN)
        child = os.fork()
        if child == 0:
            try:
                Sender(settings, CaseStore(settings.data_dir)).run()
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.1))
        # every other run one of the cases this sender has just taken, else any case
        case = (
            store.get_case_by_uuid(rng.choice(uuids))
            if run % 2
            else store.get_case(rng.randint(1, store.count_cases()))
        )
        result = copy.deepcopy(case.result)
        result["clinical"]["answers"]["age_years"] += 1
        store.update_result(case.id, result, case.state)
        time.sleep(rng.uniform(0.0, 0.1))
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            killed += 1
        else:
            finished += 1
    with store.connect() as connection:
        revisions = connection.execute("SELECT COUNT(*) FROM outbox WHERE revision > 1")
        revised = int(revisions.fetchone()[0])
    print(json.dumps({"runs": runs, "killed": killed, "finished": finished, "revisions": revised}))


if __name__ == "__main__" and sys.argv[1:2] == ["kill-harness"]:
    _kill_harness(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


def test_the_settings_page_shows_sync_status_and_parked_records(app, admin_client):
    store = app.extensions["edgeosteo"].store
    uuids = add_cases(store, 3)
    store.mark_sent(uuids[:1], "2026-05-06T07:08:09+00:00")
    store.mark_failed(
        uuids[1], "HTTP 400: record x: captureTime is required", "2026-05-06T08:00:00+00:00"
    )
    page = admin_client.get("/settings/").get_data(as_text=True)
    parked_case = store.get_case_by_uuid(uuids[1])
    assert "2026-05-06T07:08:09+00:00" in page
    assert "captureTime is required" in page
    assert f'href="/cases/{parked_case.id}"' in page
    assert ": 1 · " in page  # one pending, one sent, one failed
