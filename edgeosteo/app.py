"""The one composition root: ``build(settings) -> Box``.

A box is its store, the screener holding the verified models, the case workflow they serve,
the local page and the X-ray unit's receiver (SCP, watch folder, worker). ``edgeosteo
serve``, ``edgeosteo bench`` and the tests build it here, so the parts are wired one way.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from edgeosteo.cases import CaseWorkflow
from edgeosteo.config import Settings
from edgeosteo.receiver import Receiver
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore, DataDirLock, lock_data_dir
from edgeosteo.web import create_app


@dataclass(frozen=True)
class Box:
    settings: Settings
    store: CaseStore
    screener: Screener
    cases: CaseWorkflow
    web: Flask
    receiver: Receiver
    lock: DataDirLock | None = None

    def start_receiver(self) -> list[str]:
        """Start the receiver's parts the settings turn on; returns what runs. A port that
        cannot be opened stops what had started and raises OSError."""
        try:
            return self.receiver.start()
        except OSError:
            self.receiver.stop()
            raise

    def stop(self) -> None:
        self.receiver.stop()


def build(settings: Settings, screener: Screener | None = None, *, exclusive: bool = False) -> Box:
    """Wire one box. ``screener`` lets a caller that already loaded the models share them.

    ``exclusive`` (``edgeosteo serve``): take the data directory's lock before anything else
    (DataDirInUse when another process holds it; the lock is held for the process's life),
    then sweep the image files a killed process left that no case names."""
    lock = lock_data_dir(settings.data_dir) if exclusive else None
    store = CaseStore(settings.data_dir)
    if exclusive:
        store.sweep_orphan_files()
    screener = screener or Screener(settings)
    cases = CaseWorkflow(screener, store, settings.web.concurrent_screenings)
    return Box(
        settings=settings,
        store=store,
        screener=screener,
        cases=cases,
        web=create_app(settings, cases),
        receiver=Receiver(settings, cases),
        lock=lock,
    )
