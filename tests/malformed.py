"""A deterministic corpus of malformed files built from real seeds."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pydicom


def raster_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    gray = (rng.random((300, 260)) * 255).astype(np.uint8)
    gray16 = (rng.random((300, 260)) * 65535).astype(np.uint16)
    seeds = {}
    for name, ext, image in (
        ("png8", ".png", gray),
        ("png16", ".png", gray16),
        ("jpeg", ".jpg", gray),
        ("tiff", ".tif", gray16),
    ):
        ok, encoded = cv2.imencode(ext, image)
        assert ok
        seeds[name] = encoded.tobytes()
    return seeds


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _dicom_with(seed: bytes, **changes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(seed))
    for key, value in changes.items():
        setattr(ds, key, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def corpus(dicom_seeds: dict[str, bytes], count_per_seed: int = 22) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(20261124)
    seeds = {**dicom_seeds, **raster_seeds()}
    files: list[tuple[str, bytes]] = [("zero-length", b""), ("one-byte", b"\x00")]
    for name, seed in seeds.items():
        for i in range(count_per_seed):
            mode = i % 4
            if mode == 0:  # truncated at a random point
                cut = int(rng.integers(1, max(2, len(seed) - 1)))
                files.append((f"{name}-truncated-{cut}", seed[:cut]))
            elif mode == 1:  # bit flips in the first 4 kB (headers) and anywhere
                data = bytearray(seed)
                for _ in range(int(rng.integers(1, 12))):
                    limit = min(len(data), 4096) if rng.random() < 0.7 else len(data)
                    pos = int(rng.integers(0, limit))
                    data[pos] ^= 1 << int(rng.integers(0, 8))
                files.append((f"{name}-bitflip-{i}", bytes(data)))
            elif mode == 2:  # wrong magic
                data = bytearray(seed)
                start = 128 if name.startswith("dcm") else 0
                data[start : start + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
                files.append((f"{name}-magic-{i}", bytes(data)))
            else:  # random garbage spliced into the middle
                data = bytearray(seed)
                pos = int(rng.integers(0, len(data)))
                length = int(rng.integers(1, 512))
                data[pos : pos + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
                files.append((f"{name}-splice-{i}", bytes(data)))
    for width, height in ((65535, 65535), (1, 100000), (100000, 1), (0, 10), (70000, 800)):
        files.append((f"png-dims-{width}x{height}", _png_with_size(width, height)))
    first_dicom = next(iter(dicom_seeds.values()))
    for rows, cols in ((65535, 65535), (1, 60000), (0, 512)):
        files.append((f"dcm-dims-{rows}x{cols}", _dicom_with(first_dicom, Rows=rows, Columns=cols)))
    files.append(("dcm-frames", _dicom_with(first_dicom, NumberOfFrames=4)))
    files.append(("dcm-no-pixels", _dicom_with(first_dicom, PixelData=b"")))
    return files
