"""The station's own commands: the notify/watchdog protocol of a real `serve`, self-test,
backup and restore, and the support bundle (real subprocesses, sockets and files)."""

from __future__ import annotations

import dataclasses
import http.server
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

from edgeosteo.appliance import HealthLoop, check_health, notify, watchdog_seconds
from edgeosteo.config import REPO_MODELS_DIR, Settings, backend_for_cpu, load_settings
from edgeosteo.intake.types import PatientIdentity
from edgeosteo.store import CaseStore, lock_data_dir

EXE = Path(sys.executable).with_name("edgeosteo")
ADMIN_PASSWORD = "station-admin-pass-1"


def run(*args, env_extra=None, timeout=120):
    env = {**os.environ, "EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env_extra or {})}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1.0)
    return sock


def receive(sock: socket.socket) -> list[str]:
    try:
        return sock.recv(4096).decode().splitlines()
    except TimeoutError:
        return []


# --- notify / watchdog ---------------------------------------------------------------


def test_serve_speaks_ready_then_periodic_watchdog_and_stopping(tmp_path):
    sock = notify_socket(tmp_path / "notify.sock")
    port = free_port()
    env = {
        **os.environ,
        "EDGEOSTEO_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "2000000",  # pings at least every second
    }
    env.pop("WATCHDOG_PID", None)
    data = tmp_path / "data"
    data.mkdir()
    if "receiver" in {f.name for f in dataclasses.fields(Settings)}:
        # the page alone: the DICOM port may be taken by another test run on this machine
        (data / "edgeosteo.toml").write_text("[receiver]\nscp_enabled = false\n")
    server = subprocess.Popen(
        [str(EXE), "--data-dir", str(data), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while lines.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            lines += receive(sock)
            if "READY=1" in lines and "WATCHDOG=1" not in lines:
                # READY=1 means the page really answers
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                    assert json.loads(r.read())["version"]
        assert lines.count("READY=1") == 1
        assert lines.count("WATCHDOG=1") >= 3
        assert lines.index("READY=1") < lines.index("WATCHDOG=1")
        assert any(line.startswith("STATUS=") for line in lines)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        lines += receive(sock)
        assert "STOPPING=1" in lines
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        sock.close()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok", "version": "0.0.0"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _loop_until(loop: HealthLoop, calls: list, count: int) -> None:
    loop.start()
    while len(calls) < count and loop.is_alive():
        time.sleep(0.05)
    loop.stop()
    loop.join(timeout=30)


def test_a_server_that_stops_answering_gets_no_watchdog_ping(tmp_path):
    sock = notify_socket(tmp_path / "n.sock")
    # a listener that accepts connections and never answers: a hung server
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    calls: list[str] = []

    def counted(url, timeout):
        calls.append(url)
        return check_health(url, timeout)

    env = {"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "600000"}
    url = f"http://127.0.0.1:{hung.getsockname()[1]}/healthz"
    _loop_until(HealthLoop(url, 0.3, 0.2, env, check=counted), calls, 3)
    messages = []
    while batch := receive(sock):
        messages += batch
    assert "READY=1" not in messages and "WATCHDOG=1" not in messages
    assert any(m.startswith("STATUS=health check failed") for m in messages)
    hung.close()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    calls.clear()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
    _loop_until(HealthLoop(url, 0.3, 0.2, env, check=counted), calls, 3)
    httpd.shutdown()
    messages = []
    while batch := receive(sock):
        messages += batch
    assert messages.count("READY=1") == 1 and messages.count("WATCHDOG=1") >= 1
    sock.close()


def test_notify_reaches_an_abstract_socket_and_respects_watchdog_pid(tmp_path):
    name = f"edgeosteo-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "5", "WATCHDOG_PID": str(os.getpid())})
    assert watchdog_seconds({}) is None


# --- backend choice ------------------------------------------------------------------


def test_auto_backend_follows_the_cpu(tmp_path):
    assert backend_for_cpu("aarch64", "") == "onnxruntime"
    assert backend_for_cpu("x86_64", "vendor_id\t: GenuineIntel\n") == "openvino"
    assert backend_for_cpu("x86_64", "vendor_id\t: AuthenticAMD\n") == "onnxruntime"
    assert load_settings(data_dir=tmp_path, environ={}).runtime.backend == backend_for_cpu()
    (tmp_path / "edgeosteo.toml").write_text('[runtime]\nbackend = "openvino"\n')
    assert load_settings(data_dir=tmp_path, environ={}).runtime.backend == "openvino"


# --- self-test -----------------------------------------------------------------------


def test_selftest_passes_on_the_shipped_models_through_both_backends(tmp_path):
    result = run("--data-dir", str(tmp_path), "selftest", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"]
    ran = {(c["model"], c["backend"]) for c in report["checks"] if c["backend"]}
    assert {backend for _, backend in ran} == {"onnxruntime", "openvino"}
    assert any(c["check"] == "sha256" and c["ok"] for c in report["checks"])


def _models_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(REPO_MODELS_DIR / "knee-clinical", copy / "knee-clinical")
    return copy


def test_selftest_fails_on_a_tampered_copy_of_the_models(tmp_path):
    models = _models_copy(tmp_path)
    weights = models / "knee-clinical" / "knee_clinical.onnx"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    result = run("--data-dir", str(tmp_path), "--models-dir", str(models), "selftest")
    assert result.returncode == 1
    assert "FAIL knee-clinical sha256" in result.stdout
    assert "model.hash_mismatch" in result.stdout
    assert "SELFTEST FAILED" in result.stdout


def test_selftest_fails_when_an_output_differs_from_the_reference(tmp_path):
    models = _models_copy(tmp_path)
    manifest_path = models / "knee-clinical" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["reference_outputs"][0]["expected"]["p_t_le_-1"] += 0.01
    manifest_path.write_text(json.dumps(manifest))
    result = run("--data-dir", str(tmp_path), "--models-dir", str(models), "selftest")
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2  # the same case, once per backend
    assert all("reference 1" in line and "p_t_le_-1" in line for line in failed)


def test_selftest_fails_with_no_models(tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    result = run("--data-dir", str(tmp_path), "--models-dir", str(empty), "selftest")
    assert result.returncode == 1 and "no models installed" in result.stdout


# --- backup and restore ----------------------------------------------------------------

PATIENT = PatientIdentity(patient_id="PID-778899", name="DOE^JANE", birth_date="19480312")
SECRET = "5ec7e7" * 10
TOKEN = "sync-token-value-abcdef"


def _station(data_dir: Path, cases: int = 2) -> CaseStore:
    store = CaseStore(data_dir)
    for number in range(cases):
        store.save_case(
            {"created_at": f"2025-03-0{number + 1}T10:00:00Z"},
            identity=PATIENT,
            source_bytes=b"DICM-bytes-%d" % number,
            original_name="jane_doe_knee.dcm",
            local_patient_id="MRN-4455",
        )
    (data_dir / "edgeosteo.toml").write_text(
        '[sync]\nendpoint = "https://clinic:hunter2pass@hub.example/"\n'
    )
    secret = data_dir / "site-secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    (data_dir / "sync-token").write_text(TOKEN)
    return store


def test_backup_and_restore_round_trip_and_refuse_a_newer_store(tmp_path):
    source = tmp_path / "source"
    _station(source)
    result = run("--data-dir", str(source), "backup", str(tmp_path / "backups"))
    assert result.returncode == 0, result.stderr
    archive = next((tmp_path / "backups").glob("edgeosteo-backup-*.tar.gz"))
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    target = tmp_path / "target"
    result = run("--data-dir", str(target), "restore", str(archive))
    assert result.returncode == 0, result.stderr
    restored = CaseStore(target)
    assert restored.count_cases() == 2
    with sqlite3.connect(target / "edgeosteo.sqlite3") as connection:
        names = [r[0] for r in connection.execute("SELECT identity_json FROM cases")]
    assert all("DOE^JANE" in n for n in names)
    originals = sorted(p.read_bytes() for p in (target / "images").rglob("*.orig"))
    assert originals == [b"DICM-bytes-0", b"DICM-bytes-1"]
    assert (target / "site-secret").read_text() == SECRET
    assert stat.S_IMODE((target / "site-secret").stat().st_mode) == 0o600

    # the box goes on screening: its store is now newer than the backup
    restored.save_case({"created_at": "2025-03-09T10:00:00Z"})
    refused = run("--data-dir", str(target), "restore", str(archive))
    assert refused.returncode != 0
    assert "newer than the backup" in refused.stderr
    assert CaseStore(target).count_cases() == 3
    forced = run("--data-dir", str(target), "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert CaseStore(target).count_cases() == 2


def test_restore_refuses_while_a_box_holds_the_data_dir(tmp_path):
    source = tmp_path / "source"
    _station(source, cases=1)
    archive = tmp_path / "b.tar.gz"
    serving = lock_data_dir(source)  # a backup is taken while the box runs
    try:
        assert run("--data-dir", str(source), "backup", str(archive)).returncode == 0
    finally:
        serving.release()
    target = tmp_path / "target"
    _station(target, cases=3)
    held = lock_data_dir(target)  # as a running `edgeosteo serve` holds it
    try:
        refused = run("--data-dir", str(target), "restore", str(archive), "--force")
    finally:
        held.release()
    assert refused.returncode != 0
    assert "cli.data_dir_in_use" in refused.stderr and f"pid {os.getpid()}" in refused.stderr
    assert CaseStore(target).count_cases() == 3
    with tarfile.open(archive) as backup:  # a backup never carries the lock
        assert "edgeosteo.lock" not in backup.getnames()
    assert run("--data-dir", str(target), "restore", str(archive), "--force").returncode == 0
    assert CaseStore(target).count_cases() == 1


def test_restore_refuses_a_damaged_backup(tmp_path):
    source = tmp_path / "source"
    _station(source, cases=1)
    archive = tmp_path / "b.tar.gz"
    assert run("--data-dir", str(source), "backup", str(archive)).returncode == 0
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as old, tarfile.open(damaged, "w:gz") as new:
        for member in old:
            data = old.extractfile(member).read()
            if member.name == "site-secret":
                data = b"x" + data[1:]
            new.addfile(member, io.BytesIO(data))
    result = run("--data-dir", str(tmp_path / "target"), "restore", str(damaged))
    assert result.returncode != 0 and "sha256" in result.stderr


# --- support bundle ----------------------------------------------------------------------


def test_support_bundle_has_the_facts_and_no_secret_or_patient_data(tmp_path):
    data = tmp_path / "data"
    _station(data)
    # the web session key and the first-start password, made by a real first serve setup
    from edgeosteo.app import build

    build(load_settings(data_dir=data, environ={}))
    web_key = (data / "web-secret-key").read_text()
    result = run("--data-dir", str(data), "support-bundle", str(tmp_path))
    assert result.returncode == 0, result.stderr
    bundle = next(tmp_path.glob("edgeosteo-support-*.tar.gz"))
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    assert {"versions.json", "models.json", "settings.json", "store.json"} <= set(members)
    models = json.loads(members["models.json"])
    clinical = models["knee-clinical"]["files"][0]
    assert clinical["expected_sha256"] == clinical["actual_sha256"]
    assert json.loads(members["store.json"])["cases"] == 2
    assert json.loads(members["selftest.json"])["checks"]
    settings = json.loads(members["settings.json"])
    assert settings["sync"]["endpoint"] == "https://<redacted>@hub.example/"
    everything = b"\n".join(members.values())
    for forbidden in (
        SECRET,
        TOKEN,
        web_key,
        ADMIN_PASSWORD,
        "hunter2pass",
        "DOE^JANE",
        "PID-778899",
        "19480312",
        "MRN-4455",
        "jane_doe_knee",
        "DICM-bytes",
    ):
        assert forbidden.encode() not in everything, forbidden


def test_support_bundle_scrubs_identifiers_wherever_they_turn_up(tmp_path):
    from edgeosteo.maintenance import scrub, support_bundle

    assert "one-time password <redacted>" in scrub("with one-time password Xy7_q", set())
    data = tmp_path / "data"
    store = _station(data, cases=1)
    store.save_case({"created_at": "2025-03-05T10:00:00Z"}, identity=PatientIdentity(name="张三丰"))
    settings = load_settings(data_dir=data, environ={})
    info = {"note": "DOE^JANE seen", "other": "张三丰", "secret": SECRET}
    bundle = support_bundle(settings, tmp_path, info, environ={})
    with tarfile.open(bundle) as tar:
        versions = tar.extractfile("versions.json").read().decode()
    assert "DOE^JANE" not in versions and "张三丰" not in versions and SECRET not in versions
    assert versions.count("<redacted>") == 3
