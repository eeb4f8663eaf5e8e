"""Coverage-guided fuzzing of intake (read_image) and of the phone-photo path, with atheris.

    .venv/bin/python tools/fuzz_intake.py --seconds 3600           # a long run by hand
    .venv/bin/python tools/fuzz_intake.py --runs 2000 --seed 1     # the short run CI makes
    .venv/bin/python tools/fuzz_intake.py --target photo --seconds 600
    .venv/bin/python tools/fuzz_intake.py --target corners --seconds 300

Seeds are real files: pydicom-data radiographs and DICOMs in the transfer syntaxes intake
decodes, plus small PNG, JPEG and TIFF files (and a float DICOM) made from one of them.
libFuzzer mutates them; every input must give an Intake whose pixels are sane, or an
IntakeError with a known code. Anything else is a finding: an unhandled exception, an input
that takes longer than --timeout seconds (libFuzzer's own alarm, which also fires inside C
decoders), or one that pushes memory over --rss-limit-mb. Findings are written to the
work folder, replayed one by one in fresh processes and listed; --keep copies them into
tests/fuzz_corpus/ so that tests/test_fuzz.py replays them from then on.

--target picks what is fuzzed (the default, ``intake``, is read_image as above):

- ``photo``: the bytes of a phone photo of a printed film through the photo path
  (edgeosteo.intake.photo: load_photo, film detection, rectification; then the photo gates
  of edgeosteo.quality_photo), as
  Screener.review_photo and then Screener.screen with the review's corners take it. Seeds
  are small photos from the project's simulator (tools/photo_sim.py) of a pydicom-data
  radiograph: a 640x480 JPEG, a JPEG stored sideways with an EXIF orientation, a 320x240
  PNG with a reflection. Every input must give a rectified film whose pixels are finite
  float32 in [0, 1] within the intake limits, with photo and quality gates whose codes are
  all in the message catalogue and whose measurements are finite (a NaN passes any gate),
  whose corners are accepted again when screening, or an IntakeError with a known code.
- ``corners``: the text of user-supplied film corners (the review form's ``film_corners``,
  the CLI's --film-corners) through FilmCorners.from_json, then, when it parses, through
  rectification of a fixed simulated photo as clicked ("user") and as a review's
  ("detected") corners: valid corners and a sane film, or ``photo.bad_corners``.

Findings of the photo targets are kept in tests/fuzz_corpus/photo/, named after their
target (``photo-``, ``corners-``), with their outcomes in its own expected.json.

Needs atheris (`pip install atheris`; in the test extra on x86-64).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO / "tests" / "fuzz_corpus"
PHOTO_CORPUS_DIR = CORPUS_DIR / "photo"
TARGETS = ("intake", "photo", "corners")
DICOM_SEEDS = ("vlut_04.dcm", "RG3_J2KI.dcm", "OBXXXX1A_rle.dcm", "JPEG-LL.dcm")
FINDING_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


def pydicom_data_dir() -> Path:
    spec = importlib.util.find_spec("deid_data")
    if spec is None or not spec.origin:
        raise SystemExit("fuzzing needs the pydicom-data and deid-data test packages")
    return Path(spec.origin).resolve().parents[1] / "data_store" / "data"


def _radiograph_crop(side: tuple[int, int] = (96, 128)):
    """A small real radiograph (8-bit gray, bone bright) to build the raster seeds from."""
    import cv2
    import numpy as np
    import pydicom

    ds = pydicom.dcmread(pydicom_data_dir() / "RG3_UNCR.dcm")
    stored = ds.pixel_array.astype(np.float32)
    unit = (stored - stored.min()) / max(float(np.ptp(stored)), 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1.0 - unit
    small = cv2.resize(unit, side, interpolation=cv2.INTER_AREA)
    return small


def float_dicom(pixels, fill: float | None = None) -> bytes:
    """An explicit-VR little-endian DX with FloatPixelData (32-bit floats), optionally all
    set to ``fill`` (NaN for the pathological case)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    values = np.asarray(pixels, dtype=np.float32)
    if fill is not None:
        values = np.full_like(values, fill)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def seed_files() -> dict[str, bytes]:
    """Named seed inputs: the pydicom-data DICOMs and small rasters made from a radiograph."""
    import cv2
    import numpy as np
    from PIL import Image

    data = pydicom_data_dir()
    seeds = {f"dicom-{name}": (data / name).read_bytes() for name in DICOM_SEEDS}
    crop = _radiograph_crop()
    gray8 = (crop * 255).astype(np.uint8)
    gray16 = (crop * 65535).astype(np.uint16)
    colour = cv2.merge([gray8, gray8, np.flipud(gray8)])
    for name, ext, image, params in (
        ("png-gray8", ".png", gray8, []),
        ("png-gray16", ".png", gray16, []),
        ("png-colour", ".png", colour, []),
        ("jpeg-gray", ".jpg", gray8, [cv2.IMWRITE_JPEG_QUALITY, 80]),
        ("jpeg-progressive", ".jpg", colour, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("tiff-gray16", ".tif", gray16, []),
        ("tiff-gray8", ".tif", gray8, []),
    ):
        ok, encoded = cv2.imencode(ext, image, params)
        assert ok, name
        seeds[name] = encoded.tobytes()
    # EXIF orientation is read from the header: a JPEG that carries it
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.fromarray(gray8).save(rotated, format="JPEG", quality=80, exif=exif.tobytes())
    seeds["jpeg-exif-rotated"] = rotated.getvalue()
    seeds["dicom-float32"] = float_dicom(crop)
    return seeds


def check_intake(data: bytes) -> str:
    """Read one input; return the outcome ("ok" or the IntakeError code). Raises
    AssertionError when the outcome breaks intake's contract, and lets any other exception
    through: both are findings."""
    import numpy as np

    from edgeosteo.config import IntakeLimits
    from edgeosteo.errors import IntakeError
    from edgeosteo.intake import read_image
    from edgeosteo.messages import CATALOGUE

    limits = IntakeLimits()
    try:
        intake = read_image(data, limits)
    except IntakeError as exc:
        assert exc.code in CATALOGUE, f"IntakeError code without a message: {exc.code}"
        return exc.code
    pixels = intake.radiograph.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 2, (pixels.dtype, pixels.shape)
    assert pixels.size <= limits.max_pixels, pixels.shape
    assert min(pixels.shape) >= limits.min_side_px, pixels.shape
    assert np.all(np.isfinite(pixels)), "non-finite pixels accepted"
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0, "pixels outside [0, 1]"
    return "ok"


# --- the photo path ------------------------------------------------------------------------


def _simulated_photo(source: str, seed: int, condition: str):
    """A small (640 x 480) simulated phone photo of a pydicom-data radiograph."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import photo_sim

    film = photo_sim.load_source(pydicom_data_dir() / f"{source}.dcm")
    size = photo_sim.PHOTO_SIZE
    photo_sim.PHOTO_SIZE = (640, 480)
    try:
        return photo_sim.simulate(film, seed, condition, source)
    finally:
        photo_sim.PHOTO_SIZE = size


def photo_seed_files() -> dict[str, bytes]:
    """Named seed photos: simulated phone photos of printed films, kept small so that one
    input runs in a fraction of a second."""
    import cv2
    import numpy as np
    from PIL import Image

    seeds = {"photo-jpeg-good": _simulated_photo("RG3_UNCR", 3, "good").jpeg}
    # a landscape photo stored as the sensor saw it, sideways, with EXIF orientation 6
    # (rotate 90 degrees clockwise to show it): the phone's usual way of writing portraits
    upright = cv2.imdecode(
        np.frombuffer(_simulated_photo("RG1_UNCR", 1, "good").jpeg, np.uint8), cv2.IMREAD_COLOR
    )
    stored = cv2.rotate(cv2.cvtColor(upright, cv2.COLOR_BGR2RGB), cv2.ROTATE_90_COUNTERCLOCKWISE)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.fromarray(stored).save(rotated, format="JPEG", quality=85, exif=exif.tobytes())
    seeds["photo-jpeg-exif-rotated"] = rotated.getvalue()
    glare = cv2.imdecode(
        np.frombuffer(_simulated_photo("RG1_UNCR", 1, "glare").jpeg, np.uint8), cv2.IMREAD_COLOR
    )
    half = cv2.resize(
        glare, (glare.shape[1] // 2, glare.shape[0] // 2), interpolation=cv2.INTER_AREA
    )
    ok, png = cv2.imencode(".png", half, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    seeds["photo-png-glare"] = png.tobytes()
    return seeds


def _corner_photo():
    """The photo the corners target rectifies (decoded once per process)."""
    global _CORNER_PHOTO
    if _CORNER_PHOTO is None:
        from edgeosteo.intake.photo import load_photo

        _CORNER_PHOTO = load_photo(photo_seed_files()["photo-jpeg-good"])
    return _CORNER_PHOTO


_CORNER_PHOTO = None


def corner_seed_files() -> dict[str, bytes]:
    """Named seed texts for the corners target: the film's true corners in the corners
    photo (clicked in order and out of order), the whole frame, and near misses."""
    true = _simulated_photo("RG3_UNCR", 3, "good").corners.round(1).tolist()
    texts = {
        "corners-true": json.dumps(true),
        "corners-shuffled": json.dumps([true[2], true[0], true[3], true[1]]),
        "corners-whole-frame": "[[0, 0], [479, 0], [479, 639], [0, 639]]",  # a portrait
        "corners-strings": json.dumps([[str(x), str(y)] for x, y in true]),
        "corners-three": json.dumps(true[:3]),
        "corners-object": '{"corners": [[1, 2], [3, 4], [5, 6], [7, 8]]}',
        "corners-outside": "[[-100, -100], [1e6, 0], [700, 500.5], [0, 1e-300]]",
    }
    return {name: text.encode() for name, text in texts.items()}


def _finite_gate(gate, catalogue) -> None:
    import numpy as np

    assert gate.verdict in ("pass", "warn", "fail"), gate
    assert gate.code in catalogue, f"gate code without a message: {gate.code}"
    for value in (gate.measured, gate.limit):
        if isinstance(value, float):
            assert np.isfinite(value), f"non-finite measurement passes any gate: {gate}"


def _check_film(film, limits):
    """A rectified film: sane pixels within the limits, sane corners, catalogued gates.
    Returns its quality report (photo gates and the image gates, as screening builds it)."""
    import numpy as np

    from edgeosteo.config import PhotoThresholds, QualityThresholds
    from edgeosteo.messages import CATALOGUE
    from edgeosteo.quality import QualityReport, assess
    from edgeosteo.quality_photo import photo_gates

    pixels = film.radiograph.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 2, (pixels.dtype, pixels.shape)
    assert pixels.size <= limits.max_pixels, pixels.shape
    assert min(pixels.shape) >= 16, pixels.shape
    assert np.all(np.isfinite(pixels)), "non-finite pixels accepted"
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0, "pixels outside [0, 1]"
    assert film.glare_mask.shape == pixels.shape, (film.glare_mask.shape, pixels.shape)
    assert film.corners.shape == (4, 2) and np.all(np.isfinite(film.corners)), film.corners
    assert np.isfinite(film.tilt_deg) and np.isfinite(film.film_fraction)
    gates = photo_gates(film, PhotoThresholds())
    quality = QualityReport(gates + assess(film.radiograph, QualityThresholds()).gates)
    for gate in quality.gates:
        _finite_gate(gate, CATALOGUE)
    if min(pixels.shape) < limits.min_side_px:
        assert not quality.usable, f"a {pixels.shape} film judged usable"
    # as screening records it: the film's summary with the photo gates' report
    json.dumps({**film.describe(), "quality": QualityReport(gates).to_dict()}, allow_nan=False)
    return quality


def check_photo(data: bytes) -> str:
    """One photo through the photo path as the review page and then screening take it;
    return "ok" or the IntakeError code. Raises AssertionError when the outcome breaks the
    contract and lets any other exception through: both are findings."""
    import numpy as np

    from edgeosteo.config import IntakeLimits, PhotoThresholds
    from edgeosteo.errors import IntakeError
    from edgeosteo.intake.photo import load_photo, rectify_file
    from edgeosteo.messages import CATALOGUE
    from edgeosteo.screening import PhotoReview

    limits, thresholds = IntakeLimits(), PhotoThresholds()
    try:
        photo = load_photo(data, limits)
        film = rectify_file(photo, thresholds)
    except IntakeError as exc:
        assert exc.code in CATALOGUE, f"IntakeError code without a message: {exc.code}"
        return exc.code
    rgb = photo.rgb
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    assert rgb.shape[0] * rgb.shape[1] <= limits.max_pixels, rgb.shape
    quality = _check_film(film, limits)
    # screening after the review uses the corners the review found, as they are
    corners = PhotoReview(rgb, film, quality).corners
    if corners is not None:
        _check_film(rectify_file(photo, thresholds, corners), limits)
    return "ok"


def check_corners(data: bytes) -> str:
    """Film corners as text through FilmCorners.from_json and, when they parse, through
    rectification of the corners photo as clicked and as detected corners; return the
    outcomes ("photo.bad_corners", or "user:..." and "detected:...", each "ok" or a code)."""
    import numpy as np

    from edgeosteo.config import IntakeLimits, PhotoThresholds
    from edgeosteo.errors import IntakeError
    from edgeosteo.intake.photo import FilmCorners, rectify_file

    text = data.decode("utf-8", errors="replace")
    try:
        corners = FilmCorners.from_json(text)
    except IntakeError as exc:
        assert exc.code == "photo.bad_corners", exc.code
        return exc.code
    points = np.asarray(corners.points, dtype=np.float64)
    assert points.shape == (4, 2) and np.all(np.isfinite(points)), corners.points
    outcomes = []
    for source in ("user", "detected"):
        try:
            film = rectify_file(
                _corner_photo(), PhotoThresholds(), FilmCorners.parse(points, source)
            )
        except IntakeError as exc:
            assert exc.code == "photo.bad_corners", exc.code
            outcomes.append(f"{source}:{exc.code}")
            continue
        _check_film(film, IntakeLimits())
        outcomes.append(f"{source}:ok")
    return " ".join(outcomes)


CHECKS = {"intake": check_intake, "photo": check_photo, "corners": check_corners}


def _instrument(target: str) -> None:
    """Import what a target runs with atheris's coverage instrumentation."""
    import atheris

    if target == "intake":
        with atheris.instrument_imports(include=["edgeosteo", "pydicom", "PIL"]):
            # instrumented before check_intake uses it
            import edgeosteo.intake
        return
    from atheris.import_hook import HookManager

    # Pillow's header parsers with comparison tracing (its plugins load lazily: load them)
    with atheris.instrument_imports(include=["PIL"]):
        import PIL.Image

        PIL.Image.init()
    # edgeosteo with edge coverage only: atheris 3.0's comparison tracing keeps a reference
    # to every comparison result that is not a bool, and the photo path compares whole
    # numpy arrays (about 5 MB a photo, so -rss_limit_mb fires after a few hundred inputs)
    with HookManager({"edgeosteo"}, set(), True, trace_dataflow=False):
        import edgeosteo.intake.photo
        import edgeosteo.quality
        import edgeosteo.quality_photo
        import edgeosteo.screening  # noqa: F401


def target_seeds(target: str) -> dict[str, bytes]:
    if target == "photo":
        return photo_seed_files()
    if target == "corners":
        return corner_seed_files()
    return seed_files()


def kept_findings(target: str) -> list[Path]:
    """The kept findings a target starts from (and that tests/test_fuzz.py replays)."""
    if target == "intake":
        folder, prefix = CORPUS_DIR, ""
    else:
        folder, prefix = PHOTO_CORPUS_DIR, f"{target}-"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix not in (".md", ".json") and p.name.startswith(prefix)
    )


