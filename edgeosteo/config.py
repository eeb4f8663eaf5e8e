"""Every threshold, limit and path a site can change, in one place.

Defaults are safe for a small clinic box. A site overrides them with a TOML file
(``edgeosteo.toml`` in the data directory, or the path in ``--config`` /
``EDGEOSTEO_CONFIG``); only the keys present in the file change. ``Settings.config_file``
records which file that was, and the admin page writes that same file.

Fixed by their published definitions rather than tuned by a site, and so kept beside the
code that applies them: the clinical instruments' formulas, cut-offs and guideline ages
(``edgeosteo.clinical``), what each instrument band points to (``decision.INSTRUMENT_BANDS``),
the governance rule's AUC floor (``models.IMAGE_ALONE_MIN_AUC``) and the photo path's
numerical guards (private constants of ``edgeosteo.intake.photo``). Thresholds that a
site does tune live here, with the measurements behind each value in the comment beside it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from edgeosteo.errors import ConfigError

APP_NAME = "edgeosteo"
CONFIG_FILE_NAME = "edgeosteo.toml"
REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# long side of the stored display image and of heatmaps drawn on it
DISPLAY_LONG_SIDE_PX = 1024


@dataclass(frozen=True)
class IntakeLimits:
    max_file_bytes: int = 200 * 1024 * 1024
    # 40 MP is the largest accepted image (a 6000x6600 film scan); a bigger header is a
    # decompression-bomb risk on a box with 2-4 GB of memory.
    max_pixels: int = 40_000_000
    min_side_px: int = 64


@dataclass(frozen=True)
class QualityThresholds:
    """Gate thresholds, with the measured values behind each one beside it."""

    analysis_long_side_px: int = 1024
    resolution_fail_px: int = 256
    resolution_warn_px: int = 512
    # Fraction of the central half of the image stuck at the bright extreme (burnt-out
    # detector or saturated export). Dark clipping is not used: air is legitimately black.
    clipped_level: float = 0.995
    clipped_warn_fraction: float = 0.15
    clipped_fail_fraction: float = 0.40
    # 90th percentile over an 8x8 grid of tiles of the Laplacian variance, image resized to
    # analysis_long_side_px, on a 0-255 scale. Knee set: min 40, median 343; the sharp
    # pydicom-data extremity CR: 7.6; knee images blurred with sigma 6 px: max 6.2.
    blur_tiles: int = 8
    blur_warn_variance: float = 5.0
    blur_fail_variance: float = 2.0
    blank_fail_std: float = 0.02
    # Hasler-Susstrunk colourfulness on a 0-255 scale: the knee set's RGB JPEGs <= 0.3,
    # colour photographs 45-70.
    colour_fail: float = 12.0
    # A document: mostly bright paper carrying many thin dark strokes (black-hat response).
    # Knee set: ink <= 0.0093; a text page: 0.14.
    document_bright_fraction: float = 0.5
    document_ink_fraction: float = 0.04
    document_ink_contrast: float = 0.25
    document_stroke_px: int = 15
    # DICOM modalities that carry a plain projection radiograph (or may: OT/SC exports)
    radiograph_modalities: tuple[str, ...] = ("CR", "DX", "DR", "RG", "OT", "SC")


# the instruments a policy may count (decision.INSTRUMENT_BANDS says what each band means)
POLICY_INSTRUMENTS: tuple[str, ...] = ("osta", "ost_men", "orai", "score", "osiris")
# the measurement methods a site may count (edgeosteo.methods; each has its card in models/)
POLICY_MEASUREMENTS: tuple[str, ...] = ("mci", "cti", "mcw", "vertebrae")
# a site may also count these; by default their band is shown as information only (ct-l1:
# its outline finder is validated on phantoms only)
POLICY_MEASUREMENTS_OPTIONAL: tuple[str, ...] = ("ct-l1",)
# the rules a site may calibrate on its own DXA results (edgeosteo.calibration): OSTA (OST for
# men), the clinical model's probability, and each measurement method
CALIBRATION_RULES: tuple[str, ...] = (
    "osta",
    "clinical_model",
    *POLICY_MEASUREMENTS,
    *POLICY_MEASUREMENTS_OPTIONAL,
)
# the DXA references a threshold is calibrated for: the lowest T-score at or below -2.5, or -1
CALIBRATION_REFERENCES: tuple[str, ...] = ("t_le_-2.5", "t_le_-1")


def _policy_probability(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("config.invalid", f"policy.{name} must be a number")
    if not 0.0 < value < 1.0:
        raise ConfigError("config.invalid", f"policy.{name} must lie strictly between 0 and 1")


@dataclass(frozen=True)
class PolicySettings:
    """How one site turns evidence into a referral category (the ``[policy]`` table).

    Safe defaults; a site changes them in its configuration and records why, bumping
    policy_version. Image thresholds apply to calibrated probabilities with ``>=``; see
    ``decision.recalibrate_threshold`` to set them from the site's own labelled cases.
    """

    policy_version: str = "default-2"  # 2: guideline indications refer
    refer_p_osteoporosis: float = 0.5
    consider_p_osteoporosis: float = 0.2
    consider_p_low_bone_mass: float = 0.5
    # A model's estimated T-score is shown, but drives the category only if the site says so.
    use_estimated_t_score: bool = False
    refer_estimated_t_score: float = -2.5
    consider_estimated_t_score: float = -1.0
    counted_instruments: tuple[str, ...] = ("osta", "ost_men")
    # measurements whose band (the cut-off their card cites) drives the category; others
    # are shown as information
    counted_measurements: tuple[str, ...] = POLICY_MEASUREMENTS
    dxa_locally_available: bool = False
    rescreen_interval_months: int = 24
    # a threshold the site calibrated on its own DXA results (the admin page's calibration,
    # edgeosteo.calibration): at or beyond it the rule refers, short of it routine; it
    # replaces that rule's published cut-off (OSTA <= -1, a method card's band). "" = none.
    calibrated_rule: str = ""
    calibrated_reference: str = "t_le_-2.5"
    calibrated_threshold: float = 0.0
    calibration_date: str = ""  # YYYY-MM-DD
    calibration_cases: int = 0  # labelled cases it rests on
    calibrated_by: str = ""  # the administrator who chose it
    calibration_basis: str = ""  # e.g. "target sensitivity 0.90", "DXA capacity 30 a month"

    def __post_init__(self) -> None:
        if not isinstance(self.policy_version, str) or not self.policy_version.strip():
            raise ConfigError("config.invalid", "policy.policy_version must be a non-empty text")
        for name in ("refer_p_osteoporosis", "consider_p_osteoporosis", "consider_p_low_bone_mass"):
            _policy_probability(name, getattr(self, name))
        if self.consider_p_osteoporosis > self.refer_p_osteoporosis:
            raise ConfigError(
                "config.invalid", "policy.consider_p_osteoporosis exceeds refer_p_osteoporosis"
            )
        if self.refer_estimated_t_score > self.consider_estimated_t_score:
            raise ConfigError(
                "config.invalid",
                "policy.refer_estimated_t_score must be <= consider_estimated_t_score",
            )
        names = self.counted_instruments
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise ConfigError(
                "config.invalid", "policy.counted_instruments must be a list of names"
            )
        unknown = [n for n in names if n not in POLICY_INSTRUMENTS]
        if unknown:
            raise ConfigError(
                "config.invalid", f"policy.counted_instruments: unknown {', '.join(unknown)}"
            )
        measured = self.counted_measurements
        if not isinstance(measured, tuple) or not all(isinstance(n, str) for n in measured):
            raise ConfigError(
                "config.invalid", "policy.counted_measurements must be a list of names"
            )
        known = (*POLICY_MEASUREMENTS, *POLICY_MEASUREMENTS_OPTIONAL)
        if unknown := [n for n in measured if n not in known]:
            raise ConfigError(
                "config.invalid", f"policy.counted_measurements: unknown {', '.join(unknown)}"
            )
        months = self.rescreen_interval_months
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
            raise ConfigError("config.invalid", "policy.rescreen_interval_months must be 1-120")
        if self.calibrated_rule not in ("", *CALIBRATION_RULES):
            raise ConfigError(
                "config.invalid", f"policy.calibrated_rule: unknown {self.calibrated_rule}"
            )
        if self.calibrated_reference not in CALIBRATION_REFERENCES:
            raise ConfigError(
                "config.invalid", "policy.calibrated_reference must be t_le_-2.5 or t_le_-1"
            )
        threshold = self.calibrated_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError("config.invalid", "policy.calibrated_threshold must be a number")
        if not math.isfinite(threshold):
            raise ConfigError("config.invalid", "policy.calibrated_threshold must be finite")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySettings:
        """Build from a ``[policy]`` TOML table, with the same merge and type rules as every
        other table; unknown keys and wrong types are configuration errors."""
        if not isinstance(data, Mapping):
            raise ConfigError("config.invalid", "policy must be a table")
        return _merge(cls(), data, "policy.")

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["counted_instruments"] = list(self.counted_instruments)
        data["counted_measurements"] = list(self.counted_measurements)
        return data


@dataclass(frozen=True)
class AnatomySettings:
    """The one table from what a header says to a body part and a view (edgeosteo.anatomy).

    Coded values (BodyPartExamined, ViewPosition) are looked up whole; a coded value the
    table does not know stands for itself (EXTREMITY is not KNEE). Descriptions (Study,
    Series, Protocol) are searched for the patterns in order, so longer, more specific
    patterns come first. 正位 (frontal) is PA for a chest or a hand and AP otherwise.
    """

    body_parts: dict[str, str] = field(
        default_factory=lambda: {
            "KNEE": "KNEE",
            "HIP": "HIP",
            "PELVIS": "HIP",
            "LSPINE": "LSPINE",
            "LUMBAR SPINE": "LSPINE",
            "TSPINE": "TSPINE",
            "TLSPINE": "TLSPINE",
            "CHEST": "CHEST",
            "THORAX": "CHEST",
            "HAND": "HAND",
            "JAW": "JAW",
            "MANDIBLE": "JAW",
            "FEMUR": "HIP",
        }
    )
    views: dict[str, str] = field(
        default_factory=lambda: {
            "AP": "AP",
            "PA": "PA",
            "LL": "LATERAL",
            "RL": "LATERAL",
            "LAT": "LATERAL",
            "LATERAL": "LATERAL",
        }
    )
    description_body_parts: tuple[tuple[str, str], ...] = (
        ("膝", "KNEE"),
        ("KNEE", "KNEE"),
        ("胸腰", "TLSPINE"),
        ("腰椎", "LSPINE"),
        ("L-SPINE", "LSPINE"),
        ("LUMBAR", "LSPINE"),
        ("胸椎", "TSPINE"),
        ("THORACIC SPINE", "TSPINE"),
        ("胸部", "CHEST"),
        ("胸片", "CHEST"),
        ("CHEST", "CHEST"),
        ("骨盆", "HIP"),
        ("PELVIS", "HIP"),
        ("髋", "HIP"),
        ("HIP", "HIP"),
        ("手", "HAND"),
        ("HAND", "HAND"),
        ("全景", "JAW"),
        ("曲面断层", "JAW"),
        ("PANORAMIC", "JAW"),
        ("OPG", "JAW"),
    )
    description_views: tuple[tuple[str, str], ...] = (
        ("全景", "PANORAMIC"),
        ("曲面断层", "PANORAMIC"),
        ("PANORAMIC", "PANORAMIC"),
        ("侧位", "LATERAL"),
        ("LATERAL", "LATERAL"),
        (" LAT", "LATERAL"),
        ("斜位", "OBLIQUE"),
        ("OBLIQUE", "OBLIQUE"),
        ("正位", "FRONTAL"),
        ("负重位", "AP"),
        (" AP", "AP"),
        (" PA", "PA"),
    )


@dataclass(frozen=True)
class RuntimeSettings:
    backend: str = "auto"  # "auto" | "onnxruntime" | "openvino"; see backend_for_cpu()
    precision: str = "int8"  # "int8" | "fp32"
    intra_op_threads: int = 0  # 0 = number of physical cores
    cache_dir: Path | None = None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    models_dir: Path
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    appliance: ApplianceSettings = field(default_factory=lambda: ApplianceSettings())
    web: WebSettings = field(default_factory=lambda: WebSettings())
    sync: SyncSettings = field(default_factory=lambda: SyncSettings())
    photo: PhotoThresholds = field(default_factory=lambda: PhotoThresholds())
    anatomy: AnatomySettings = field(default_factory=AnatomySettings)
    capture: CaptureThresholds = field(default_factory=lambda: CaptureThresholds())
    receiver: ReceiverSettings = field(default_factory=lambda: ReceiverSettings())
    hub: HubSettings = field(default_factory=lambda: HubSettings())
    policy: PolicySettings = field(default_factory=PolicySettings)
    measurement: MeasurementSettings = field(default_factory=lambda: MeasurementSettings())
    follow_up: FollowUpSettings = field(default_factory=lambda: FollowUpSettings())
    calibration: CalibrationSettings = field(default_factory=lambda: CalibrationSettings())
    language: str = "zh_CN"
    # the TOML file these settings were read from, and the one the admin page writes: the
    # data directory's edgeosteo.toml unless --config or EDGEOSTEO_CONFIG named another
    config_file: Path | None = None

    @property
    def model_cache_dir(self) -> Path:
        return self.runtime.cache_dir or (self.data_dir / "model-cache")

    @property
    def settings_file(self) -> Path:
        """The file a saved change goes to: the one these settings were read from."""
        return self.config_file or (self.data_dir / CONFIG_FILE_NAME)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_models_dir() -> Path:
    return REPO_MODELS_DIR


def _merge(instance: Any, overrides: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(instance)}
    if isinstance(instance, Settings):
        known.pop("config_file")  # where the settings came from, not a setting
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError("config.invalid", f"unknown setting {where}{key}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError("config.invalid", f"{where}{key} must be a table")
            changes[key] = _merge(current, value, f"{where}{key}.")
        elif isinstance(current, Path) or key.endswith("_dir"):
            changes[key] = Path(value) if value is not None else None
        elif isinstance(current, tuple):
            if not isinstance(value, list | tuple):
                raise ConfigError("config.invalid", f"{where}{key} must be a list")
            changes[key] = tuple(value)
        else:
            expected = type(current)
            # a bool is an int to Python, never a number to a site's file
            if isinstance(value, bool) and expected is not bool and current is not None:
                raise ConfigError("config.invalid", f"{where}{key} must be {expected.__name__}")
            if expected is float and isinstance(value, int):
                value = float(value)
            if current is not None and not isinstance(value, expected):
                raise ConfigError("config.invalid", f"{where}{key} must be {expected.__name__}")
            changes[key] = value
    return dataclasses.replace(instance, **changes)


def load_settings(
    data_dir: Path | str | None = None,
    config_file: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings: defaults, then the TOML file, then explicit overrides."""
    env = os.environ if environ is None else environ
    resolved_data_dir = Path(data_dir or env.get("EDGEOSTEO_DATA_DIR") or default_data_dir())
    settings = Settings(
        data_dir=resolved_data_dir,
        models_dir=Path(env.get("EDGEOSTEO_MODELS_DIR") or default_models_dir()),
    )
    path = Path(config_file or env.get("EDGEOSTEO_CONFIG") or resolved_data_dir / CONFIG_FILE_NAME)
    settings = dataclasses.replace(settings, config_file=path)
    if path.is_file():
        try:
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("config.invalid", f"{path}: {exc}") from exc
        settings = _merge(settings, loaded, "")
    if overrides:
        settings = _merge(settings, overrides, "")
    if settings.runtime.backend == "auto":
        runtime = dataclasses.replace(settings.runtime, backend=backend_for_cpu())
        settings = dataclasses.replace(settings, runtime=runtime)
    return settings


