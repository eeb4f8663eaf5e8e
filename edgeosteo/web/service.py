"""The page's, the API's and the receiver's one way to screen and store a case.

Screening is CPU-bound and the box is small: a semaphore lets only `concurrency` screenings
run at once, the rest queue, so concurrent uploads cannot oversubscribe the CPU.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from edgeosteo.errors import IntakeError
from edgeosteo.intake.photo import FilmCorners
from edgeosteo.intake.types import Capture
from edgeosteo.screening import PhotoReview, Screener, Screening
from edgeosteo.store import CaseRecord, CaseStore


@dataclass(frozen=True)
class ScreeningRequest:
    source: bytes | None
    answers: Mapping[str, object]
    body_part: str | None = None
    original_name: str | None = None
    local_patient_id: str | None = None
    created_by: str | None = None
    capture: Capture = "digital"
    film_corners: FilmCorners | None = None


class ScreeningService:
    def __init__(self, screener: Screener, store: CaseStore, concurrency: int = 1) -> None:
        self.screener = screener
        self.store = store
        self._slots = threading.BoundedSemaphore(max(1, concurrency))

    def screen(self, request: ScreeningRequest) -> Screening:
        with self._slots:
            return self.screener.screen(
                request.source,
                request.answers,
                request.body_part,
                capture=request.capture,
                film_corners=request.film_corners,
            )

    def review_photo(self, source: bytes, film_corners: FilmCorners | None) -> PhotoReview:
        """The film photo's review before screening; takes a screening slot like a screening
        does, because finding and rectifying the film is most of a photo's work."""
        with self._slots:
            return self.screener.review_photo(source, film_corners)

    def screen_and_store_received(self, request: ScreeningRequest, case_uuid: str) -> CaseRecord:
        """Screen an image from the X-ray unit and store it whatever the outcome: nobody is
        at a form to choose another file, so a refused image is a case with its reason.
        ``case_uuid`` is fixed by the queue, so a job re-run after a crash finds the case it
        already stored instead of storing a second one."""
        existing = self.store.get_case_by_uuid(case_uuid)
        if existing is not None:
            return existing
        screening = dataclasses.replace(self.screen(request), screening_id=case_uuid)
        state = case_state(screening.to_dict(), bool(request.answers))
        hold_s = self.screener.settings.sync.hold_unanswered_hours * 3600.0
        return self.store.save_case(
            screening.to_dict(),
            identity=screening.identity,
            radiograph=screening.radiograph,
            heatmap=_heatmap(screening),
            original_name=request.original_name,
            local_patient_id=request.local_patient_id,
            created_by=request.created_by,
            state=state,
            send_after=time.time() + hold_s if state == "needs_answers" else 0.0,
        )

    def add_answers(self, case_id: int, answers: Mapping[str, object]) -> CaseRecord | None:
        """Decide a stored case again with the clinical answers given after the fact; the
        image models do not run again (Screener.reassess)."""
        record = self.store.get_case(case_id)
        if record is None:
            return None
        with self._slots:
            screening = self.screener.reassess(record.result, answers)
        result = screening.to_dict()
        state = case_state(result, bool(answers))
        updated = self.store.update_result(case_id, result, state)
        self.store.set_case_state(case_id, state)
        return updated

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


def case_state(result: Mapping[str, object], answered: bool) -> str:
    """refused: intake or the quality gates refused the image; needs_answers: screened
    without clinical answers (an image from the X-ray unit); screened otherwise."""
    quality = result.get("quality")
    failed = isinstance(quality, Mapping) and quality.get("verdict") == "fail"
    if result.get("intake_error") or failed:
        return "refused"
    return "screened" if answered else "needs_answers"


def _heatmap(screening: Screening):
    return next((f.heatmap for f in screening.findings.results if f.heatmap is not None), None)
