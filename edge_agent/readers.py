"""The kiosk's serial card and QR readers: each read becomes a pseudonym at once and goes to the
screen as a scan (screen/scans.py); each fault is the reader's device error in telemetry.

What a reader read is never logged, stored or sent: it lives in one local variable between the
driver and Pseudonyms, and only the pseudonym goes on (issue 22: "nothing of the number leaves
the kiosk")."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import PurePath
from typing import Literal

from contract.device_errors import DeviceErrorCode
from contract.telemetry import DeviceTelemetry
from drivers.readers.session import Read, ReaderConnected, ReaderFault, SerialReaderSession
from edge_agent.device_health import DeviceHealthBook
from contract.pseudonym import IdentifierError, Pseudonyms
from edge_agent.screen.scans import ScanBox
from firmware_configs.readers import load_reader_profiles
from kiosk_config.peripherals import ReaderSettings

log = logging.getLogger(__name__)

FAULT_CODES = {"gone": DeviceErrorCode.READER_GONE, "garbage": DeviceErrorCode.READER_GARBAGE}


class ReaderWatch:
    """One reader: its session, its link as telemetry shows it, and where its reads go."""

    def __init__(self, settings: ReaderSettings, *, pseudonyms: Pseudonyms | None, scans: ScanBox,
                 health: DeviceHealthBook, wall_clock: Callable[[], datetime]) -> None:
        profile = load_reader_profiles()[settings.model]
        self.session = SerialReaderSession(settings.port, profile, baudrate=settings.baudrate,
                                           reconnect_s=settings.reconnect_s)
        # Telemetry's address: the port's own name (a by-id name says which adapter it is).
        self.address = PurePath(settings.port).name[:64] or "reader"
        self.model = profile.model
        self.link: Literal["online", "offline", "unknown"] = "unknown"
        self._pseudonyms, self._scans, self._health, self._now = pseudonyms, scans, health, wall_clock

    async def run(self) -> None:
        if self._pseudonyms is None:
            log.warning("reader %s: no resident_secret, so its cards identify nobody; not read", self.address)
            return
        async for event in self.session.events():
            match event:
                case ReaderConnected():
                    self.link = "online"
                    self._health.succeeded(self.address)
                case ReaderFault(kind=kind, message=message):
                    if kind == "gone":
                        self.link = "offline"
                    self._health.failed(self.address, FAULT_CODES[kind], message, self._now())
                case Read():
                    self._identify(event, self._pseudonyms)

    def _identify(self, read: Read, pseudonyms: Pseudonyms) -> None:
        try:
            pseudonym = pseudonyms.of_card(read.number) if read.kind == "card" else pseudonyms.of_qr(read.number)
        except IdentifierError as error:
            self._scans.refused(error.reason)
            return
        self._scans.offer(read.kind, pseudonym)

    def telemetry(self) -> DeviceTelemetry:
        return DeviceTelemetry(address=self.address, model=self.model, link=self.link,
                               **self._health.telemetry(self.address))
