"""Screens queued images one at a time through the box's case workflow.

The queue is the store's jobs table, so it survives a restart: jobs a dead process left
running are queued again on start, and a re-run job finds the case it may already have
stored (its case UUID is fixed when the job is queued), so no image is screened into two
cases and none is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgeosteo.cases import CaseWorkflow, ScreeningRequest, refusal_code
from edgeosteo.config import ReceiverSettings
from edgeosteo.errors import IntakeError
from edgeosteo.store import ReceivedInstance, ScreeningJob

logger = logging.getLogger(__name__)

RECEIVER_USER = "receiver"


class ScreeningWorker:
    def __init__(
        self,
        workflow: CaseWorkflow,
        settings: ReceiverSettings,
        on_finished: Callable[[ReceivedInstance], None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.store = workflow.store
        self.settings = settings
        self.on_finished = on_finished
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interrupted = self.store.requeue_interrupted_jobs()
        if interrupted:
            logger.info("%d interrupted screening(s) queued again", interrupted)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="edgeosteo-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                worked = self.run_once()
            except Exception:  # the store itself failed; keep serving, try again later
                logger.exception("screening worker")
                worked = False
            if not worked:
                self._wake.wait(self.settings.worker_poll_seconds)

    def run_once(self) -> bool:
        """Screen the next due job, if any. Returns whether there was one."""
        job = self.store.claim_job()
        if job is None:
            return False
        self._process(job)
        return True

    def drain(self) -> int:
        """Screen every due job now (for tools and tests); returns how many ran."""
        count = 0
        while self.run_once():
            count += 1
        return count

    def _process(self, job: ScreeningJob) -> None:
        instance = self.store.get_received(job.instance_id)
        if instance is None:  # the row went away with its job's foreign key: impossible
            return
        try:
            data = (self.store.data_dir / instance.file).read_bytes()
            # a phone photo of a film dropped into the watch folder goes down the photo path
            photo = instance.source == "folder" and self.workflow.guess_capture(data).is_photo
            record = self.workflow.screen_and_store_received(
                ScreeningRequest(
                    source=data,
                    answers={},
                    body_part=instance.body_part,
                    original_name=Path(instance.origin_path or instance.file).name,
                    local_patient_id=instance.identity.get("patient_id"),
                    created_by=RECEIVER_USER,
                    capture="photo" if photo else "digital",
                ),
                job.case_uuid,
            )
        except IntakeError as exc:  # no radiograph at all: keep nothing of the image
            self.store.discard_received_image(instance.id)
            self.store.finish_job(job.id, None, "refused", exc.code)
            self._finished(instance.id)
            return
        except Exception as exc:  # a worker outlives any one image
            logger.exception("screening of received image %d failed", instance.id)
            if job.attempts >= self.settings.job_max_attempts:
                self.store.finish_job(job.id, None, "refused", "receiver.screening_failed")
                self._finished(instance.id)
            else:
                retry_at = time.time() + self.settings.job_retry_seconds
                self.store.retry_job(job.id, f"{type(exc).__name__}: {exc}", retry_at)
            return
        reason = refusal_code(record.result) if record.state == "refused" else None
        self.store.finish_job(job.id, record.id, record.state, reason)
        self._finished(instance.id)

    def _finished(self, instance_id: int) -> None:
        if self.on_finished is None:
            return
        instance = self.store.get_received(instance_id)
        if instance is not None:
            self.on_finished(instance)