def backend_for_cpu(machine: str | None = None, cpuinfo: str | None = None) -> str:
    """The backend that "auto" means on this CPU.

    OpenVINO on Intel x86-64 (its CPU plugin is tuned for Atom and Core parts such as the
    N100); ONNX Runtime everywhere else: on AMD x86-64, which OpenVINO does not officially
    support, and on 64-bit ARM (Raspberry Pi 5 class), where ONNX Runtime's MLAS kernels
    are the mature path and OpenVINO's ARM plugin is newer. Both give the same outputs
    within 1e-4 on the shipped FP32 models; ``edgeosteo selftest`` checks that on the box.
    """
    import platform

    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return "onnxruntime"
    if cpuinfo is None:
        from edgeosteo.hardware import cpuinfo_text

        cpuinfo = cpuinfo_text()
    return "openvino" if "GenuineIntel" in cpuinfo else "onnxruntime"


@dataclass(frozen=True)
class ApplianceSettings:
    """The installed station (firmware/): watchdog health loop, support bundle, self-test."""

    # The health loop GETs /healthz this often (and at least twice per WatchdogSec); a
    # request slower than the timeout counts as a hung server, so no WATCHDOG=1 is sent.
    health_interval_s: float = 15.0
    health_timeout_s: float = 10.0
    # Journal lines per unit in a support bundle.
    support_journal_lines: int = 2000
    # Reference outputs in manifests come from the FP32 files; both backends must
    # reproduce them this closely (the tolerance tests/test_shipped_models.py states).
    selftest_tolerance: float = 1e-4


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # the clinic LAN is usually plain HTTP; set true only behind TLS
    https: bool = False
    max_upload_bytes: int = 64 * 1024 * 1024
    session_minutes: int = 12 * 60
    concurrent_screenings: int = 1
    login_attempts_before_lock: int = 5
    login_lock_seconds: int = 300
    # the JSON API's HTTP Basic credentials, once verified, are trusted this long (0: never)
    api_credentials_cache_seconds: int = 300
    waitress_threads: int = 4
    # `edgeosteo serve` starts the page only when true (a receiver-only box may turn it off)
    enabled: bool = True
    # the time zone times are shown in on the page, the printout and the CSV: an IANA name
    # such as "Asia/Shanghai"; "" takes the system's. Times are stored in UTC whatever it is.
    time_zone: str = ""
    # printed at the head of the report, e.g. "某某县人民医院"
    hospital_name: str = ""

    def __post_init__(self) -> None:
        if self.time_zone:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ConfigError(
                    "config.invalid",
                    f"web.time_zone: {self.time_zone!r} is no time zone (e.g. Asia/Shanghai)",
                ) from exc


