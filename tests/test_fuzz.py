"""Intake under fuzzing and pathological inputs: every input gives an Intake with sane pixels
or an IntakeError with a known code, nothing else.

CI runs fixed, deterministic budgets: hypothesis (derandomised) over byte mutations of real
seeds and over generated DICOM headers and PNG chunks, and a short atheris run with a fixed
seed. Longer runs are by hand: tools/fuzz_intake.py --seconds N.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from edgeosteo.config import IntakeLimits
from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image
from edgeosteo.screening import Screener

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

from fuzz_intake import (  # noqa: E402
    CHECKS,
    CORPUS_DIR,
    PHOTO_CORPUS_DIR,
    check_corners,
    check_intake,
    check_photo,
    corner_seed_files,
    float_dicom,
    kept_findings,
    photo_seed_files,
    seed_files,
)

# the generated headers hold invalid values on purpose; pydicom warns about each one
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value:UserWarning")


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@functools.cache
def _seeds() -> dict[str, bytes]:
    return seed_files()


SEED_NAMES = sorted(_seeds())
INTERESTING_WORDS = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF, 0x8000, 0xFFFFFFFF, 0x7FFFFFFF)


def test_seeds_are_all_read():
    """The mutations start from files intake accepts, so they reach the decoders."""
    assert {name: check_intake(data) for name, data in _seeds().items()} == dict.fromkeys(
        SEED_NAMES, "ok"
    )


@st.composite
def mutated_seed(draw) -> bytes:
    data = bytearray(_seeds()[draw(st.sampled_from(SEED_NAMES))])
    for _ in range(draw(st.integers(1, 6))):
        # headers decide what a decoder allocates and how it walks the file: mutate them more
        limit = min(len(data), 2048) if draw(st.booleans()) else len(data)
        if limit == 0:
            break
        at = draw(st.integers(0, limit - 1))
        operation = draw(st.sampled_from(("flip", "byte", "word", "insert", "delete", "cut")))
        if operation == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "byte":
            data[at] = draw(st.integers(0, 255))
        elif operation == "word":
            word = draw(st.sampled_from(INTERESTING_WORDS))
            order = draw(st.sampled_from("<>"))
            data[at : at + 4] = struct.pack(order + "I", word)
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 256))]
        else:
            del data[at:]
    return bytes(data)


@fuzz_settings(max_examples=1500)
@given(mutated_seed())
def test_mutated_seeds_give_an_intake_or_a_typed_error(data):
    event(check_intake(data))


@functools.cache
def _crop16() -> np.ndarray:
    """The 16-bit radiograph crop the raster seeds were made from."""
    return cv2.imdecode(np.frombuffer(_seeds()["png-gray16"], np.uint8), cv2.IMREAD_UNCHANGED)


_DS_VALUES = ("1", "0", "-1", "0.5", "1e30", "-1e30", "NaN", "inf", "", "4096", "2\\3")
_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)


def _lut_sequence(draw, keyword: str) -> Sequence:
    item = Dataset()
    entries = draw(st.sampled_from((0, 1, 16, 256, 4096, 65535)))
    bits = draw(st.sampled_from((8, 16, 0, 12)))
    item.LUTDescriptor = [entries, draw(st.sampled_from((0, -100, 100, 65535))), bits]
    length = draw(st.sampled_from((0, 1, entries, entries + 3)))
    item.LUTData = list(range(length)) if length else []
    if keyword == "ModalityLUTSequence":
        item.ModalityLUTType = draw(st.sampled_from(("OD", "HU", "US", "")))
    return Sequence([item])


def usually(draw, valid, odd: tuple):
    """The consistent value four times in five, otherwise an edge or nonsense one, so that
    most generated files get past the first check and reach the decoders and LUTs."""
    return valid if draw(st.integers(0, 4)) < 4 else draw(st.sampled_from(odd))


@functools.cache
def _encoded_pixel_data() -> dict[str, bytes]:
    """Valid encapsulated pixel data of the 16-bit crop for each compressed syntax used."""
    encoded = {}
    for syntax in (RLELossless, JPEG2000Lossless):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Rows, ds.Columns = _crop16().shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = _crop16().astype("<u2").tobytes()
        ds.compress(syntax)
        encoded[syntax] = ds.PixelData
    # no encoder here for JPEG lossless: a real 1024x256 one, under this header's size
    encoded[JPEGLosslessSV1] = pydicom.dcmread(io.BytesIO(_seeds()["dicom-JPEG-LL.dcm"])).PixelData
    return encoded


@st.composite
def generated_dicom(draw) -> bytes:
    """A DX over a real 16-bit crop whose header fields are mostly consistent and sometimes
    edge or nonsense values, with exact, short, long or random pixel data, or valid or
    garbage fragments under a compressed syntax."""
    pixels = _crop16()
    rows, columns = pixels.shape
    syntax = draw(st.sampled_from(_SYNTAXES))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = draw(st.sampled_from(("DX", "CR", "OT", "")))
    ds.Rows = usually(draw, rows, (0, 1, 64, 65535, columns))
    ds.Columns = usually(draw, columns, (0, 63, 64, 65535, rows))
    ds.BitsAllocated = usually(draw, 16, (8, 1, 12, 32, 64))
    bits_stored = draw(st.sampled_from((16, 12, 10)))
    ds.BitsStored = usually(draw, bits_stored, (8, 1, 0, 17, 32))
    ds.HighBit = usually(draw, bits_stored - 1, (15, 7, 0, 31, 40))
    ds.PixelRepresentation = usually(draw, draw(st.sampled_from((0, 1))), (2,))
    ds.SamplesPerPixel = usually(draw, 1, (3, 4, 0))
    ds.PhotometricInterpretation = usually(
        draw,
        draw(st.sampled_from(("MONOCHROME2", "MONOCHROME1"))),
        ("RGB", "PALETTE COLOR", "YBR_FULL", "", "XYZ"),
    )
    if draw(st.integers(0, 4)) == 0:
        ds.PlanarConfiguration = draw(st.sampled_from((0, 1, 2)))
    if draw(st.integers(0, 4)) == 0:
        ds.NumberOfFrames = draw(st.sampled_from(("1", "2", "0", "-1")))
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if draw(st.booleans()):
            setattr(ds, keyword, draw(st.sampled_from(_DS_VALUES)))
    if draw(st.integers(0, 3)) == 0:
        ds.VOILUTFunction = draw(st.sampled_from(("LINEAR", "SIGMOID", "LINEAR_EXACT", "BOGUS")))
    if draw(st.integers(0, 3)) == 0:
        ds.PresentationLUTShape = draw(st.sampled_from(("IDENTITY", "INVERSE", "")))
    for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
        if draw(st.integers(0, 3)) == 0:
            setattr(ds, keyword, _lut_sequence(draw, keyword))
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        for colour in ("Red", "Green", "Blue"):
            setattr(
                ds,
                f"{colour}PaletteColorLookupTableDescriptor",
                [draw(st.sampled_from((0, 256, 4096))), 0, draw(st.sampled_from((8, 16)))],
            )
            setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(range(256)) * 2)
    if draw(st.booleans()):
        ds.PixelSpacing = draw(st.sampled_from(("0.1\\0.1", "0\\0", "-1\\2", "NaN\\1", "1")))

    native = pixels.astype("<u2").tobytes()
    if syntax.is_compressed:
        if draw(st.integers(0, 3)):
            ds.PixelData = _encoded_pixel_data()[syntax]
        else:
            ds.PixelData = encapsulate([draw(st.binary(min_size=2, max_size=512))])
        ds["PixelData"].VR = "OB"
    else:
        length = usually(draw, "exact", ("short", "long", "random", "odd"))
        if length == "exact":
            ds.PixelData = native
        elif length == "short":
            ds.PixelData = native[: len(native) // 3]
        elif length == "long":
            ds.PixelData = native * 2
        elif length == "odd":
            ds.PixelData = native[:-1]
        else:
            ds.PixelData = draw(st.binary(min_size=2, max_size=4096))
        ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds.save_as(out, enforce_file_format=True)
        except (ValueError, TypeError, OSError, OverflowError):
            # a combination pydicom itself refuses to write cannot reach intake as a file
            reject()
    return out.getvalue()


@fuzz_settings(max_examples=1000)
@given(generated_dicom())
def test_generated_dicom_headers_give_an_intake_or_a_typed_error(data):
    event(check_intake(data))


def _chunk(kind: bytes, body: bytes, good_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc ^ (not good_crc))


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@st.composite
def generated_png(draw) -> bytes:
    """A PNG built chunk by chunk: mostly consistent IHDR, palette and image data, sometimes
    impossible sizes, depths, colour types, bad CRCs, stray chunks or raw (not zlib) data."""
    width = usually(draw, 96, (64, 63, 0, 1, 65535, 2**31 - 1, 2**32 - 1))
    height = usually(draw, 128, (64, 1, 0, 5000, 65535, 2**31))
    colour_type = usually(draw, draw(st.sampled_from((0, 2, 3, 4, 6))), (1, 5, 7))
    depth = usually(draw, 8, (16, 1, 2, 4, 3, 0))
    interlace = usually(draw, 0, (1, 2))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace)
    chunks = [_chunk(b"IHDR", header, good_crc=usually(draw, True, (False,)))]
    if colour_type == 3:
        entries = usually(draw, 256, (0, 1, 2, 300))
        chunks.append(
            _chunk(b"PLTE", bytes(range(256)) * 3 if entries == 256 else b"\1" * 3 * entries)
        )
    if draw(st.integers(0, 4)) == 0:
        chunks.append(_chunk(b"tRNS", draw(st.binary(min_size=0, max_size=16))))
    if draw(st.integers(0, 4)) == 0:
        chunks.append(_chunk(b"eXIf", draw(st.binary(min_size=0, max_size=64))))
    row_bytes = 1 + (min(width, 4096) * max(depth, 1) * _PNG_CHANNELS.get(colour_type, 1) + 7) // 8
    rows = min(height, 256)
    content = usually(draw, "ramp", ("zeros", "random", "raw", "empty", "short"))
    if content == "ramp":
        body = zlib.compress(
            b"".join(b"\0" + bytes([y % 256]) * (row_bytes - 1) for y in range(rows))
        )
    elif content == "zeros":
        body = zlib.compress(b"\0" * row_bytes * rows)
    elif content == "random":
        body = zlib.compress(draw(st.binary(min_size=1, max_size=2048)))
    elif content == "raw":
        body = draw(st.binary(min_size=1, max_size=256))
    elif content == "short":
        body = zlib.compress(b"\0" * row_bytes * rows)[: draw(st.integers(1, 40))]
    else:
        body = b""
    chunks.append(_chunk(b"IDAT", body))
    if usually(draw, True, (False,)):
        chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


@fuzz_settings(max_examples=600)
@given(generated_png())
def test_generated_png_chunks_give_an_intake_or_a_typed_error(data):
    event(check_intake(data))


def test_short_atheris_run_finds_nothing(tmp_path):
    """libFuzzer with a fixed seed and run count over the same seeds (plus the kept corpus):
    it exits 0 only when no input crashed, hung past its alarm or ran out of memory."""
    pytest.importorskip("atheris")
    done = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "fuzz_intake.py"),
            "--runs",
            "1500",
            "--seed",
            "1",
            "--timeout",
            "120",
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Done 1500 runs" in done.stderr
    assert '"findings": []' in done.stdout


def _kept_inputs() -> list[Path]:
    return kept_findings("intake")


def test_the_corpus_keeps_the_findings():
    assert [p.name for p in _kept_inputs()] == sorted(_expected_outcomes())


def _expected_outcomes() -> dict[str, str]:
    return json.loads((CORPUS_DIR / "expected.json").read_text())


@pytest.mark.parametrize("path", _kept_inputs(), ids=lambda p: p.name)
def test_kept_fuzz_findings_stay_fixed(path):
    assert check_intake(path.read_bytes()) == _expected_outcomes()[path.name]


# --- the phone-photo path (tools/fuzz_intake.py --target photo / corners) ---------------


@functools.cache
def _photo_seeds() -> dict[str, bytes]:
    return photo_seed_files()


def test_photo_seeds_are_all_rectified():
    """The photo target's seeds are simulated phone photos the photo path takes whole."""
    seeds = _photo_seeds()
    assert {name: check_photo(data) for name, data in seeds.items()} == dict.fromkeys(seeds, "ok")


