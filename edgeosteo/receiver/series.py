"""CT series from the console, slice by slice: held per series until it is complete.

A CT scanner sends a series as hundreds of C-STOREs, often over several associations. Each
slice is written durably into ``incoming/<series>/`` (folder and file names are hashes of the
UIDs: no identifier in a path) before the sender hears "stored". A series is taken as
complete when no slice of it has arrived for ``quiet_seconds`` (the files' modification
times, so a restart loses nothing and keeps waiting); it is then read by the CT series intake
(edgeosteo.intake.ct_series) and moved to ``complete/<series>/`` with ``series.json`` (slices,
spacing), or to ``refused/<series>/`` with the coded reason in both languages. One bad
series never holds up another.

Each outcome is handed to ``on_outcome`` (the receiver makes it a case through the case
workflow: a complete series waits for the technician's tap, a refused one is listed with its
reason). A folder is marked ``.delivered`` only once that succeeded; folders without the mark
are handed over again when the spool starts and every ``RETRY_SECONDS``, so a series
completed while the box stopped or the callback failed still becomes its case (the workflow
finds a case it already made by the series' fixed case UUID). Once a refused series is a
case, its slices are deleted: ``series.json`` (the code, both sentences, how many slices
came) is what stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeosteo.errors import IntakeError
from edgeosteo.intake.ct_series import read_ct_series
from edgeosteo.receiver.inbox import write_durably

logger = logging.getLogger(__name__)

SERIES_DIR = "ct_series"
RESULT_FILE = "series.json"
DELIVERED = ".delivered"
RETRY_SECONDS = 60.0


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
    settled_at: float = 0.0  # when it was taken as complete: with the key, the case's name
    facts: dict | None = None  # series.json: slices, spacing, kV, contrast; or the refusal


class SeriesSpool:
    """``incoming/``, ``complete/`` and ``refused/`` under ``root``."""

    def __init__(
        self,
        root: Path,
        quiet_seconds: float,
        poll_seconds: float = 1.0,
        on_outcome: Callable[[SeriesOutcome], None] | None = None,
    ) -> None:
        if quiet_seconds < 0:
            raise ValueError("quiet_seconds must not be negative")
        self.root = root
        self.quiet_seconds = float(quiet_seconds)
        self.poll_seconds = float(poll_seconds)
        self.on_outcome = on_outcome
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
            outcome = self._finish(settling, len(files))
            outcomes.append(outcome)
            self._deliver(outcome)
        return outcomes

    def undelivered(self) -> list[SeriesOutcome]:
        """The complete and refused series no case was made for yet (read from disk)."""
        found = []
        for parent in (self.complete_dir, self.refused_dir):
            for folder in sorted(p for p in parent.iterdir() if p.is_dir()):
                if (folder / DELIVERED).exists():
                    continue
                if not (folder / RESULT_FILE).exists():  # stopped between move and write
                    with self._lock:
                        if not (self.incoming / folder.name).exists():
                            os.replace(folder, self.incoming / folder.name)
                    continue
                try:
                    facts = json.loads((folder / RESULT_FILE).read_text())
                except (OSError, ValueError):
                    logger.warning("CT series %s: %s unreadable", folder.name, RESULT_FILE)
                    continue
                found.append(_outcome(folder, facts))
        return found

    def deliver_pending(self) -> int:
        """Hand every undelivered series to ``on_outcome`` again; returns how many went."""
        if self.on_outcome is None:
            return 0
        return sum(self._deliver(outcome) for outcome in self.undelivered())

    def _deliver(self, outcome: SeriesOutcome) -> bool:
        if self.on_outcome is None:
            return False
        try:
            self.on_outcome(outcome)
        except Exception:  # retried at the next start and every RETRY_SECONDS
            logger.exception("CT series %s: no case made yet", outcome.key)
            return False
        (outcome.folder / DELIVERED).touch()
        if outcome.status == "refused":  # the reason is kept, the patient's slices are not
            for path in outcome.folder.rglob("*"):
                if path.is_file() and path.name not in (RESULT_FILE, DELIVERED):
                    path.unlink()
        return True

    def _finish(self, folder: Path, count: int) -> SeriesOutcome:
        try:
            series = read_ct_series(folder)
        except IntakeError as error:
            target = self._move(folder, self.refused_dir)
            result = {
                "status": "refused",
                "slices_received": count,
                "settled_at": time.time(),
                **error.to_dict(),
            }
            _write_json(target / RESULT_FILE, result)
            logger.info("CT series %s refused: %s (%s)", folder.name, error.code, error.detail)
            return _outcome(target, result)
        target = self._move(folder, self.complete_dir)
        result = {
            "status": "complete",
            "slices": series.shape[0],
            "matrix": list(series.shape[1:]),
            "slice_spacing_mm": series.slice_spacing_mm,
            "pixel_spacing_mm": list(series.pixel_spacing_mm),
            "kvp": series.kvp,
            "contrast": series.contrast_agent is not None,
            "sagittal_column": series.spine_column(),
            "files": list(series.files),  # superior first: the page's axial views
            "settled_at": time.time(),
        }
        _write_json(target / RESULT_FILE, result)
        logger.info("CT series %s complete: %d slices", folder.name, series.shape[0])
        return _outcome(target, result)

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
        retried = 0.0
        while True:
            try:
                if time.monotonic() - retried >= RETRY_SECONDS or not retried:
                    retried = time.monotonic()
                    self.deliver_pending()
                self.settle()
            except Exception:  # a disk error must not stop the receiver: logged, retried
                logger.exception("CT series spool")
            if self._stop.wait(self.poll_seconds):
                return


def _outcome(folder: Path, facts: dict) -> SeriesOutcome:
    refused = facts.get("status") == "refused"
    return SeriesOutcome(
        key=folder.name,
        folder=folder,
        status="refused" if refused else "complete",
        slices=int(facts.get("slices_received" if refused else "slices") or 0),
        code=facts.get("code") if refused else None,
        detail=facts.get("detail") if refused else None,
        settled_at=float(facts.get("settled_at") or 0.0),
        facts=facts,
    )


def _write_json(path: Path, value: dict) -> None:
    """Written whole or not at all: a restart must find a readable series.json."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(value, ensure_ascii=False))
    os.replace(part, path)
