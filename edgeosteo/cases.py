"""The case workflow that the page, the API and the DICOM receiver share: screen an image
through the one path, store it as a case, decide it again when answers come later, and say
what state a case is in and how a list names its patient.

Screening is CPU-bound and the box is small: a semaphore lets only `concurrency` screenings
run at once, the rest queue, so concurrent uploads cannot oversubscribe the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from edgeosteo.dxa import research_consent
from edgeosteo.errors import FollowUpError, IntakeError, RequestError
from edgeosteo.follow_up import record_dxa
from edgeosteo.imaging import ct_png
from edgeosteo.intake.capture import CaptureGuess
from edgeosteo.intake.ct_series import CtSeries, read_ct_series, read_identity, slice_hu
from edgeosteo.intake.photo import FilmCorners
from edgeosteo.intake.types import Capture
from edgeosteo.measurement import (
    MeasurementRefusal,
    MeasurementRequest,
    MeasurementResult,
    replace_method,
)
from edgeosteo.methods import measure_series
from edgeosteo.models import answers_needed_for_referral
from edgeosteo.screening import PhotoReview, Screener, Screening, StoredImageResult
from edgeosteo.store import CaseRecord, CaseStore, OutcomeExists, ReferralOutcome

CaseState = Literal["screened", "needs_answers", "refused", "awaiting_measurement"]
# a CT series from the scanner waits for the technician's tap on its sagittal reformat
AWAITING_MEASUREMENT = "awaiting_measurement"
CT_CASE_NAMESPACE = uuid.UUID("5b0f7f0e-8c1e-4d0a-9a57-3c7000000001")
CT_SERIES_FILE = "series.json"  # the receiver's record of a series, beside its slices
CT_SAGITTAL_PNG = ".sagittal.png"  # dot: not read as a slice
CT_AXIAL_HALF_MM = 40.0  # the axial views: the vertebral body and the tissue round it
CT_AXIAL_ZOOM = 2.0
CT_SAGITTAL_PX = 768
PSEUDONYMISED = "pseudonymised"
# gates that find no radiograph at all (a face, a document, a photo with no film in it):
# such a file is refused before anything of it is written, on every path
NOT_A_RADIOGRAPH = ("quality.not_radiograph", "photo.not_radiograph")
GUESSES_KEPT = 32
logger = logging.getLogger(__name__)
LOCAL_PATIENT_ID_MAX_CHARS = 64
NO_DXA_OUTCOMES = (
    "declined",
    "could_not_travel",
)  # the page's field says so too (new.html maxlength)


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
    # the technician says the body part chosen is right where the image's header disagrees
    body_part_confirmed: bool = False
    # measurement methods to run with the user's taps (radiograph pixels)
    measurements: tuple[MeasurementRequest, ...] = ()

    def validate(self) -> None:
        """Raise RequestError when the request cannot become a case, for every entry point
        a person fills in (the page and the API): it needs an image or at least one
        clinical answer, and a local patient ID of at most 64 printable characters (no
        line breaks, tabs or other control characters)."""
        answered = any(
            value is not None and not (isinstance(value, str) and not value.strip())
            for value in self.answers.values()
        )
        if not self.source and not answered:
            raise RequestError("request.nothing_to_screen")
        patient_id = self.local_patient_id
        if patient_id is not None and (
            len(patient_id) > LOCAL_PATIENT_ID_MAX_CHARS or not patient_id.isprintable()
        ):
            raise RequestError(
                "request.patient_id_invalid",
                f"{len(patient_id)} characters, at most {LOCAL_PATIENT_ID_MAX_CHARS} printable",
            )


@dataclass(frozen=True)
class CtSeriesArrival:
    """A CT series the receiver took as complete (or refused): its folder, named by the hash
    of its Series Instance UID, and what the CT intake said (``series.json``)."""

    key: str
    folder: Path
    status: Literal["complete", "refused"]
    slices: int
    settled_at: float
    facts: Mapping[str, object]

    @property
    def case_uuid(self) -> str:
        """Fixed by the series and when it settled: handed over again after a restart, it
        finds the case already made; the same series sent again later is a new case."""
        return str(uuid.uuid5(CT_CASE_NAMESPACE, f"{self.key}:{self.settled_at:.6f}"))


@dataclass(frozen=True)
class UploadFacts:
    body_part: str | None
    view: str | None
    body_part_source: str | None
    capture: str = "digital"  # "photo": the file looks like a phone photo of a film

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class CaseWorkflow:
    """Screens and stores cases for every entry point; holds the box's screening slots."""

    def __init__(self, screener: Screener, store: CaseStore, concurrency: int = 1) -> None:
        self.screener = screener
        self.store = store
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        # capture guesses the page made while the technician filled the form, by file hash,
        # so the screening does not measure the same file again
        self._guesses: OrderedDict[str, CaptureGuess] = OrderedDict()
        self._guesses_lock = threading.Lock()

    def screen(self, request: ScreeningRequest) -> Screening:
        guess = self._cached_guess(request.source) if request.capture == "digital" else None
        with self._slots:
            return self.screener.screen(
                request.source,
                request.answers,
                request.body_part,
                capture=request.capture,
                film_corners=request.film_corners,
                body_part_confirmed=request.body_part_confirmed,
                capture_guess=guess,
                measurements=request.measurements,
            )

    def guess_capture(self, source: bytes) -> CaptureGuess:
        """Whether a file looks like a phone photo of a film; remembered for its screening."""
        guess = self.screener.guess_capture(source)
        key = hashlib.sha256(source).hexdigest()
        with self._guesses_lock:
            self._guesses[key] = guess
            while len(self._guesses) > GUESSES_KEPT:
                self._guesses.popitem(last=False)
        return guess

    def _cached_guess(self, source: bytes | None) -> CaptureGuess | None:
        if not source:
            return None
        key = hashlib.sha256(source).hexdigest()
        with self._guesses_lock:
            return self._guesses.pop(key, None)

    def upload_facts(self, source: bytes) -> UploadFacts:
        """What the page can tell the technician about a file before screening it: the
        body part and view its header states, and whether it looks like a phone photo of a
        film (so the page can offer the photo mode)."""
        header = self.screener.header_anatomy(source)
        with self._slots:  # measuring a raster file for photo cues is real work
            guess = self.guess_capture(source)
        return UploadFacts(header.body_part, header.view, header.body_part_source, guess.kind)

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
        refuse_what_is_not_a_radiograph(screening)
        result = screening.to_dict()
        state = case_state(result, bool(request.answers))
        hold_s = self.screener.settings.sync.hold_unanswered_hours * 3600.0
        send_after = time.time() + hold_s if state == "needs_answers" else 0.0
        # the original is kept, as for an upload, so a reader can measure it later
        return self._save(
            screening, result, request, state, source_bytes=request.source, send_after=send_after
        )

    def screen_and_store(self, request: ScreeningRequest) -> CaseRecord:
        """Screen, then store. An unreadable upload raises IntakeError and stores nothing:
        the technician is still at the form and can choose another file. A request with
        nothing to screen or an unusable patient ID raises RequestError before any work."""
        request.validate()
        screening = self.screen(request)
        if screening.intake_error:
            raise IntakeError(
                str(screening.intake_error["code"]), screening.intake_error.get("detail")
            )
        refuse_what_is_not_a_radiograph(screening)
        # the technician is at the form: a screening they gave no answers for is still
        # theirs to finish on the page, not one that waits for answers like a received one
        result = screening.to_dict()
        state = case_state(result, answered=True)
        return self._save(screening, result, request, state, source_bytes=request.source)

    def _save(
        self,
        screening: Screening,
        result: dict[str, object],
        request: ScreeningRequest,
        state: CaseState,
        source_bytes: bytes | None = None,
        send_after: float = 0.0,
    ) -> CaseRecord:
        return self.store.save_case(
            result,
            identity=screening.identity,
            radiograph=screening.radiograph,
            heatmap=screening.findings.first_heatmap(),
            source_bytes=source_bytes,
            original_name=request.original_name,
            local_patient_id=request.local_patient_id,
            created_by=request.created_by,
            state=state,
            send_after=send_after,
        )

    def answers_needed_for_referral(self) -> tuple[str, ...]:
        """The clinical answers the installed models that may drive the referral read."""
        return answers_needed_for_referral(self.screener.registry)

    def referral_model_ids(self) -> frozenset[str]:
        """The installed models whose cards permit them to drive the referral."""
        return frozenset(m.id for m in self.screener.registry if m.used_for_referral)

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

    def measure_case(
        self, case_id: int, request: MeasurementRequest, save: bool
    ) -> tuple[CaseRecord | None, MeasurementResult] | None:
        """A measurement on a stored case's original image with the reader's taps. With
        ``save`` it replaces any earlier measurement by the same method and the case is
        decided again (no image model runs again); without, it is a preview the page draws.
        None when there is no such case."""
        record = self.store.get_case(case_id)
        if record is None:
            return None
        stored = record.result
        if not record.image_file:
            refusal = MeasurementRefusal(
                request.method, "measurement.no_image", "the case keeps no original image"
            )
            return record, refusal
        data = (self.store.data_dir / record.image_file).read_bytes()
        image = stored.get("image") or {}
        capture = "photo" if image.get("capture") == "photo" else "digital"
        photo = image.get("photo") or {}
        corners = (
            FilmCorners(tuple((float(x), float(y)) for x, y in photo["corners"]), "user")
            if capture == "photo" and photo.get("corners")
            else None
        )
        with self._slots:
            intake = self.screener.read(data, capture, corners)
            quality = self.screener.check_quality(intake)
            choice = self.screener.choose_body_part(intake, stored.get("body_part"), True)
            result = self.screener.measure(intake, quality, choice, request)
            if not save:
                return record, result
            kept = StoredImageResult.from_dict(stored).measurements
            answers = (stored.get("clinical") or {}).get("answers") or {}
            screening = self.screener.reassess(stored, answers, replace_method(kept, result))
        updated = screening.to_dict()
        state = case_state(updated, bool(answers))
        saved = self.store.update_result(case_id, updated, state)
        self.store.set_case_state(case_id, state)
        return saved, result

    def store_ct_series(self, arrival: CtSeriesArrival) -> CaseRecord:
        """A CT series from the scanner as a case: a complete one waits for the tap
        (``awaiting_measurement``), a refused one is a refused case with its reason. The
        patient is the one the slices' header names. Made once per arrival."""
        existing = self.store.get_case_by_uuid(arrival.case_uuid)
        if existing is not None:
            return existing
        # the sentences are the catalogue's (the page says them in its language); the slice
        # files' names stay in series.json
        facts = {
            k: v
            for k, v in arrival.facts.items()
            if k not in ("message_en", "message_zh_CN", "files")
        }
        try:
            folder = arrival.folder.relative_to(self.store.data_dir).as_posix()
        except ValueError:
            folder = str(arrival.folder)
        intake_error = None
        if arrival.status == "refused":
            code = str(facts.get("code") or "intake.ct_not_a_series")
            intake_error = IntakeError(code, facts.get("detail")).to_dict()  # type: ignore[arg-type]
        stored = {
            "screening_id": arrival.case_uuid,
            "image": {
                "source_format": "dicom",
                "modality": "CT",
                "ct_series": {**facts, "folder": folder, "key": arrival.key},
            },
            "intake_error": intake_error,
        }
        identity = read_identity(arrival.folder)
        with self._slots:
            screening = self.screener.reassess(stored, {})
        screening = dataclasses.replace(screening, identity=identity)
        result = screening.to_dict()
        state: CaseState = "refused" if intake_error else AWAITING_MEASUREMENT
        hold_s = self.screener.settings.sync.hold_unanswered_hours * 3600.0
        if not intake_error:
            try:  # drawn now, so the page shows it at once; else drawn when first shown
                self._ct_sagittal(arrival.folder, facts.get("sagittal_column"))
            except (IntakeError, OSError, ValueError):
                logger.exception("CT series %s: sagittal reformat not drawn", arrival.key)
        return self.store.save_case(
            result,
            identity=identity,
            local_patient_id=identity.patient_id,
            state=state,
            send_after=0.0 if intake_error else time.time() + hold_s,
        )

    def ct_series_folder(self, record: CaseRecord) -> Path | None:
        """The complete CT series a case was made from; None for any other case, or when
        the series is no longer on the box."""
        series = ((record.result.get("image") or {}).get("ct_series")) or {}
        if series.get("status") != "complete" or not series.get("folder"):
            return None
        folder = self.store.data_dir / str(series["folder"])
        return folder if folder.is_dir() else None

    def read_ct_case_series(self, record: CaseRecord) -> CtSeries:
        """The case's CT series as a volume; IntakeError when it cannot be read any more."""
        folder = self.ct_series_folder(record)
        if folder is None:
            raise IntakeError("intake.ct_not_a_folder", f"case {record.id}")
        return read_ct_series(folder)

    def ct_sagittal_png(self, record: CaseRecord) -> bytes | None:
        """The sagittal reformat the technician taps (bone window, true shape); None for a
        case without a CT series on the box."""
        folder = self.ct_series_folder(record)
        if folder is None:
            return None
        series = (record.result.get("image") or {}).get("ct_series") or {}
        return self._ct_sagittal(folder, series.get("sagittal_column"))

    def _ct_sagittal(self, folder: Path, column: object) -> bytes:
        cached = folder / CT_SAGITTAL_PNG
        if cached.exists():
            return cached.read_bytes()
        with self._slots:
            series = read_ct_series(folder)
            column = series.spine_column() if column is None else int(column)  # type: ignore[call-overload]
            n, rows, _ = series.shape
            tall_mm, wide_mm = n * series.slice_spacing_mm, rows * series.pixel_spacing_mm[0]
            # big enough to tap on a phone: the long side CT_SAGITTAL_PX at least
            px_mm = min(series.pixel_spacing_mm[0], max(tall_mm, wide_mm) / CT_SAGITTAL_PX)
            png = ct_png(
                series.sagittal(column), series.slice_spacing_mm, series.pixel_spacing_mm[0], px_mm
            )
            del series
        part = cached.with_name(cached.name + ".part")
        part.write_bytes(png)
        os.replace(part, cached)
        return png

    def ct_axial_png(self, record: CaseRecord, index: int) -> bytes | None:
        """Slice ``index`` of a measured CT case, cut to the box around its ROI
        (``ct_axial_box``); None when there is no such slice or no measurement."""
        folder = self.ct_series_folder(record)
        measurement = ct_measurement(record.result)
        if folder is None or measurement is None:
            return None
        try:
            files = json.loads((folder / CT_SERIES_FILE).read_text())["files"]
        except (OSError, ValueError, KeyError):
            return None
        if not 0 <= index < len(files):
            return None
        hu = slice_hu(folder / files[index])
        x0, y0, width, height = ct_axial_box(measurement, hu.shape)
        mm = float(measurement.get("scale_mm_per_px") or 1.0)
        return ct_png(hu[y0 : y0 + height, x0 : x0 + width], mm, mm, mm / CT_AXIAL_ZOOM)

    def measure_ct_case(
        self, case_id: int, request: MeasurementRequest, save: bool
    ) -> tuple[CaseRecord | None, MeasurementResult] | None:
        """ct-l1 on a CT case's series with the technician's tap, as ``measure_case`` does
        for a radiograph: a preview, or with ``save`` stored and the case decided again
        through the site's policy. None when there is no such case."""
        record = self.store.get_case(case_id)
        if record is None:
            return None
        with self._slots:
            try:
                series = self.read_ct_case_series(record)
            except IntakeError as error:
                refusal = MeasurementRefusal(request.method, error.code, error.detail)
                return record, refusal
            result = measure_series(request, series, self.screener.methods)
            del series  # the volume is the box's largest object: gone before deciding
            if not save or result.status != "measured":  # a tap that missed changes nothing
                return record, result
            stored = record.result
            kept = StoredImageResult.from_dict(stored).measurements
            answers = (stored.get("clinical") or {}).get("answers") or {}
            screening = self.screener.reassess(stored, answers, replace_method(kept, result))
        updated = screening.to_dict()
        state = case_state(updated, any(v is not None for v in answers.values()))
        saved = self.store.update_result(case_id, updated, state)
        self.store.set_case_state(case_id, state)
        return saved, result

    def record_dxa(
        self,
        case_id: int,
        fields: Mapping[str, object],
        recorded_by: str | None,
        from_form: bool = False,
        today: date | None = None,
    ) -> ReferralOutcome:
        """Record a case's DXA result (the form's or the API's fields), which closes its
        referral, with the patient's research consent when the fields give one. Raises
        FollowUpError and changes nothing for a case that does not exist, a result that does
        not check out (edgeosteo.dxa) or a second result."""
        # the box's own calendar day: a clinic writes the report's date as it reads it
        return record_dxa(
            self.store,
            case_id,
            fields,
            self.screener.settings.follow_up,
            recorded_by,
            today or date.today(),
            from_form,
        )

    def record_no_dxa(self, case_id: int, outcome: str, recorded_by: str | None) -> ReferralOutcome:
        """The patient declined the DXA or could not travel to it: the referral leaves the
        follow-up list without a result. FollowUpError when it cannot be recorded."""
        if outcome not in NO_DXA_OUTCOMES:
            raise FollowUpError("follow_up.outcome_invalid", str(outcome)[:40])
        try:
            recorded = self.store.record_no_dxa(case_id, outcome, recorded_by)
        except OutcomeExists:
            raise FollowUpError("follow_up.has_dxa", f"case {case_id}") from None
        if recorded is None:
            raise FollowUpError("dxa.case_not_found", f"case {case_id}")
        return recorded

    def set_research_consent(self, case_id: int, answer: object) -> None:
        """The patient's answer to research use of the de-identified case."""
        if not self.store.set_research_consent(case_id, research_consent(answer)):
            raise FollowUpError("dxa.case_not_found", f"case {case_id}")