@dataclass(frozen=True)
class SyncSettings:
    # the regional hub's URL; empty means results stay on the box
    endpoint: str = ""
    # who this box is, as the hub knows it (``edgeosteo hub add-device SITE DEVICE``)
    site_id: str = ""
    device_id: str = ""
    # the device's bearer token and the per-site pseudonym key; "" means a file of that
    # name in the data directory (sync-token, site-secret)
    token_file: str = ""
    site_secret_file: str = ""
    # a CA bundle for a hub with a private certificate; "" uses the system's
    ca_file: str = ""
    batch_size: int = 50
    # one image is a few megabytes: batches that carry images are this small
    image_batch_size: int = 2
    max_batches_per_run: int = 200
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    # full-jitter exponential backoff: wait uniform(0, min(cap, base * 2**attempts))
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 6 * 3600.0
    # de-identified DICOM upload (PS3.15 Annex E basic profile); off unless a site opts in
    include_images: bool = False
    # de-identified image dates move back by 1..date_shift_max_days, fixed per patient
    date_shift_max_days: int = 365
    # ages from this one up are sent as one group (HIPAA safe harbour: 90 and over)
    oldest_age_group_years: int = 90
    # plain http is refused except to these hosts (a hub on the same machine, tests)
    plain_http_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    # an image from the X-ray unit waits this long for its clinical answers before its
    # result is sent without them; answers given sooner send it at once, with them
    hold_unanswered_hours: float = 24.0


