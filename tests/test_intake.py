from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import RADIOGRAPH_DICOMS
from edgeosteo.errors import IntakeError
from edgeosteo.intake import read_image
from edgeosteo.intake.detect import detect_kind

# (file, (bone-or-body region), (air region)) as fractions (y0, y1, x0, x1)
POLARITY_REGIONS = {
    "RG1_UNCR.dcm": ((0.30, 0.60, 0.46, 0.54), (0.25, 0.45, 0.20, 0.32)),  # spine vs lung
    "RG1_J2KR.dcm": ((0.30, 0.60, 0.46, 0.54), (0.25, 0.45, 0.20, 0.32)),
    "RG3_UNCR.dcm": ((0.20, 0.50, 0.41, 0.47), (0.20, 0.50, 0.27, 0.31)),  # tibia vs air
    "RG3_J2KR.dcm": ((0.20, 0.50, 0.41, 0.47), (0.20, 0.50, 0.27, 0.31)),
}


def _region(pixels: np.ndarray, box: tuple[float, float, float, float]) -> float:
    h, w = pixels.shape
    y0, y1, x0, x1 = box
    return float(pixels[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].mean())


@pytest.mark.parametrize("name", sorted(POLARITY_REGIONS))
def test_monochrome1_radiographs_come_out_bone_bright(pydicom_data_dir, name):
    radiograph = read_image(pydicom_data_dir / name).radiograph
    assert radiograph.photometric == "MONOCHROME1"
    assert "inverted_to_monochrome2" in radiograph.transforms
    bone_box, air_box = POLARITY_REGIONS[name]
    assert _region(radiograph.pixels, bone_box) > _region(radiograph.pixels, air_box) + 0.2


def test_dx_for_presentation_keeps_polarity_and_spacing(deid_data_dir):
    radiograph = read_image(deid_data_dir / "animals" / "cat.dcm").radiograph
    assert radiograph.modality == "DX"
    assert radiograph.pixel_spacing_mm == (0.14, 0.14)
    assert radiograph.spacing_source == "PixelSpacing"
    assert radiograph.measurement_basis == "millimetres"
    # air in the lower left corner is dark, the body in the middle brighter
    assert _region(radiograph.pixels, (0.85, 0.95, 0.02, 0.10)) < 0.15
    assert _region(radiograph.pixels, (0.40, 0.60, 0.30, 0.60)) > 0.3


@pytest.mark.parametrize("name", RADIOGRAPH_DICOMS)
def test_compressed_and_uncompressed_versions_decode_alike(pydicom_data_dir, name):
    radiograph = read_image(pydicom_data_dir / name).radiograph
    reference = read_image(pydicom_data_dir / (name[:4] + "UNCR.dcm")).radiograph
    assert radiograph.shape == reference.shape
    assert float(np.abs(radiograph.pixels - reference.pixels).mean()) < 0.02
    assert radiograph.pixels.min() >= 0.0 and radiograph.pixels.max() <= 1.0


def test_voi_lut_and_modality_lut_are_applied(pydicom_data_dir):
    assert "voi_lut" in read_image(pydicom_data_dir / "vlut_04.dcm").radiograph.transforms
    assert "modality_lut" in read_image(pydicom_data_dir / "mlut_18.dcm").radiograph.transforms


def test_zero_pixel_spacing_is_treated_as_unknown(pydicom_data_dir):
    radiograph = read_image(pydicom_data_dir / "RG1_UNCR.dcm").radiograph
    assert radiograph.pixel_spacing_mm is None
    assert radiograph.measurement_basis == "pixels_only"


def test_multi_frame_is_refused_with_its_code(pydicom_data_dir):
    with pytest.raises(IntakeError) as caught:
        read_image(pydicom_data_dir / "emri_small.dcm")
    assert caught.value.code == "intake.multi_frame"
    assert "帧" in caught.value.message("zh_CN")


def test_patient_identity_is_kept_apart_from_pixels(deid_data_dir):
    intake = read_image(deid_data_dir / "animals" / "cat.dcm")
    assert intake.identity.name and "Wetzel" in intake.identity.name
    described = repr(intake.radiograph.describe())
    for value in intake.identity.identifying_values():
        assert value not in described
    assert "Wetzel" not in repr(intake.identity)


