"""One process at a time on a data directory: an exclusive ``flock`` on
``<data_dir>/edgeosteo.lock``, held for the life of the process that took it.

``edgeosteo serve`` (the page, the receiver and its worker) and ``edgeosteo restore`` take it
before they touch anything, so a second instance started by mistake refuses at once instead
of putting the live instance's running jobs back in the queue. The holder's pid is written
in the file so the refusal can name it. The kernel drops the lock when the process dies,
SIGKILL and power cuts included, so no stale lock is ever left to clear by hand.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edgeosteo.errors import EdgeOsteoError

LOCK_NAME = "edgeosteo.lock"


class DataDirInUse(EdgeOsteoError):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.pid = pid
        holder = f"pid {pid}" if pid else "another process"
        super().__init__("cli.data_dir_in_use", f"{data_dir} is held by {holder}")


class DataDirLock:
    """The held lock; ``release`` (or the process ending) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take the data directory's lock without waiting, or raise DataDirInUse."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            pid = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
        except (OSError, ValueError):
            pid = None
        os.close(fd)
        raise DataDirInUse(data_dir, pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(path, fd)
