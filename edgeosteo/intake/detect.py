"""Recognise a file's kind from its bytes, never from its name."""

from __future__ import annotations

from typing import Literal

Kind = Literal["dicom", "png", "jpeg", "tiff", "unknown"]

_SIGNATURES: tuple[tuple[bytes, Kind], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
)


def detect_kind(head: bytes) -> Kind:
    """The kind of file whose first bytes (at least 132) are ``head``."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return "unknown"