@dataclass(frozen=True)
class HubSettings:
    """The reference hub (``edgeosteo hub``): receives bundles from the boxes."""

    host: str = "127.0.0.1"
    port: int = 8090
    # SQLAlchemy URL; "" means SQLite in the hub's data directory (hub.sqlite3)
    database_url: str = ""
    max_body_bytes: int = 256 * 1024 * 1024
    waitress_threads: int = 4
    # age bands of the dashboard's referral rates (lower edges, years)
    age_band_edges: tuple[int, ...] = (0, 50, 60, 70, 80, 90)
    # the referral categories that count as "referred" in the dashboard's rates
    referred_categories: tuple[str, ...] = ("refer", "urgent")


@dataclass(frozen=True)
class PhotoThresholds:
    """Phone photographs of X-ray films (edgeosteo.intake.photo). The measurements behind
    each value are in docs/photos.md (simulated photos from tools/photo_sim.py)."""

    # Decoded photos are reduced to this long side before anything else; the film is found
    # on a smaller copy; the rectified film is at most this long.
    work_long_side_px: int = 2048
    detect_long_side_px: int = 800
    output_long_side_px: int = 2048
    # A film candidate: a convex quadrilateral covering at least this much of the frame,
    # whose four sides are each supported by a straight edge along at least this fraction
    # of their length (a hand or a clip may hide the rest), brighter outside (lightbox or
    # window) than inside on all four sides by at least film_edge_step (0-1 sRGB).
    film_min_area_fraction: float = 0.04
    film_side_support: float = 0.5
    film_edge_step: float = 0.04
    # Assumed focal length over the photo's long side (a phone's 26 mm-equivalent main
    # camera); used for the film's aspect ratio and the tilt of the phone.
    focal_length_factor: float = 0.8
    perspective_warn_deg: float = 35.0
    perspective_fail_deg: float = 42.0
    # Share of the photo frame the film covers.
    film_small_warn_fraction: float = 0.25
    film_small_fail_fraction: float = 0.16
    # Near-white phone pixels (0-1 sRGB, brightest channel) inside the film.
    clipped_level: float = 0.97
    overexposed_warn_fraction: float = 0.12
    overexposed_fail_fraction: float = 0.25
    # a frame this blown out hides where the film ends
    overexposed_frame_fraction: float = 0.5
    glare_warn_fraction: float = 0.004
    glare_fail_fraction: float = 0.012
    # Blur: the spread (Gaussian sigma, in pixels of the film at analysis_long_side_px) of
    # the film's cut edges against the light, in the most blurred side.
    analysis_long_side_px: int = 1024
    blur_warn_px: float = 1.6
    blur_fail_px: float = 2.0
    # Moire: strongest isolated spectral peak over the median power at its frequency.
    moire_window_px: int = 512
    moire_fail_ratio: float = 30.0
    # Fine colour detail (0-255) of the film: films are gray (simulated photos <= 2.0),
    # monitors fringe (>= 7). A colour photograph is colourful overall as well, so fringes
    # count as a screen only when they are a good share of all the colour.
    fringe_fail: float = 5.0
    fringe_share_of_colour: float = 0.4
    # Colourfulness of the white-balanced film (Hasler-Susstrunk, 0-255 scale).
    colour_fail: float = 12.0


