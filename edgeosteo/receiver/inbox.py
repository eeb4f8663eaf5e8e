"""Where received images land: written durably, then recorded and queued in one step.

A file is written to a temporary name, flushed to the disk, renamed into place and its
folder flushed; only then is its row committed, and only after that does the sender hear
"stored". A crash at any point leaves either nothing acknowledged or a complete file with
its row and queued job.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom

from edgeosteo.config import ReceiverSettings
from edgeosteo.receiver.eligibility import Eligibility, HeaderFacts
from edgeosteo.store import CaseStore, IncomingInstance, ReceivedInstance

logger = logging.getLogger(__name__)

RECEIVED_DIR = "received"
INCOMING_DIR = ".incoming"


def write_durably(data: bytes, target: Path, scratch: Path) -> None:
    """``target`` holds ``data`` completely or does not exist, even across a power cut."""
    temporary = scratch / f"{uuid.uuid4().hex}.part"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def pixels_differ(data: bytes, stored: Path) -> bool:
    """Whether a resent DICOM's pixels differ from the stored copy's. The same encoding is
    compared byte for byte; another transfer syntax is decoded and compared value for value
    (a lossy re-encoding counts as different). Anything unreadable counts as different."""
    try:
        new = pydicom.dcmread(io.BytesIO(data))
        old = pydicom.dcmread(stored)
        new_syntax = new.file_meta.TransferSyntaxUID
        if new_syntax == old.file_meta.TransferSyntaxUID:
            if new.get("PixelData") == old.get("PixelData"):
                return False
            if not new_syntax.is_compressed:
                return True
        return not np.array_equal(new.pixel_array, old.pixel_array)
    except Exception:  # a resend that cannot be compared is shown for review
        return True


class Inbox:
    def __init__(self, store: CaseStore, settings: ReceiverSettings) -> None:
        self.store = store
        self.settings = settings
        self.root = store.data_dir / RECEIVED_DIR
        self.scratch = self.root / INCOMING_DIR
        self.scratch.mkdir(parents=True, exist_ok=True)
        # a half-written file from before a crash was never acknowledged
        for leftover in self.scratch.glob("*.part"):
            leftover.unlink(missing_ok=True)

    def has_room(self) -> bool:
        return self.store.queue_depth() < self.settings.queue_limit

    def accept(
        self,
        data: bytes,
        facts: HeaderFacts,
        eligibility: Eligibility,
        *,
        source: str,
        suffix: str = ".dcm",
        calling_ae: str | None = None,
        peer: str | None = None,
        origin_path: str | None = None,
    ) -> tuple[ReceivedInstance, bool]:
        """Write, record and (when eligible) queue one image. Returns the row and whether
        it is new (False: this SOP instance was received before; nothing was added).
        Raises QueueFull (nothing kept) and OSError (disk trouble, nothing kept)."""
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        folder = self.root / day
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{uuid.uuid4().hex}{suffix}"
        write_durably(data, target, self.scratch)
        incoming = IncomingInstance(
            source=source,
            file=str(target.relative_to(self.store.data_dir)),
            size_bytes=len(data),
            content_sha256=hashlib.sha256(data).hexdigest(),
            eligible=eligibility.eligible,
            reason_code=eligibility.reason_code,
            body_part=eligibility.body_part,
            sop_instance_uid=facts.sop_instance_uid,
            sop_class_uid=facts.sop_class_uid,
            calling_ae=calling_ae,
            peer=peer,
            origin_path=origin_path,
            modality=facts.modality,
            dicom_body_part=facts.body_part_examined,
            view_position=facts.view_position,
            laterality=facts.laterality,
            identity=facts.identity(),
        )
        try:
            instance, new = self.store.record_received(incoming, self.settings.queue_limit)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if not new:
            try:
                stored = self.store.data_dir / instance.file
                if (
                    suffix == ".dcm"
                    and pixels_differ(data, stored)
                    and self.store.record_conflict(instance.id, incoming)
                ):
                    logger.warning(
                        "resend of instance %s with other pixels: first copy kept",
                        instance.id,
                    )
            finally:
                target.unlink(missing_ok=True)
        return instance, new
