"""Running as a systemd service: the sd_notify protocol and the watchdog health loop.

``edgeosteo serve`` under ``Type=notify`` sends READY=1 once the page really answers, then
WATCHDOG=1 each time a health check of the running server succeeds. The check is an HTTP
request to the server's own ``/healthz`` through waitress, so a hung worker pool, a dead
listener or a wedged store stops the pings and systemd restarts the service. A degraded
answer (503: a model file failed its hash) still counts as alive: a restart cannot repair a
tampered file, so it is reported in STATUS= and the page says so instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify(3) datagram; False when not running under a notify socket."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode("utf-8"))
    return True


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """WatchdogSec as passed by systemd, or None when the watchdog is off for this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


def health_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


@dataclass(frozen=True)
class HealthResult:
    alive: bool
    status: str


def check_health(url: str, timeout_s: float) -> HealthResult:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.loads(response.read() or b"{}")
            return HealthResult(True, f"ok, version {body.get('version', '?')}")
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return HealthResult(True, "degraded: a model failed verification (models verify)")
        return HealthResult(False, f"health check answered HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        return HealthResult(False, f"health check failed: {exc}")


class HealthLoop(threading.Thread):
    """Checks the server and speaks sd_notify: READY=1 once, then WATCHDOG=1 per success."""

    # how often to look before the first successful answer
    STARTUP_POLL_S = 0.2

    def __init__(
        self,
        url: str,
        interval_s: float,
        timeout_s: float,
        environ: Mapping[str, str] | None = None,
        check: Callable[[str, float], HealthResult] = check_health,
    ) -> None:
        super().__init__(name="edgeosteo-health", daemon=True)
        self.environ = dict(os.environ if environ is None else environ)
        watchdog = watchdog_seconds(self.environ)
        # sd_watchdog_enabled(3): ping at half the timeout at the latest
        self.interval_s = min(interval_s, watchdog / 2) if watchdog else interval_s
        self.timeout_s = min(timeout_s, self.interval_s) if watchdog else timeout_s
        self.watchdog = watchdog is not None
        self.url = url
        self._check = check
        self._stop_event = threading.Event()
        self.ready = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        last_status = ""
        while not self._stop_event.is_set():
            result = self._check(self.url, self.timeout_s)
            messages = []
            if result.alive and not self.ready.is_set():
                messages.append("READY=1")
            elif result.alive and self.watchdog:
                messages.append("WATCHDOG=1")
            if result.status != last_status:
                messages.append(f"STATUS={result.status}")
                last_status = result.status
            if messages:
                notify("\n".join(messages), self.environ)
            if result.alive:
                self.ready.set()
            self._stop_event.wait(self.interval_s if self.ready.is_set() else self.STARTUP_POLL_S)


def serve_with_watchdog(
    app,
    host: str,
    port: int,
    threads: int,
    interval_s: float,
    timeout_s: float,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Serve the app with waitress, with the health loop speaking to systemd alongside."""
    import waitress

    server = waitress.create_server(app, host=host, port=port, threads=threads, ident="edgeosteo")
    loop = HealthLoop(health_url(host, server.effective_port), interval_s, timeout_s, environ)

    def stop(signum, _frame) -> None:
        # systemd stops with SIGTERM: say so, then leave waitress's loop through SystemExit
        loop.stop()
        notify("STOPPING=1", loop.environ)
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    if loop.environ.get("NOTIFY_SOCKET"):
        loop.start()
    try:
        server.run()
    finally:
        loop.stop()
        signal.signal(signal.SIGTERM, previous)
        server.close()
