"""The page's, the API's and the receiver's one way to screen and store a case.

Screening is CPU-bound and the box is small: a semaphore lets only `concurrency` screenings
run at once, the rest queue, so concurrent uploads cannot oversubscribe the CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from edgeosteo.errors import IntakeError
from edgeosteo.screening import Screener, Screening
from edgeosteo.store import CaseRecord, CaseStore


@dataclass(frozen=True)
class ScreeningRequest:
    source: bytes | None
    answers: Mapping[str, object]
    body_part: str | None = None
    original_name: str | None = None
    local_patient_id: str | None = None
    created_by: str | None = None


class ScreeningService:
    def __init__(self, screener: Screener, store: CaseStore, concurrency: int = 1) -> None:
        self.screener = screener
        self.store = store
        self._slots = threading.BoundedSemaphore(max(1, concurrency))

    def screen(self, request: ScreeningRequest) -> Screening:
        with self._slots:
            return self.screener.screen(request.source, request.answers, request.body_part)

    def screen_and_store(self, request: ScreeningRequest) -> CaseRecord:
        """Screen, then store. An unreadable upload raises IntakeError and stores nothing:
        the technician is still at the form and can choose another file."""
        screening = self.screen(request)
        if screening.intake_error:
            raise IntakeError(
                str(screening.intake_error["code"]), screening.intake_error.get("detail")
            )
        heatmap = next(
            (f.heatmap for f in screening.findings.results if f.heatmap is not None), None
        )
        quality = screening.quality
        state = "screened" if quality is None or quality.usable else "refused"
        return self.store.save_case(
            screening.to_dict(),
            identity=screening.identity,
            radiograph=screening.radiograph,
            heatmap=heatmap,
            source_bytes=request.source,
            original_name=request.original_name,
            local_patient_id=request.local_patient_id,
            created_by=request.created_by,
            state=state,
        )