@dataclass(frozen=True)
class MeasurementSettings:
    """How lengths in an image become millimetres at the bone (the ``[measurement]`` table).

    ``magnification`` is the factor between the detector and the bone for each body part:
    the detector's pixel spacing is divided by it. A body part with no factor here has no
    millimetres, so methods that need them refuse with ``measurement.no_scale``. A
    panoramic unit magnifies by its own factor (about 1.2 to 1.3, in the unit's manual):
    the installer enters it as ``JAW``.
    """

    magnification: dict[str, float] = field(default_factory=lambda: {"HAND": 1.0, "HIP": 1.0})

    def __post_init__(self) -> None:
        if not isinstance(self.magnification, dict):
            raise ConfigError("config.invalid", "measurement.magnification must be a table")
        for part, factor in self.magnification.items():
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                raise ConfigError("config.invalid", f"measurement.magnification.{part}: a number")
            if not 0.5 <= float(factor) <= 3.0:
                raise ConfigError(
                    "config.invalid", f"measurement.magnification.{part} must be 0.5-3.0"
                )

    def magnification_for(self, body_part: str | None, capture: str = "digital") -> float | None:
        """The factor for this body part, or None when millimetres are unknown."""
        if capture != "digital" or body_part is None:
            return None
        factor = self.magnification.get(body_part)
        return float(factor) if factor is not None else None