def ct_measurement(result: Mapping[str, object]) -> Mapping[str, object] | None:
    """A case's saved ct-l1 measurement, or None."""
    for m in result.get("measurements") or ():  # type: ignore[attr-defined]
        if m.get("method") == "ct-l1" and m.get("status") == "measured":
            return m
    return None


def ct_axial_box(
    measurement: Mapping[str, object], shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The square (x0, y0, width, height, in slice pixels) of an axial slice the page shows
    around a ct-l1 ROI: CT_AXIAL_HALF_MM each side of the ROI's centre, inside the slice."""
    details = measurement.get("details") or {}
    cx, cy = (details.get("roi") or {}).get("centre_px") or (shape[1] / 2, shape[0] / 2)  # type: ignore[attr-defined]
    mm = float(measurement.get("scale_mm_per_px") or 1.0)  # type: ignore[arg-type]
    half = max(8, round(CT_AXIAL_HALF_MM / mm))
    side = min(2 * half, shape[0], shape[1])
    x0 = int(min(max(0, round(cx) - half), shape[1] - side))
    y0 = int(min(max(0, round(cy) - half), shape[0] - side))
    return x0, y0, side, side


@dataclass(frozen=True)
class ImageTool:
    """Which tool reads (or will read) a case's image, or why none does: a stable code
    (wording in edgeosteo.messages) and the models or body part it concerns."""

    code: str
    detail: str = ""


def image_tool(result: Mapping[str, object]) -> ImageTool | None:
    """The tool a stored screening's image went to: the image models that ran, else the
    reason none did (no tool for the body part yet, a body part against the header, not a
    knee ...). None when there was no image to read."""
    findings = result.get("findings") or {}
    ran = [f["model_id"] for f in findings.get("results", []) if f.get("kind") != "clinical"]
    if ran:
        return ImageTool("tool.image_model", ", ".join(ran))
    for missing in findings.get("unavailable", []):
        code = missing.get("code")
        if missing.get("kind") == "clinical" or code in ("model.no_image", "model.image_refused"):
            continue
        if code == "model.unavailable_body_part":
            return ImageTool("tool.none_for_body_part", str(missing.get("detail") or ""))
        return ImageTool(str(code), str(missing.get("detail") or ""))
    return None


def tool_for_body_part(screener: Screener, body_part: str | None) -> ImageTool:
    """The tool a queued image will go to, from its body part alone."""
    if not body_part:
        return ImageTool("tool.body_part_unknown")
    models = screener.registry.of_kind("image", body_part)
    if models:
        return ImageTool("tool.image_model", ", ".join(m.id for m in models))
    return ImageTool("tool.none_for_body_part", body_part)


def refuse_what_is_not_a_radiograph(screening: Screening) -> None:
    """Raise IntakeError when the image is no radiograph: nothing of it may be kept, no
    image, no thumbnail, no case row, so no report can ever show it."""
    gates = screening.quality.gates if screening.quality else ()
    failed = next((g for g in gates if g.verdict == "fail" and g.code in NOT_A_RADIOGRAPH), None)
    if failed is not None:
        raise IntakeError(failed.code, f"{failed.gate}: {failed.measured}")


def case_state(result: Mapping[str, object], answered: bool) -> CaseState:
    """refused: intake or the quality gates refused the image; needs_answers: screened
    without clinical answers (an image from the X-ray unit); screened otherwise."""
    if refusal_code(result) is not None:
        return "refused"
    return "screened" if answered else "needs_answers"


def refusal_code(result: Mapping[str, object]) -> str | None:
    """The stable code that says why a stored screening refused its image, or None."""
    error = result.get("intake_error")
    if isinstance(error, Mapping):
        return str(error.get("code"))
    quality = result.get("quality")
    if isinstance(quality, Mapping):
        for gate in quality.get("gates", []):
            if gate.get("verdict") == "fail":
                return str(gate.get("code"))
    return None


def initials(name: str) -> str:
    """ "WANG^XIAO MING" -> "W.X.M."; a Chinese name keeps its first character per part
    ("张^三丰" -> "张三")."""
    letters = []
    for part in name.replace("^", " ").replace(",", " ").split():
        first = part[0]
        letters.append(first if not first.isascii() else first.upper() + ".")
    return "".join(letters)


def patient_label(
    identity: Mapping[str, object],
    local_patient_id: str | None,
    mode: str,
    id_chars: int,
) -> str:
    """The patient as the worklist shows them. Pseudonymised: initials and the last
    ``id_chars`` characters of the ID (``…1234``); full: name and ID."""
    name = str(identity.get("name") or "").strip()
    patient_id = str(local_patient_id or identity.get("patient_id") or "").strip()
    if mode != PSEUDONYMISED:
        return " · ".join(x for x in (name.replace("^", " ").strip(), patient_id) if x)
    tail = ""
    if patient_id:
        tail = patient_id if len(patient_id) <= id_chars else "…" + patient_id[-id_chars:]
    return " ".join(x for x in (initials(name) if name else "", tail) if x)
