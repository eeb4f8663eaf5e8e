"""The one orchestration path: intake -> quality gates -> models -> clinical -> decision.

The CLI, the page, the DICOM receiver and ``evaluate`` all call Screener.screen(); none of
them repeats a step. screen() never raises for a bad file: the failure is part of the
Screening, with its stable code, so no case is ever lost.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeosteo import __version__, anatomy, methods, quality_photo
from edgeosteo.anatomy import BodyPartChoice
from edgeosteo.clinical import ClinicalAnswers, ClinicalAssessment, assess_clinical
from edgeosteo.config import Settings, load_settings
from edgeosteo.decision import Referral, SitePolicy, decide
from edgeosteo.errors import IntakeError
from edgeosteo.findings import Findings, ModelFinding, UnavailableFinding
from edgeosteo.inference import ModelRunner
from edgeosteo.intake import ImageSource, read_bytes, read_image
from edgeosteo.intake.capture import CaptureGuess, guess_capture
from edgeosteo.intake.ct_series import read_ct_series
from edgeosteo.intake.detect import detect_kind
from edgeosteo.intake.dicom import header_anatomy
from edgeosteo.intake.photo import FilmCorners, PhotoResult, load_photo, read_photo, rectify_file
from edgeosteo.intake.types import Capture, PatientIdentity, Radiograph
from edgeosteo.measurement import MeasurementRequest, MeasurementResult, result_from_dict
from edgeosteo.models import ModelRegistry
from edgeosteo.quality import GateResult, QualityReport, assess

SCHEMA_VERSION = "1.2"  # 1.1: "anatomy" (header and chosen body part, view); 1.2: "measurements"


@dataclass(frozen=True)
class Screening:
    """Everything found for one case. ``to_dict()`` is the JSON form and holds no PHI."""

    screening_id: str
    created_at: str
    image: Mapping[str, object] | None
    intake_error: Mapping[str, object] | None
    quality: QualityReport | None
    findings: Findings
    clinical: ClinicalAssessment
    referral: Referral
    answer_problems: tuple[Mapping[str, object], ...] = ()
    body_part: str | None = None
    # the body part and view from the header and from the technician, and which was used
    anatomy: Mapping[str, object] | None = None
    # the measurements asked for, each measured or refused with its reason
    measurements: tuple[MeasurementResult, ...] = ()
    # kept apart: never serialised with the result
    identity: PatientIdentity = field(default_factory=PatientIdentity, repr=False)
    radiograph: Radiograph | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "edgeosteo_version": __version__,
            "screening_id": self.screening_id,
            "created_at": self.created_at,
            "body_part": self.body_part,
            "anatomy": dict(self.anatomy) if self.anatomy else None,
            "image": dict(self.image) if self.image else None,
            "intake_error": dict(self.intake_error) if self.intake_error else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "findings": {"primary_model": self.referral.primary_model, **self.findings.to_dict()},
            "clinical": self.clinical.to_dict(),
            "answer_problems": [dict(p) for p in self.answer_problems],
            "measurements": [m.to_dict() for m in self.measurements],
            "referral": self.referral.to_dict(),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)


@dataclass(frozen=True)
class PhotoReview:
    """A film photo as the technician sees it before screening: the photo as the phone
    shows it, the film as the models would read it, and what the gates say about it."""

    photo_rgb: np.ndarray = field(repr=False)  # H x W x 3 uint8, EXIF orientation applied
    film: PhotoResult = field(repr=False)
    quality: QualityReport

    @property
    def corners(self) -> FilmCorners | None:
        """Corners to screen with, so the film is not searched for again; None when the
        whole frame was used (nothing was found, and nothing was clicked)."""
        if self.film.corner_source == "whole_frame":
            return None
        points = tuple((float(x), float(y)) for x, y in self.film.corners)
        return FilmCorners(points, "user" if self.film.corner_source == "user" else "detected")


@dataclass(frozen=True)
class ImageIntake:
    """The intake stage's result: a radiograph (with the photo gates' results for a film
    photo), or the coded error that refused the file; all empty when no image was given."""

    radiograph: Radiograph | None = field(default=None, repr=False)
    identity: PatientIdentity = field(default_factory=PatientIdentity, repr=False)
    error: Mapping[str, object] | None = None
    photo_gates: tuple[GateResult, ...] = ()
    photo_details: Mapping[str, object] | None = None

    def describe(self) -> dict[str, object] | None:
        if self.radiograph is None:
            return None
        photo = {"photo": self.photo_details} if self.photo_details else {}
        return {**self.radiograph.describe(), **photo}


@dataclass(frozen=True)
class StoredImageResult:
    """The image half of a stored screening, read back from its ``to_dict()`` form: what
    ``reassess`` keeps while the clinical half is decided again."""

    screening_id: str
    image: Mapping[str, object] | None
    intake_error: Mapping[str, object] | None
    quality: QualityReport | None
    findings: Findings  # image and fused findings only; heatmaps stay in the store's files
    body_part: str | None
    anatomy: Mapping[str, object] | None = None
    measurements: tuple[MeasurementResult, ...] = ()

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> StoredImageResult:
        stored_quality = stored.get("quality")
        quality = (
            QualityReport(tuple(GateResult(**gate) for gate in stored_quality["gates"]))
            if stored_quality
            else None
        )
        stored_findings = stored.get("findings") or {}
        finding_fields = {f.name for f in fields(ModelFinding)} - {"heatmap"}
        results = tuple(
            ModelFinding(**{k: v for k, v in result.items() if k in finding_fields})
            for result in stored_findings.get("results", [])
            if result["kind"] != "clinical"
        )
        unavailable = tuple(
            UnavailableFinding(**missing)
            for missing in stored_findings.get("unavailable", [])
            if missing.get("kind") != "clinical"
        )
        return cls(
            screening_id=str(stored["screening_id"]),
            image=stored.get("image"),
            intake_error=stored.get("intake_error"),
            quality=quality,
            findings=Findings(results=results, unavailable=unavailable),
            body_part=stored.get("body_part"),
            anatomy=stored.get("anatomy"),
            measurements=tuple(result_from_dict(m) for m in stored.get("measurements") or ()),
        )


def capture_gate(guess: CaptureGuess) -> GateResult:
    """A digital upload's capture check: it warns (never refuses) when the file looks like a
    phone photo of a film, which should go through the photo mode to be corrected."""
    if guess.is_photo:
        return GateResult("capture", "warn", "intake.looks_like_photo", round(guess.score, 3), 0.5)
    return GateResult("capture", "pass", "quality.ok", round(guess.score, 3), 0.5)


def _parsed_answers(
    patient: ClinicalAnswers | Mapping[str, object] | None,
) -> tuple[ClinicalAnswers, tuple]:
    """The answers, and the coded problems found while reading them from a form or dict."""
    if isinstance(patient, ClinicalAnswers):
        return patient, ()
    parsed = ClinicalAnswers.from_dict(patient or {})
    return parsed.answers, parsed.problems


class Screener:
    """Holds the verified models and their sessions for the life of the process."""

    def __init__(
        self, settings: Settings | None = None, registry: ModelRegistry | None = None
    ) -> None:
        self.settings = settings or load_settings()
        self.registry = registry or ModelRegistry(self.settings.models_dir)
        self.runner = ModelRunner(
            self.registry, self.settings.runtime, self.settings.model_cache_dir
        )
        self.methods = methods.MethodRegistry(self.settings.models_dir)
        self._policy = self.settings.policy
        self._policy_lock = threading.Lock()

    @property
    def policy(self) -> SitePolicy:
        """The site policy the next decision uses."""
        with self._policy_lock:
            return self._policy

    def set_policy(self, policy: SitePolicy) -> None:
        """Change the policy for every later screening, from any thread (the admin page,
        while the receiver's worker screens)."""
        if not isinstance(policy, SitePolicy):
            raise TypeError("set_policy needs a PolicySettings")
        with self._policy_lock:
            self._policy = policy

    def screen(
        self,
        source: ImageSource | None,
        patient: ClinicalAnswers | Mapping[str, object] | None = None,
        body_part: str | None = None,
        capture: Capture = "digital",
        film_corners: FilmCorners | Sequence[Sequence[float]] | None = None,
        body_part_confirmed: bool = False,
        capture_guess: CaptureGuess | None = None,
        measurements: Sequence[MeasurementRequest] = (),
    ) -> Screening:
        """Screen one case. ``capture="photo"`` means a phone photograph of a printed film:
        the film is found (or taken from ``film_corners``: four clicks in photo pixels, or
        the corners a review found), rectified and checked by the photo gates before the
        usual gates run. ``body_part`` is the technician's choice; None takes the image's
        header, and a choice the header contradicts runs no image model unless
        ``body_part_confirmed``. ``measurements`` are the methods to run with the
        user's taps (radiograph pixels)."""
        answers, problems = _parsed_answers(patient)
        intake = self.read(source, capture, film_corners, capture_guess)
        radiograph = intake.radiograph
        quality = self.check_quality(intake)
        choice = self.choose_body_part(intake, body_part, body_part_confirmed)
        part = choice.body_part
        findings = self.run_models(intake, quality, choice, answers)
        measured = tuple(self.measure(intake, quality, choice, r) for r in measurements)
        clinical, referral = self.decide(answers, findings, quality, measured)
        return Screening(
            screening_id=str(uuid.uuid4()),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            image=intake.describe(),
            intake_error=intake.error,
            quality=quality,
            findings=findings,
            clinical=clinical,
            referral=referral,
            answer_problems=tuple(p.to_dict() for p in problems),
            body_part=part,
            anatomy=choice.to_dict(),
            measurements=measured,
            identity=intake.identity,
            radiograph=radiograph,
        )

    # --- the stages, each callable on its own (reassess and bench call them) -------------

    def guess_capture(self, data: bytes) -> CaptureGuess:
        """Whether a raster file looks like a phone photo of a film (DICOM: never)."""
        return guess_capture(data, thresholds=self.settings.capture)

    def read(
        self,
        source: ImageSource | None,
        capture: Capture = "digital",
        film_corners: FilmCorners | Sequence[Sequence[float]] | None = None,
        capture_guess: CaptureGuess | None = None,
    ) -> ImageIntake:
        """Intake: the file as a radiograph (a film photo found, rectified and measured by
        its own gates), or the coded reason it could not be read. Never raises for a bad
        file. A digital upload that looks like a photo of a film carries the warning gate
        ``intake.looks_like_photo`` (``capture_guess``: one the caller already made)."""
        if source is None:
            return ImageIntake()
        try:
            if capture == "photo":
                photo = read_photo(source, self.settings.photo, film_corners, self.settings.intake)
                gates = quality_photo.photo_gates(photo, self.settings.photo)
                return ImageIntake(
                    radiograph=photo.radiograph,
                    photo_gates=gates,
                    photo_details={
                        **photo.describe(),
                        "quality": QualityReport(gates).to_dict(),
                    },
                )
            data = read_bytes(source, self.settings.intake)
            read = read_image(data, self.settings.intake)
        except IntakeError as exc:
            return ImageIntake(error=exc.to_dict())
        if read.radiograph.source_format == "dicom":
            return ImageIntake(radiograph=read.radiograph, identity=read.identity)
        guess = capture_guess or self.guess_capture(data)
        return ImageIntake(
            radiograph=read.radiograph,
            identity=read.identity,
            photo_gates=(capture_gate(guess),),
        )

    def check_quality(self, intake: ImageIntake) -> QualityReport | None:
        """The quality gates (after the photo gates, for a photo); None without an image."""
        if intake.radiograph is None:
            return None
        return self._quality(intake.radiograph, intake.photo_gates)

    def header_anatomy(self, data: bytes) -> anatomy.Anatomy:
        """The body part and view a file's own header states, read without decoding the
        image (the page sets its body-part control from it); empty for raster files."""
        if detect_kind(data[:132]) != "dicom":
            return anatomy.Anatomy()
        fields_ = header_anatomy(data)
        if fields_ is None:
            return anatomy.Anatomy()
        return anatomy.from_header(
            fields_.body_part_examined,
            fields_.view_position,
            fields_.descriptions,
            self.settings.anatomy,
        )

    def choose_body_part(
        self, intake: ImageIntake, chosen: str | None, confirmed: bool = False
    ) -> BodyPartChoice:
        """The body part and view the models are chosen for: the header's, the
        technician's, and whether they agree."""
        radiograph = intake.radiograph
        header = (
            anatomy.from_header(
                radiograph.body_part,
                radiograph.view_position,
                radiograph.descriptions,
                self.settings.anatomy,
            )
            if radiograph is not None
            else anatomy.Anatomy()
        )
        return anatomy.choose_body_part(chosen, confirmed, header, self.settings.anatomy)

    def run_models(
        self,
        intake: ImageIntake,
        quality: QualityReport | None,
        choice: BodyPartChoice | None,
        answers: ClinicalAnswers,
        timings: dict[str, list[float]] | None = None,
    ) -> Findings:
        """Every installed model that applies: clinical ones always, image and fused ones
        on a usable image of their body part and view."""
        return self.runner.findings(
            intake.radiograph,
            quality.usable if quality else False,
            choice.body_part if choice else None,
            answers.to_dict(),
            image_refused=intake.error is not None,
            timings=timings,
            view=choice.view if choice else None,
            image_refusal=choice.refusal() if choice else None,
        )

    def measure(
        self,
        intake: ImageIntake,
        quality: QualityReport | None,
        choice: BodyPartChoice | None,
        request: MeasurementRequest,
    ) -> MeasurementResult:
        """One measurement method on the image with the user's taps, or its coded refusal
        (an unusable image, another body part, bad taps, no scale). Never raises."""
        return methods.measure(
            request,
            intake.radiograph,
            quality.usable if quality else False,
            choice.body_part if choice else None,
            choice.view if choice else None,
            self.methods,
            self.settings.measurement,
        )

    def measure_series(self, folder: Path, request: MeasurementRequest) -> dict[str, Any]:
        """A measurement on the CT series in ``folder`` (``ct-l1``), as its ``to_dict()``;
        a folder that is not one readable axial series is refused with the intake's code.
        Never raises."""
        try:
            series = read_ct_series(folder)
        except IntakeError as error:
            return {"status": "refused", "method": request.method, **error.to_dict()}
        return methods.measure_series(request, series, self.methods).to_dict()

    def decide(
        self,
        answers: ClinicalAnswers,
        findings: Findings,
        quality: QualityReport | None,
        measurements: Sequence[MeasurementResult] = (),
    ) -> tuple[ClinicalAssessment, Referral]:
        """The clinical instruments, then the referral under the site's current policy."""
        clinical = assess_clinical(answers)
        return clinical, decide(answers, clinical, findings, quality, self.policy, measurements)

    def review_photo(
        self, source: ImageSource, film_corners: FilmCorners | None = None
    ) -> PhotoReview:
        """Intake and quality gates of a film photo, without the models: what the page shows
        beside the photo before the technician screens it. Unlike screen(), an unreadable
        file raises IntakeError: the technician is at the form and chooses another."""
        photo = load_photo(source, self.settings.intake)
        film = rectify_file(photo, self.settings.photo, film_corners, self.settings.intake)
        gates = quality_photo.photo_gates(film, self.settings.photo)
        return PhotoReview(photo.rgb, film, self._quality(film.radiograph, gates))

    def _quality(
        self, radiograph: Radiograph, photo_gates: Sequence[GateResult] = ()
    ) -> QualityReport:
        return QualityReport(tuple(photo_gates) + assess(radiograph, self.settings.quality).gates)

    def reassess(
        self,
        stored: Mapping[str, Any],
        patient: ClinicalAnswers | Mapping[str, object] | None,
        measurements: Sequence[MeasurementResult] | None = None,
    ) -> Screening:
        """A stored screening (its ``to_dict()`` form) decided again with new clinical
        answers, for answers given after the image was screened.

        Intake outcome, quality report and image findings are taken as stored; only the
        clinical models, the clinical instruments and the referral run again, so no image
        model runs twice. Fused models need the image and so keep their stored outcome.
        ``measurements`` replace the stored ones (a reader measured after screening).
        """
        answers, problems = _parsed_answers(patient)
        image = StoredImageResult.from_dict(stored)
        clinical_only = self.run_models(ImageIntake(), None, None, answers)
        findings = Findings(
            results=tuple(r for r in clinical_only.results if r.kind == "clinical")
            + image.findings.results,
            unavailable=tuple(u for u in clinical_only.unavailable if u.kind == "clinical")
            + image.findings.unavailable,
        )
        measured = tuple(measurements) if measurements is not None else image.measurements
        clinical, referral = self.decide(answers, findings, image.quality, measured)
        return Screening(
            screening_id=image.screening_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            image=image.image,
            intake_error=image.intake_error,
            quality=image.quality,
            findings=findings,
            clinical=clinical,
            referral=referral,
            answer_problems=tuple(p.to_dict() for p in problems),
            body_part=image.body_part,
            anatomy=image.anatomy,
            measurements=measured,
        )


def screen(
    source: ImageSource | None,
    patient: ClinicalAnswers | Mapping[str, object] | None = None,
    body_part: str | None = None,
    settings: Settings | None = None,
    capture: Capture = "digital",
    film_corners: FilmCorners | Sequence[Sequence[float]] | None = None,
) -> Screening:
    """Screen one case with a fresh Screener (for one-off use; long-running callers keep a
    Screener so the model sessions are created once)."""
    return Screener(settings).screen(
        source, patient, body_part, capture=capture, film_corners=film_corners
    )
