"""A WSGI app served by waitress on loopback in a daemon thread, for tests that need a real
server, and stopped without the loop thread's "Bad file descriptor" (closing the sockets
under a running select() raises it in that thread; after a stop that is the stop)."""

from __future__ import annotations

import threading

import waitress


class LoopbackServer:
    def __init__(self, app, threads: int = 2, port: int = 0) -> None:
        self._server = waitress.create_server(app, host="127.0.0.1", port=port, threads=threads)
        self._stopping = threading.Event()
        self.port: int = self._server.effective_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            if not self._stopping.is_set():
                raise

    def close(self) -> None:
        self._stopping.set()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self._server.close()