def _child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    _instrument(target)
    check = CHECKS[target]
    if target == "corners":
        _corner_photo()

    def one_input(data: bytes) -> None:
        check(data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def replay(path: Path, timeout_s: float, target: str = "intake") -> dict[str, object]:
    """One input in a fresh process: its outcome, or the error it raises."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from fuzz_intake import CHECKS; "
        "from pathlib import Path; print(CHECKS[sys.argv[3]](Path(sys.argv[1]).read_bytes()))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path), str(Path(__file__).parent), target],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"file": path.name, "outcome": f"no answer within {timeout_s} s"}
    if done.returncode == 0:
        return {"file": path.name, "outcome": done.stdout.strip()}
    return {"file": path.name, "outcome": "error", "traceback": done.stderr.strip()[-2000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="total fuzzing time")
    parser.add_argument("--runs", type=int, default=None, help="stop after this many inputs")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=3072)
    parser.add_argument("--max-len", type=int, default=300_000, help="largest input, bytes")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer seed (0: random)")
    parser.add_argument("--work", type=Path, default=None, help="keep the grown corpus here")
    parser.add_argument("--keep", action="store_true", help="copy findings to tests/fuzz_corpus")
    parser.add_argument("--target", choices=TARGETS, default="intake", help="what to fuzz")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        _child(args.target, rest)
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix=f"fuzz-{args.target}-"))
    seeds, grown, findings = work / "seeds", work / "corpus", work / "findings"
    for folder in (seeds, grown, findings):
        folder.mkdir(parents=True, exist_ok=True)
    for name, data in target_seeds(args.target).items():
        (seeds / name).write_bytes(data)
    for kept in kept_findings(args.target):
        shutil.copy(kept, seeds / f"kept-{kept.name}")

    libfuzzer = [
        str(grown),
        str(seeds),
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={args.max_len}",
        f"-seed={args.seed}",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
    ]
    libfuzzer.append(f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}")
    if args.target == "corners":
        # JSON's own tokens and numbers at the edges of float32 and float64
        tokens = ("[", "]", ",", "{", "}", '"', "null", "true", "NaN", "Infinity", "-Infinity")
        tokens += ("1e308", "1e-320", "3.5e38", "-0", "1e39", "9" * 20, "[[", "]]", "\\u0000")
        words = work / "corners.dict"
        words.write_text("".join(f"{json.dumps(t)}\n" for t in tokens))
        libfuzzer.append(f"-dict={words}")
    child = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--target",
        args.target,
        *libfuzzer,
    ]
    print("running:", " ".join(child), flush=True)
    # OpenCV logs every refused TIFF/PNG at ERROR level; intake turns those into codes
    quiet = {**os.environ, "OPENCV_LOG_LEVEL": "OFF"}
    status = subprocess.run(child, env=quiet).returncode

    found = [p for p in sorted(findings.iterdir()) if p.name.startswith(FINDING_PREFIXES)]
    report = {
        "libfuzzer_exit": status,
        "findings": [replay(p, max(60.0, 2.0 * args.timeout), args.target) for p in found],
        "corpus_files": len(list(grown.iterdir())),
        "work": str(work),
    }
    if args.keep and found:
        if args.target == "intake":
            CORPUS_DIR.mkdir(exist_ok=True)
            for path in found:
                shutil.copy(path, CORPUS_DIR / path.name)
        else:
            PHOTO_CORPUS_DIR.mkdir(parents=True, exist_ok=True)
            for path in found:
                shutil.copy(path, PHOTO_CORPUS_DIR / f"{args.target}-{path.name}")
    print(json.dumps(report, indent=1))
    return 0 if status == 0 and not found else 1


if __name__ == "__main__":
    sys.exit(main())
