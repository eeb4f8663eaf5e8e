"""The DICOM Storage SCP the X-ray unit sends to (pynetdicom).

The C-STORE handler only checks the header, applies the eligibility rules, writes the image
durably and queues it; screening happens in the worker, never inside the association. The
success status goes back only after the file is renamed into place and its row committed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.pdu import P_DATA_TF

from edgeosteo.config import AnatomySettings, ReceiverSettings
from edgeosteo.intake.dicom import _check_uncompressed_length as check_uncompressed_length
from edgeosteo.receiver.eligibility import ACCEPTED_SOP_CLASSES, HeaderFacts, assess_eligibility
from edgeosteo.receiver.inbox import Inbox
from edgeosteo.receiver.series import SeriesSpool
from edgeosteo.store import QueueFull

logger = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
# the transfer syntaxes edgeosteo.intake decodes
TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


class StorageSCP:
    """One listening AE; ``start()`` returns the bound (host, port)."""

    def __init__(
        self,
        settings: ReceiverSettings,
        inbox: Inbox,
        on_queued: Callable[[], None],
        anatomy: AnatomySettings | None = None,
        series_spool: SeriesSpool | None = None,
    ) -> None:
        self.settings = settings
        self.anatomy = anatomy or AnatomySettings()
        self.series_spool = series_spool
        self.inbox = inbox
        self.on_queued = on_queued
        self._server = None

    def start(self) -> tuple[str, int]:
        ae = AE(ae_title=self.settings.ae_title)
        for sop_class in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        if self.series_spool is not None:
            ae.add_supported_context(CT_IMAGE_STORAGE, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION)
        ae.require_calling_aet = list(self.settings.allowed_calling_ae_titles)
        # pynetdicom rejects another called AE title with A-ASSOCIATE-RJ (permanent, service
        # user, "called AE title not recognised")
        ae.require_called_aet = not self.settings.accept_any_called_ae_title
        ae.maximum_associations = self.settings.max_associations
        # A slot is held from the TCP connect: the ACSE timeout bounds the wait for the
        # A-ASSOCIATE-RQ, and the association starts with the short idle timeout as its
        # network (idle PDU) timeout; its first P-DATA raises that to network_timeout_seconds
        ae.acse_timeout = self.settings.idle_timeout_seconds
        ae.network_timeout = self.settings.idle_timeout_seconds
        handlers = [
            (evt.EVT_PDU_RECV, self._on_pdu),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        self._server = ae.start_server(
            (self.settings.host, self.settings.port), block=False, evt_handlers=handlers
        )
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_requested(self, event: Event) -> None:
        allowed = self.settings.allowed_addresses
        address = event.assoc.requestor.address
        if allowed and address not in allowed:
            logger.warning("association from %s refused: address not allowed", address)
            # rejected permanent, by the service user, no reason given
            event.assoc.acse.send_reject(0x01, 0x01, 0x01)
            evt.trigger(event.assoc, evt.EVT_REJECTED, {})
            # wait until the A-ASSOCIATE-RJ has gone out (as pynetdicom's own rejections do):
            # without this the server closes the socket before the PDU is sent
            event.assoc.kill()

    def _on_pdu(self, event: Event) -> None:
        # runs in the association's DUL thread for every PDU received
        if isinstance(event.pdu, P_DATA_TF):
            assoc = event.assoc
            if assoc.network_timeout != self.settings.network_timeout_seconds:
                assoc.network_timeout = self.settings.network_timeout_seconds

    def _on_echo(self, event: Event) -> int:
        return SUCCESS

    def _on_store(self, event: Event) -> Dataset:
        request = event.request
        calling = event.assoc.requestor.ae_title
        peer = event.assoc.requestor.address
        try:
            data = event.encoded_dataset(include_meta=True)
            ds = pydicom.dcmread(io.BytesIO(data))
            # parse every element now: a damaged one must fail here, not in the worker
            for _ in ds.iterall():
                pass
            facts = HeaderFacts.from_dataset(ds)
            if not (facts.sop_instance_uid and facts.sop_class_uid):
                raise ValueError("no SOP instance or class UID")
            has_pixels = any(k in ds for k in PIXEL_KEYWORDS)
            if has_pixels:
                # pixel data shorter than the header promises: cut off on the way
                check_uncompressed_length(ds, int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
        except Exception as exc:  # any parse failure of the sender's bytes
            logger.warning("C-STORE from %s refused: %s", calling, type(exc).__name__)
            return _status(CANNOT_UNDERSTAND, "receiver.malformed_dicom")
        announced = (str(request.AffectedSOPInstanceUID), str(request.AffectedSOPClassUID))
        if (facts.sop_instance_uid, facts.sop_class_uid) != announced:
            return _status(DOES_NOT_MATCH_SOP_CLASS, "receiver.sop_mismatch")
        if not has_pixels:
            return _status(DOES_NOT_MATCH_SOP_CLASS, "receiver.no_pixel_data")
        if self.series_spool is not None and facts.sop_class_uid == CT_IMAGE_STORAGE:
            return self._store_slice(data, ds, facts, calling)
        eligibility = assess_eligibility(facts, self.settings, self.anatomy)
        if eligibility.eligible and not self.inbox.has_room():
            return _status(OUT_OF_RESOURCES, "receiver.queue_full")
        try:
            instance, new = self.inbox.accept(
                data, facts, eligibility, source="scp", calling_ae=calling, peer=peer
            )
        except QueueFull:
            return _status(OUT_OF_RESOURCES, "receiver.queue_full")
        except OSError as exc:
            logger.error("C-STORE from %s not stored: %s", calling, exc)
            return _status(OUT_OF_RESOURCES, "receiver.storage_failed")
        if new and instance.state == "queued":
            self.on_queued()
        return _status(SUCCESS)

    def _store_slice(self, data: bytes, ds: Dataset, facts: HeaderFacts, calling: str):
        series_uid = str(ds.get("SeriesInstanceUID") or "").strip()
        if not series_uid:
            return _status(CANNOT_UNDERSTAND, "receiver.malformed_dicom")
        assert self.series_spool is not None
        try:
            self.series_spool.accept(data, series_uid, str(facts.sop_instance_uid))
        except OSError as exc:
            logger.error("CT slice from %s not stored: %s", calling, exc)
            return _status(OUT_OF_RESOURCES, "receiver.storage_failed")
        return _status(SUCCESS)


def _status(code: int, comment: str | None = None) -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status