@dataclass(frozen=True)
class CaptureThresholds:
    """Is a raster file a phone photo of a film or a digital radiograph
    (edgeosteo.intake.capture)? Measured by tools/eval_capture.py (report in
    tools/reports/capture.json, figures in docs/photos.md)."""

    # A phone's camera EXIF (make, model, exposure, focal length) is decisive on its own;
    # the cues below are for photos whose EXIF was stripped. Each is fitted by the
    # geometric mean of the radiographs' largest value (or a floor) and the 5th percentile
    # of the simulated photos in which the film is visible (343 photos of the 147 knee
    # films, 588 radiograph files; the same on either half of the films within 0.01).
    # Median chroma (0-255, YCrCb) of the picture on a 1024 px copy: radiographs 0 (every
    # knee file, every packaged export), photos' 5th percentile 1.0 (floor 0.25).
    chroma_median_photo: float = 0.5
    # Share of pixels with chroma >= 2: radiographs 0, photos' 5th percentile 0.15 (floor
    # 0.02); overexposed photos 0-0.44, median 0.15: the cue that still finds most of them.
    chroma_share_photo: float = 0.054
    # Lit film border: a film outline (intake.photo.find_film) whose surrounding band is at
    # least rim_min_level of the picture's brightest and brighter than the film by
    # rim_step_photo (0-1): radiographs with an outline that bright step up by <= 0.153
    # (floor 0.2), photos' 5th percentile 0.58; a gray-converted photo (no colour) is
    # found by this alone (49 of 49 simulated).
    rim_step_photo: float = 0.34
    rim_min_level: float = 0.8