def test_corner_seeds_give_corners_or_the_typed_error():
    both_ok = "user:ok detected:ok"
    refused = "user:photo.bad_corners detected:photo.bad_corners"
    assert {name: check_corners(text) for name, text in corner_seed_files().items()} == {
        "corners-true": both_ok,
        "corners-shuffled": both_ok,
        "corners-whole-frame": both_ok,
        "corners-strings": both_ok,
        "corners-three": "photo.bad_corners",
        "corners-object": "photo.bad_corners",
        "corners-outside": refused,
    }


_COORDINATE = st.one_of(
    st.floats(-50, 700),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(("1e400", "-0", "12", "x", "", "NaN", "Infinity", "9" * 400)),
    st.booleans(),
    st.none(),
)


@st.composite
def corner_text(draw) -> str:
    """Film corners as a form or the CLI sends them: mostly four pairs of numbers in or
    near the photo, sometimes too few or too many, odd values, nesting or plain garbage."""
    kind = usually(draw, "pairs", ("json", "text", "nested"))
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "nested":
        depth = draw(st.integers(1, 5000))
        return "[" * depth + draw(st.sampled_from(("", "1", "[1, 2]"))) + "]" * depth
    if kind == "json":
        leaves = st.one_of(_COORDINATE, st.text(max_size=4))
        value = draw(st.recursive(leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=12))
        return json.dumps(value)
    count = usually(draw, 4, (0, 3, 5))
    pairs = [[draw(_COORDINATE) for _ in range(usually(draw, 2, (1, 3)))] for _ in range(count)]
    return json.dumps(pairs)


