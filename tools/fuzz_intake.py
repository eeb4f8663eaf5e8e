"""Coverage-guided fuzzing of intake (read_image) with atheris, for a time budget.

    .venv/bin/python tools/fuzz_intake.py --seconds 3600           # a long run by hand
    .venv/bin/python tools/fuzz_intake.py --runs 2000 --seed 1     # the short run CI makes

Seeds are real files: pydicom-data radiographs and DICOMs in the transfer syntaxes intake
decodes, plus small PNG, JPEG and TIFF files (and a float DICOM) made from one of them.
libFuzzer mutates them; every input must give an Intake whose pixels are sane, or an
IntakeError with a known code. Anything else is a finding: an unhandled exception, an input
that takes longer than --timeout seconds (libFuzzer's own alarm, which also fires inside C
decoders), or one that pushes memory over --rss-limit-mb. Findings are written to the
work folder, replayed one by one in fresh processes and listed; --keep copies them into
tests/fuzz_corpus/ so that tests/test_fuzz.py replays them from then on.

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


def _child(libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["edgeosteo", "pydicom", "PIL"]):
        import edgeosteo.intake  # noqa: F401  (instrumented before check_intake uses it)

    def one_input(data: bytes) -> None:
        check_intake(data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def replay(path: Path, timeout_s: float) -> dict[str, object]:
    """One input in a fresh process: its outcome, or the error it raises."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from fuzz_intake import check_intake; "
        "from pathlib import Path; print(check_intake(Path(sys.argv[1]).read_bytes()))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path), str(Path(__file__).parent)],
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        _child(rest)
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="fuzz-intake-"))
    seeds, grown, findings = work / "seeds", work / "corpus", work / "findings"
    for folder in (seeds, grown, findings):
        folder.mkdir(parents=True, exist_ok=True)
    for name, data in seed_files().items():
        (seeds / name).write_bytes(data)
    for kept in sorted(CORPUS_DIR.glob("*")) if CORPUS_DIR.is_dir() else ():
        if kept.is_file() and kept.suffix not in (".md", ".json"):
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
    child = [sys.executable, str(Path(__file__).resolve()), "--child", *libfuzzer]
    print("running:", " ".join(child), flush=True)
    # OpenCV logs every refused TIFF/PNG at ERROR level; intake turns those into codes
    quiet = {**os.environ, "OPENCV_LOG_LEVEL": "OFF"}
    status = subprocess.run(child, env=quiet).returncode

    found = [p for p in sorted(findings.iterdir()) if p.name.startswith(FINDING_PREFIXES)]
    report = {
        "libfuzzer_exit": status,
        "findings": [replay(p, max(60.0, 2.0 * args.timeout)) for p in found],
        "corpus_files": len(list(grown.iterdir())),
        "work": str(work),
    }
    if args.keep and found:
        CORPUS_DIR.mkdir(exist_ok=True)
        for path in found:
            shutil.copy(path, CORPUS_DIR / path.name)
    print(json.dumps(report, indent=1))
    return 0 if status == 0 and not found else 1


if __name__ == "__main__":
    sys.exit(main())
