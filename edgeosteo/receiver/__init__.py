"""Integration with the X-ray unit: DICOM receiver, watch folder, screening worker.

    scp.py          Storage SCP (C-STORE, C-ECHO): header checks, durable write, queue
    watch.py        a watched export folder (size-stable files), processed/ and rejected/
    eligibility.py  which images are screened automatically and with which body part
    inbox.py        durable write + record + queue, shared by the SCP and the folder
    worker.py       screens queued images through the box's case workflow (edgeosteo.cases)
    series.py       CT series slice by slice, complete after a quiet time ([receiver]
                    ct_series_enabled); each becomes a case (CaseWorkflow.store_ct_series)
                    that waits for the ct-l1 tap, or a refused case with its reason

Every screening still goes through Screener.screen(); the receiver only decides what to
screen and when. Set-up for a console is described in docs/receiver.md.
"""

from __future__ import annotations

import logging

from edgeosteo.cases import CaseWorkflow, CtSeriesArrival
from edgeosteo.config import Settings
from edgeosteo.receiver.inbox import Inbox
from edgeosteo.receiver.scp import StorageSCP
from edgeosteo.receiver.series import SERIES_DIR, SeriesOutcome, SeriesSpool
from edgeosteo.receiver.watch import FolderWatcher
from edgeosteo.receiver.worker import ScreeningWorker
from edgeosteo.store import ReceivedInstance

__all__ = ["FolderWatcher", "Inbox", "Receiver", "ScreeningWorker", "StorageSCP"]

logger = logging.getLogger(__name__)


class Receiver:
    """The SCP, the watch folder and the worker of one box, each on when its setting says
    so, sharing one inbox and the page's case workflow."""

    def __init__(self, settings: Settings, workflow: CaseWorkflow) -> None:
        self.settings = settings.receiver
        self.workflow = workflow
        self.inbox = Inbox(workflow.store, self.settings)
        self.worker = ScreeningWorker(workflow, self.settings, on_finished=self._finished)
        self.series = (
            SeriesSpool(
                settings.data_dir / SERIES_DIR,
                max(0.0, self.settings.ct_series_quiet_seconds),
                on_outcome=self._series_settled,
            )
            if self.settings.ct_series_enabled
            else None
        )
        self.scp = StorageSCP(
            self.settings,
            self.inbox,
            on_queued=self.worker.wake,
            anatomy=settings.anatomy,
            series_spool=self.series,
        )
        self.watcher = (
            FolderWatcher(
                self.settings.watch_dir,
                self.settings,
                self.inbox,
                self.worker.wake,
                anatomy=settings.anatomy,
            )
            if self.settings.watch_dir
            else None
        )
        self.scp_address: tuple[str, int] | None = None
        self._running: list[str] = []

    def start(self) -> list[str]:
        """Start what the settings turn on; returns the names of what runs."""
        # the port first: a box that cannot listen stops before its worker requeues anything
        if self.settings.scp_enabled:
            self.scp_address = self.scp.start()
            self._running.append("scp")
        if self.settings.worker_enabled:
            self.worker.start()
            self._running.append("worker")
        if self.watcher is not None:
            self.watcher.start()
            self._running.append("watch")
        if self.series is not None:
            self.series.start()
            self._running.append("ct_series")
        return list(self._running)

    def stop(self) -> None:
        if "scp" in self._running:
            self.scp.stop()
        if "watch" in self._running and self.watcher is not None:
            self.watcher.stop()
        if "worker" in self._running:
            self.worker.stop()
        if "ct_series" in self._running and self.series is not None:
            self.series.stop()
        self._running.clear()

    def _series_settled(self, outcome: SeriesOutcome) -> None:
        """A complete or refused CT series becomes its case (raises to be retried)."""
        record = self.workflow.store_ct_series(
            CtSeriesArrival(
                key=outcome.key,
                folder=outcome.folder,
                status="refused" if outcome.status == "refused" else "complete",
                slices=outcome.slices,
                settled_at=outcome.settled_at,
                facts=dict(outcome.facts or {}),
            )
        )
        logger.info("CT series %s: case %d (%s)", outcome.key, record.id, record.state)

    def _finished(self, instance: ReceivedInstance) -> None:
        if self.watcher is not None and instance.source == "folder":
            self.watcher.settle(instance)