@fuzz_settings(max_examples=80)
@given(corner_text())
def test_generated_corner_texts_give_corners_or_the_typed_error(text):
    event(check_corners(text.encode("utf-8", "surrogatepass")))


def test_a_strip_photo_is_refused_as_too_narrow():
    """A 64 x 20000 picture passes intake's size limits but would leave a 7-pixel film
    once reduced to the working size: found by the photo target's synthetic inputs."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 20000, 3), dtype=np.uint8)
    for image in (noise, noise.transpose(1, 0, 2)):
        ok, png = cv2.imencode(".png", image)
        assert ok
        assert check_photo(png.tobytes()) == "photo.too_narrow"


def _kept_photo_inputs() -> list[Path]:
    return sorted(kept_findings("photo") + kept_findings("corners"))


def _expected_photo_outcomes() -> dict[str, str]:
    path = PHOTO_CORPUS_DIR / "expected.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_the_photo_corpus_keeps_the_findings():
    assert [p.name for p in _kept_photo_inputs()] == sorted(_expected_photo_outcomes())


@pytest.mark.parametrize("path", _kept_photo_inputs(), ids=lambda p: p.name)
def test_kept_photo_fuzz_findings_stay_fixed(path):
    target = path.name.split("-")[0]
    assert CHECKS[target](path.read_bytes()) == _expected_photo_outcomes()[path.name]


def test_a_decoder_panic_does_not_stop_a_batch(settings):
    """The RLE panic reached Screener.screen as a BaseException; now it is a refusal."""
    panic = (CORPUS_DIR / "rle-frame-longer-than-rows.dcm").read_bytes()
    screener = Screener(settings)
    results = [screener.screen(data) for data in (panic, _seeds()["png-gray8"])]
    assert results[0].intake_error["code"] == "intake.corrupt_pixels"
    assert results[1].intake_error is None


# --- decompression bombs and other pathological inputs ---------------------------------


def _png_header_only(width: int, height: int, rows_of_zeros: int = 64) -> bytes:
    """A PNG that declares width x height and carries a small zlib stream of zero rows: what
    a decompression bomb looks like before anyone inflates it."""
    squeezer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(squeezer.compress(row) for _ in range(rows_of_zeros)) + squeezer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def _refusal(data: bytes) -> str:
    with pytest.raises(IntakeError) as refused:
        read_image(data)
    return refused.value.code


def _dicom_with_size(rows: int, columns: int, pixel_bytes: bytes = b"\0" * 128) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(_seeds()["dicom-float32"]))
    del ds.FloatPixelData
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.Rows, ds.Columns = rows, columns
    ds.PixelData = pixel_bytes
    ds["PixelData"].VR = "OW"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_png_declaring_65535_squared_is_refused_as_too_large():
    data = _png_header_only(65535, 65535)
    assert len(data) < 200_000
    assert _refusal(data) == "intake.too_large"


def test_png_over_the_pixel_limit_but_under_pillows_bomb_guard_is_refused_too():
    # 100 MP: Pillow only warns below 2 x its MAX_IMAGE_PIXELS, intake's own limit refuses it
    assert _refusal(_png_header_only(10_000, 10_000)) == "intake.too_large"


def test_jpeg_and_tiff_declaring_65535_squared_are_refused_as_too_large():
    jpeg = bytearray(_seeds()["jpeg-gray"])
    frame = jpeg.index(b"\xff\xc0")  # baseline SOF0: length, precision, height, width
    jpeg[frame + 5 : frame + 9] = struct.pack(">HH", 65535, 65535)
    assert _refusal(bytes(jpeg)) == "intake.too_large"
    tiff = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tiff, format="TIFF")
    raw = bytearray(tiff.getvalue())
    for tag in (256, 257):  # ImageWidth, ImageLength in the first IFD, SHORT or LONG
        for field_type, value in ((3, struct.pack("<H", 65535)), (4, struct.pack("<I", 65535))):
            at = raw.find(struct.pack("<HHI", tag, field_type, 1))
            if at >= 0:
                raw[at + 8 : at + 8 + len(value)] = value
                break
        else:
            raise AssertionError(f"TIFF tag {tag} not found")
    assert _refusal(bytes(raw)) == "intake.too_large"


def test_dicom_declaring_65535_squared_is_refused_before_decoding():
    assert _refusal(_dicom_with_size(65535, 65535)) == "intake.too_large"


def test_one_pixel_wide_images_are_refused_as_too_small():
    strip = (np.arange(100_000) % 256).astype(np.uint8)
    for image in (strip[None, :], strip[:, None]):
        ok, png = cv2.imencode(".png", image)
        assert ok
        assert _refusal(png.tobytes()) == "intake.too_small"
    # DICOM's Columns is a 16-bit value: 65535 is the longest strip it can declare
    assert _refusal(_dicom_with_size(1, 65535, b"\0" * 131_070)) == "intake.too_small"


def test_nan_and_infinite_float_dicoms_are_refused_as_invalid_values():
    shape = np.zeros((128, 128), np.float32)
    assert _refusal(float_dicom(shape, fill=float("nan"))) == "intake.invalid_values"
    assert _refusal(float_dicom(shape, fill=float("inf"))) == "intake.invalid_values"
    one_nan = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    one_nan[64, 64] = np.nan
    assert _refusal(float_dicom(one_nan)) == "intake.invalid_values"


def test_forty_megapixels_is_accepted_and_one_pixel_more_is_not(settings):
    limit = IntakeLimits().max_pixels
    assert limit == 40_000_000
    ramp = np.linspace(0, 255, 5000).astype(np.uint8)
    ok, png = cv2.imencode(".png", np.tile(ramp, (8000, 1)))
    assert ok
    intake = read_image(png.tobytes())
    assert intake.radiograph.pixels.shape == (8000, 5000)
    assert intake.radiograph.pixels.size == limit
    screening = Screener(settings).screen(png.tobytes(), {"age_years": 70, "sex": "female"})
    assert screening.intake_error is None and screening.quality is not None
    del intake, screening, png
    assert _refusal(_png_header_only(5001, 8000)) == "intake.too_large"
    assert _refusal(_dicom_with_size(8000, 5001)) == "intake.too_large"
