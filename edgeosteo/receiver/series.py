"""CT series from the console, slice by slice: held per series until it is complete.

A CT scanner sends a series as hundreds of C-STOREs, often over several associations. Each
slice is written durably into ``incoming/<series>/`` (folder and file names are hashes of the
UIDs: no identifier in a path) before the sender hears "stored". A series is taken as
complete when no slice of it has arrived for ``quiet_seconds`` (the files' modification
times, so a restart loses nothing and keeps waiting); it is then read by the CT series intake
(edgeosteo.intake.ct_series) and moved to ``complete/<series>/`` with ``series.json`` (slices,
spacing), or to ``refused/<series>/`` with the coded reason in both languages. One bad
series never holds up another.

The series waits there for the technician's tap (ct-l1); a case for it and the page that
shows it are not built yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgeosteo.errors import IntakeError
from edgeosteo.intake.ct_series import read_ct_series
from edgeosteo.receiver.inbox import write_durably

logger = logging.getLogger(__name__)

SERIES_DIR = "ct_series"
RESULT_FILE = "series.json"


def _key(uid: str) -> str:
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class SeriesOutcome:
    """A series taken as complete: where it lies and what the intake said."""

    key: str
    folder: Path
    status: str  # "complete" | "refused"
    slices: int
    code: str | None = None
    detail: str | None = None


class SeriesSpool:
    """``incoming/``, ``complete/`` and ``refused/`` under ``root``."""

    def __init__(self, root: Path, quiet_seconds: float, poll_seconds: float = 1.0) -> None:
        if quiet_seconds < 0:
            raise ValueError("quiet_seconds must not be negative")
        self.root = root
        self.quiet_seconds = float(quiet_seconds)
        self.poll_seconds = float(poll_seconds)
        self.incoming = root / "incoming"
        self.complete_dir = root / "complete"
        self.refused_dir = root / "refused"
        self._scratch = root / ".part"
        self._settling = root / ".settling"
        folders = (self.incoming, self.complete_dir, self.refused_dir, self._scratch)
        for folder in (*folders, self._settling):
            folder.mkdir(parents=True, exist_ok=True)
        for left in self._settling.iterdir():  # a restart mid-read: wait again
            if left.is_dir() and not (self.incoming / left.name).exists():
                os.replace(left, self.incoming / left.name)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def accept(self, data: bytes, series_uid: str, sop_instance_uid: str) -> Path:
        """Write one slice durably; a slice sent again replaces its copy."""
        with self._lock:  # the series' folder must not be moved away mid-write
            folder = self.incoming / _key(series_uid)
            folder.mkdir(exist_ok=True)
            target = folder / f"{_key(sop_instance_uid)}.dcm"
            write_durably(data, target, self._scratch)
            now = time.time()
            os.utime(folder, (now, now))
            return target

    def waiting(self) -> list[str]:
        return sorted(p.name for p in self.incoming.iterdir() if p.is_dir())

    def settle(self, now: float | None = None) -> list[SeriesOutcome]:
        """The series quiet for ``quiet_seconds``, read and moved to complete/ or refused/."""
        now = time.time() if now is None else now
        outcomes = []
        for folder in sorted(p for p in self.incoming.iterdir() if p.is_dir()):
            with self._lock:  # taken out of incoming/ before reading, so slices keep landing
                files = [p for p in folder.iterdir() if p.is_file()]
                newest = max([p.stat().st_mtime for p in files] + [folder.stat().st_mtime])
                if now - newest < self.quiet_seconds:
                    continue
                settling = self._move(folder, self._settling)
            outcomes.append(self._finish(settling, len(files)))
        return outcomes

    def _finish(self, folder: Path, count: int) -> SeriesOutcome:
        try:
            series = read_ct_series(folder)
        except IntakeError as error:
            target = self._move(folder, self.refused_dir)
            result = {"status": "refused", "slices_received": count, **error.to_dict()}
            (target / RESULT_FILE).write_text(json.dumps(result, ensure_ascii=False))
            logger.info("CT series %s refused: %s (%s)", folder.name, error.code, error.detail)
            return SeriesOutcome(folder.name, target, "refused", count, error.code, error.detail)
        target = self._move(folder, self.complete_dir)
        result = {
            "status": "complete",
            "slices": series.shape[0],
            "matrix": list(series.shape[1:]),
            "slice_spacing_mm": series.slice_spacing_mm,
            "pixel_spacing_mm": list(series.pixel_spacing_mm),
            "kvp": series.kvp,
            "contrast": series.contrast_agent is not None,
        }
        (target / RESULT_FILE).write_text(json.dumps(result))
        logger.info("CT series %s complete: %d slices", folder.name, series.shape[0])
        return SeriesOutcome(folder.name, target, "complete", series.shape[0])

    @staticmethod
    def _move(folder: Path, parent: Path) -> Path:
        target = parent / folder.name
        if target.exists():  # the same series sent again later: the newer copy is kept
            shutil.rmtree(target)
        os.replace(folder, target)
        return target

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ct-series", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.settle()
            except Exception:  # a disk error must not stop the receiver: logged, retried
                logger.exception("CT series spool")
