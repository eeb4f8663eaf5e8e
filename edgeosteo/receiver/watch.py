"""A watched folder for consoles that can only export to a folder or a USB stick.

A file is taken once its size and modification time have not changed for
``watch_stable_seconds`` (a copy in progress keeps changing both). It is then written into
the box like a received image and screened by the worker; afterwards it moves to
``processed/`` or, with a ``<name>.reason.txt`` beside it, to ``rejected/``. Until then it
stays where it is, so a crash never loses a file that was not yet in the box.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom

from edgeosteo.config import AnatomySettings, ReceiverSettings
from edgeosteo.intake.detect import detect_kind
from edgeosteo.messages import text
from edgeosteo.receiver.eligibility import Eligibility, HeaderFacts, assess_eligibility
from edgeosteo.receiver.inbox import Inbox
from edgeosteo.store import QueueFull, ReceivedInstance

logger = logging.getLogger(__name__)

PROCESSED_DIR = "processed"
REJECTED_DIR = "rejected"
REASON_SUFFIX = ".reason.txt"
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", REASON_SUFFIX)
_RASTER_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float


class FolderWatcher:
    def __init__(
        self,
        folder: Path,
        settings: ReceiverSettings,
        inbox: Inbox,
        on_queued: Callable[[], None],
        anatomy: AnatomySettings | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.settings = settings
        self.anatomy = anatomy or AnatomySettings()
        self.inbox = inbox
        self.store = inbox.store
        self.on_queued = on_queued
        self.processed = self.folder / PROCESSED_DIR
        self.rejected = self.folder / REJECTED_DIR
        self._seen: dict[Path, _Seen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="edgeosteo-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # a vanished USB stick must not end the watcher
                logger.exception("watch folder %s", self.folder)
            self._stop.wait(self.settings.watch_poll_seconds)

    def _candidates(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder)
            if relative.parts[0] in (PROCESSED_DIR, REJECTED_DIR):
                continue
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.name.endswith(_IGNORED_SUFFIXES) or not path.is_file():
                continue
            found.append(path)
        return found

    def scan(self, now: float | None = None) -> list[Path]:
        """Take every file that has stayed unchanged long enough; returns those taken."""
        now = time.monotonic() if now is None else now
        taken: list[Path] = []
        current = set()
        for path in self._candidates():
            current.add(path)
            pending = self.store.received_for_origin(str(path))
            if pending is not None:
                if pending.state != "queued":  # screened before a crash, not yet moved
                    self.settle(pending)
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            seen = self._seen.get(path)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self._seen[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                continue
            if now - seen.since < self.settings.watch_stable_seconds:
                continue
            if self._take(path):
                taken.append(path)
                self._seen.pop(path, None)
        for gone in set(self._seen) - current:
            del self._seen[gone]
        return taken

    def _take(self, path: Path) -> bool:
        try:
            data = path.read_bytes()
        except OSError:
            return False
        kind = detect_kind(data[:132])
        if kind == "dicom":
            try:
                ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                facts = HeaderFacts.from_dataset(ds)
            except Exception:  # any parse failure of the file
                self._reject(path, "receiver.malformed_dicom")
                return True
            suffix = ".dcm"
        elif kind in _RASTER_SUFFIX:
            facts, suffix = HeaderFacts(is_dicom=False), _RASTER_SUFFIX[kind]
        else:
            self._reject(path, "intake.empty_file" if not data else "intake.not_an_image")
            return True
        eligibility: Eligibility = assess_eligibility(facts, self.settings, self.anatomy)
        try:
            instance, new = self.inbox.accept(
                data, facts, eligibility, source="folder", suffix=suffix, origin_path=str(path)
            )
        except QueueFull:
            return False  # stays in the folder; taken when the queue has room
        if not new:
            self._reject(path, "receiver.duplicate_instance")
        elif instance.state == "queued":
            self.on_queued()
        else:
            self.settle(instance)
        return True

    def settle(self, instance: ReceivedInstance) -> None:
        """Move a screened (or ineligible) file out of the watched folder."""
        if instance.source != "folder" or not instance.origin_path:
            return
        origin = Path(instance.origin_path)
        if origin.exists():
            if instance.state in ("screened", "needs_answers"):
                _move(origin, self.processed)
            else:
                self._reject(origin, instance.reason_code or "receiver.screening_failed")
        self.store.clear_origin(instance.id)

    def _reject(self, path: Path, code: str) -> None:
        moved = _move(path, self.rejected)
        reason = f"{code}\n{text(code, 'en')}\n{text(code, 'zh_CN')}\n"
        moved.with_name(moved.name + REASON_SUFFIX).write_text(reason, encoding="utf-8")


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}-{counter}{path.suffix}"
        counter += 1
    path.replace(target)
    return target