@dataclass(frozen=True)
class ReceiverSettings:
    """The X-ray unit's side: DICOM receiver (SCP), watch folder, screening worker, worklist.
    What each rule means and how a console is set up is in docs/receiver.md."""

    scp_enabled: bool = True
    ae_title: str = "EDGEOSTEO"
    # like the page, the receiver listens on this box only until a site opens it on purpose
    host: str = "127.0.0.1"
    port: int = 11112
    # empty: any calling AE title / any address may store
    allowed_calling_ae_titles: tuple[str, ...] = ()
    allowed_addresses: tuple[str, ...] = ()
    # a console that calls another AE title is refused (A-ASSOCIATE-RJ, called AE title not
    # recognised); true accepts whatever title it calls
    accept_any_called_ae_title: bool = False
    max_associations: int = 4
    # an association that has sent data may pause this long between PDUs before it is aborted
    network_timeout_seconds: float = 60.0
    # a connection that sends no A-ASSOCIATE-RQ, or an association that sends no DIMSE
    # message, is dropped after this long, so idle peers cannot hold every association slot
    idle_timeout_seconds: float = 10.0
    # the worker that screens received images, one at a time through the page's service
    worker_enabled: bool = True
    # queued screenings; past this a C-STORE gets "out of resources" and the console retries
    queue_limit: int = 500
    worker_poll_seconds: float = 5.0
    job_max_attempts: int = 3
    job_retry_seconds: float = 30.0
    # a folder a console exports to (or a mounted USB stick); None: no watch folder
    watch_dir: Path | None = None
    # a file is taken once its size and modification time stayed put this long
    watch_stable_seconds: float = 2.0
    watch_poll_seconds: float = 1.0
    # eligibility: which received images are screened automatically
    modalities: tuple[str, ...] = ("CR", "DX", "DR", "RG", "OT")
    # extra BodyPartExamined (upper case) -> body part entries, added to [anatomy] body_parts
    # (the one table); every body part is screened, by a model where one reads it
    body_parts: dict[str, str] = field(default_factory=dict)
    # assumed when a file names no body part (plain image files, bare exports); "" refuses
    default_body_part: str = ""
    # ViewPosition values screened; empty: any view
    view_positions: tuple[str, ...] = ()
    # ImageLaterality values not screened: "B" is both sides in one image
    refused_lateralities: tuple[str, ...] = ("B",)
    # screening is for adults at risk; younger patients are listed, not screened
    min_age_years: int = 40
    # CT series for ct-l1 (off until a site turns it on): CT Image Storage is then accepted
    # and each series held in <data_dir>/ct_series/ until no slice of it has arrived for
    # this long, then read and kept as complete or refused with its reason
    ct_series_enabled: bool = False
    ct_series_quiet_seconds: float = 30.0
    # how the worklist names a patient: "pseudonymised" (initials and the ID's last 4
    # characters) or "full"
    worklist_identity: str = "pseudonymised"
    pseudonym_id_chars: int = 4


@dataclass(frozen=True)
class CalibrationSettings:
    """Site calibration on the admin page (the ``[calibration]`` table): how many labelled
    cases a threshold needs, and the window the monthly screening volume is counted in."""

    # At 50 labelled cases a referral rate near one half has a 95 % Wilson interval 0.27
    # wide (25/50: 0.37-0.63); below 10 cases with (or without) the condition a
    # sensitivity of 9 in 10 spans 0.60-0.98. Neither is a basis for a threshold.
    min_cases: int = 50
    min_per_class: int = 10
    # the monthly screening volume: cases screened in the last volume_days, per 30 days;
    # unknown (no choice by DXA capacity) until the box has screened for volume_min_days
    volume_days: int = 90
    volume_min_days: int = 28


@dataclass(frozen=True)
class FollowUpSettings:
    """Referral follow-through (the ``[follow_up]`` table): which referrals wait for a DXA
    result on the follow-up list, and what a DXA result may say. A labelled export groups
    ages as the sync does ([sync] oldest_age_group_years)."""

    # the referral categories the follow-up list holds until a DXA result or an outcome
    categories: tuple[str, ...] = ("urgent", "refer")
    # a T- or Z-score outside these bounds is a typing error (reports run about -6 to +4)
    score_min: float = -7.0
    score_max: float = 7.0
    centre_max_chars: int = 120