def _png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", array)
    assert ok
    return encoded.tobytes()


def _gradient(h=600, w=500, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top, w, dtype=np.float64)[None, :] * np.ones((h, 1))
    return ramp.astype(dtype)


def test_sixteen_bit_png_keeps_its_depth():
    data = _png(_gradient(dtype=np.uint16))
    radiograph = read_image(data).radiograph
    assert radiograph.bits_stored == 16
    assert radiograph.pixels[0, -1] == pytest.approx(1.0)
    # more than 256 distinct levels survive
    assert len(np.unique(radiograph.pixels[0])) > 256


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_raster_formats_collapse_rgb_to_gray(ext):
    rgb = np.dstack([_gradient()] * 3)
    ok, encoded = cv2.imencode(ext, rgb)
    assert ok
    radiograph = read_image(encoded.tobytes()).radiograph
    assert radiograph.pixels.ndim == 2
    assert radiograph.shape == (600, 500)
    assert radiograph.colourfulness < 1.0


def test_exif_orientation_is_honoured():
    image = Image.fromarray(_gradient(h=300, w=500))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    radiograph = read_image(buffer.getvalue()).radiograph
    assert radiograph.shape == (500, 300)
    assert "exif_orientation_6" in radiograph.transforms
    # the dark left edge of the gradient is now the top edge
    assert radiograph.pixels[:10].mean() < radiograph.pixels[-10:].mean()


def test_kind_is_detected_by_content_not_name(tmp_path, pydicom_data_dir):
    disguised = tmp_path / "knee.png"
    disguised.write_bytes((pydicom_data_dir / "RG3_UNCR.dcm").read_bytes())
    assert read_image(disguised).radiograph.source_format == "dicom"
    text_as_dicom = tmp_path / "scan.dcm"
    text_as_dicom.write_text("this is a note, not an image\n" * 20)
    with pytest.raises(IntakeError) as caught:
        read_image(text_as_dicom)
    assert caught.value.code == "intake.not_an_image"


def test_detect_kind_signatures():
    assert detect_kind(b"\x00" * 128 + b"DICM") == "dicom"
    assert detect_kind(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10) == "png"
    assert detect_kind(b"\xff\xd8\xff\xe0") == "jpeg"
    assert detect_kind(b"II*\x00") == "tiff"
    assert detect_kind(b"GIF89a") == "unknown"


def test_decompression_bomb_is_refused_before_decoding():
    # a valid PNG header that claims 65535 x 65535 pixels
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 65535, 65535, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
    with pytest.raises(IntakeError) as caught:
        read_image(data)
    assert caught.value.code == "intake.too_large"


def test_tiny_image_is_refused():
    with pytest.raises(IntakeError) as caught:
        read_image(_png(_gradient(h=20, w=20)))
    assert caught.value.code == "intake.too_small"


def test_uniform_image_is_refused_as_empty():
    with pytest.raises(IntakeError) as caught:
        read_image(_png(np.full((300, 300), 128, np.uint8)))
    assert caught.value.code == "intake.empty_pixels"


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(IntakeError) as caught:
        read_image(tmp_path / "nowhere.dcm")
    assert caught.value.code == "intake.unreadable_source"


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm"),  # RLE lossless
        ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),  # JPEG 2000 lossless
        ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
    ],
)
def test_compressed_transfer_syntaxes_decode_to_the_uncompressed_pixels(
    pydicom_data_dir, compressed, reference
):
    decoded = read_image(pydicom_data_dir / compressed).radiograph
    expected = read_image(pydicom_data_dir / reference).radiograph
    assert decoded.shape == expected.shape
    np.testing.assert_allclose(decoded.pixels, expected.pixels, atol=1e-6)


def test_jpeg_lossless_decodes(pydicom_data_dir):
    # JPEG-LL.dcm has no uncompressed twin in pydicom-data: check what pydicom's own
    # test-suite states about it (1024 x 256, values 0..278)
    radiograph = read_image(pydicom_data_dir / "JPEG-LL.dcm").radiograph
    assert radiograph.shape == (1024, 256)
    assert radiograph.pixels.max() > radiograph.pixels.min()
