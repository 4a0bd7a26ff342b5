"""A serial card reader and a receipt printer on a real agent, through the kiosk's API: one
swipe identifies the resident at the blood-pressure desk, nothing of her card number is logged
or stored, the result shows her code as a QR for the doctor and prints it; a reader unplugged
and a printer out of paper are device errors, and neither holds up the screen.

Both devices are on pseudo-terminals (tests/pty_device.py): real serial I/O through pyserial and
python-escpos's Serial printer; the printer's side answers ESC/POS real-time status requests as
a printer does (the only fake: the hardware's edge)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import segno

from contract.resident_code import ResidentCode
from drivers.ble.simulated import simulated_backend
from edge_agent.settings import AgentSettings
from kiosk_config.peripherals import PrinterSettings, ReaderSettings
from tests.kiosk_support import PSEUDONYMS, acall, button_cuff, kiosk_settings, page_headers
from tests.pty_device import PtyDevice
from tests.support import CUFF_ADDRESS, running_agent, wait_until
from tests.test_kiosk_screen_api import DeskEvents, saved_readings

CARD = "014A3B2C1D"  # what the RDM6300 frame below holds (tests/readers/test_framing.py)
CARD_FRAME = b"\x02014A3B2C1D43\x03"
DLE_EOT = b"\x10\x04"
# DLE EOT answers (drivers/receipt_printer.py): fixed bits 1 and 4; paper end is bits 5-6.
STATUS_OK, PAPER_OUT = 0x12, 0x72


class PrinterOnPty:
    """A receipt printer's side of a serial line: answers DLE EOT 1 and 4 with `status` (one
    byte, as the printer does) and keeps every other byte it is sent (the receipts)."""

    def __init__(self, port: Path) -> None:
        self.device = PtyDevice(port)
        self.paper = STATUS_OK
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self.device.receive(0.05)
            while DLE_EOT in data:
                before, _, data = data.partition(DLE_EOT)
                self.received += before
                request, data = data[:1], data[1:]
                self.device.send(bytes([self.paper if request == b"\x04" else STATUS_OK]))
            self.received += data

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.device.close()


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[PtyDevice]:
    device = PtyDevice(tmp_path / "usb-reader-if00")
    yield device
    device.close()


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[PrinterOnPty]:
    device = PrinterOnPty(tmp_path / "usb-printer-if00")
    yield device
    device.close()


def with_peripherals(settings: AgentSettings, reader: PtyDevice, printer: PrinterOnPty) -> AgentSettings:
    return settings.model_copy(update={
        "readers": [ReaderSettings(port=str(reader.port), model="rdm6300", reconnect_s=0.1)],
        "printer": PrinterSettings(connection="serial", port=str(printer.device.port), timeout_s=5),
    })


def device(agent, address: str):  # type: ignore[no-untyped-def]
    return next(d for d in agent.device_telemetry() if d.address == address)


async def svg(base_url: str, path: str) -> tuple[int, bytes, str]:
    def fetch() -> tuple[int, bytes, str]:
        request = urllib.request.Request(base_url.rstrip("/") + path, headers=page_headers(base_url))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), response.headers["content-type"]
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read(), error.headers["content-type"]

    return await asyncio.to_thread(fetch)


@pytest.mark.asyncio
async def test_one_swipe_identifies_her_her_qr_code_shows_and_prints_and_her_number_stays_nowhere(
    tmp_path: Path, broker, reader: PtyDevice, printer: PrinterOnPty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cuff = button_cuff()
    settings = with_peripherals(kiosk_settings(tmp_path, broker), reader, printer)
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        await wait_until(lambda: device(agent, "usb-reader-if00").link == "online", what="the reader's port open")
        async with DeskEvents(url) as events:
            reader.send(b"\xfe" + CARD_FRAME)  # line noise, then her card
            await wait_until(lambda: events.named("scan"), what="the scan on the screen")
            [scan] = events.named("scan")
            assert scan["kind"] == "card" and CARD not in str(scan)
            began = await acall(url, "POST", "/api/bp/begin", {"scan": scan["token"]})
            assert began.body == {"state": "waiting", "record": True}
            again = await acall(url, "POST", "/api/bp/begin", {"scan": scan["token"]})
            assert (again.status, again.body["error"]) == (404, "scan_expired")  # a token identifies once

            cuff.press_start()
            await wait_until(lambda: events.named("result"), what="her result")
        [reading] = saved_readings(agent)
        pseudonym = PSEUDONYMS.of_card(CARD)
        assert reading["subject"] == pseudonym
        [result] = events.named("result")
        assert result["resident_code"] is True

        # Her code as a QR on the result screen: what contract/resident_code.py says it holds.
        status, body, kind = await svg(url, f"/api/bp/result/{result['seq']}/resident-code.svg")
        code = ResidentCode(settings.site, pseudonym).text()
        assert (status, kind) == (200, "image/svg+xml"), body
        # The same symbol as that text encodes (segno is deterministic; the modules are the path).
        expected = io.BytesIO()
        segno.make_qr(code, error="m").save(expected, kind="svg", scale=8, border=2, xmldecl=False)
        assert body == expected.getvalue()

        # Printed: the reading, its meaning, the time and her code; nothing of her card.
        printed = await acall(url, "POST", f"/api/bp/result/{result['seq']}/print")
        assert printed.body == {"outcome": "printed"}
        await wait_until(lambda: b"\x1dV" in printer.received, what="the receipt cut")
        receipt = bytes(printer.received)
        assert "148/92 mmHg".encode("gb18030") in receipt and "偏高".encode("gb18030") in receipt
        assert "时间: ".encode("gb18030") in receipt  # the kiosk's time, or "unknown" while its clock is not trusted
        assert b"\x1d(k" in receipt and code.encode() in receipt  # GS ( k: the printer draws the QR code
        assert device(agent, "receipt-printer").link == "online"

        # Out of paper: said in words, a device error in telemetry, and the screen goes on.
        printer.paper = PAPER_OUT
        out = await acall(url, "POST", f"/api/bp/result/{result['seq']}/print")
        assert (out.status, out.body["error"]) == (503, "printer_paper_out")
        assert (await acall(url, "GET", "/api/screen")).status == 200
        telemetry = device(agent, "receipt-printer")
        assert telemetry.last_error is not None and telemetry.last_error.code == "printer_paper_out"

        # Home: the result, its QR code and its receipt are gone.
        await acall(url, "POST", "/api/bp/cancel")
        gone, _, _ = await svg(url, f"/api/bp/result/{result['seq']}/resident-code.svg")
        assert gone == 404

        # Unplugged: a device error, the link offline; plugged in again: read again.
        reader.unplug()
        await wait_until(lambda: device(agent, "usb-reader-if00").link == "offline", what="the reader gone")
        assert device(agent, "usb-reader-if00").last_error.code == "reader_gone"
        reader.plug()
        await wait_until(lambda: device(agent, "usb-reader-if00").link == "online", what="the reader back")

        assert agent.outbox is not None
        stored = [r.topic.encode() + r.body for r in agent.outbox.due(1000)]
    database = b"".join(p.read_bytes() for p in agent.outbox.path.parent.glob(agent.outbox.path.name + "*"))
    assert all(CARD.encode() not in row for row in stored) and CARD.encode() not in database
    assert CARD not in caplog.text and CARD[2:] not in caplog.text


@pytest.mark.asyncio
async def test_an_anonymous_result_has_no_code_and_a_hung_printer_does_not_hold_the_screen(
    tmp_path: Path, broker
) -> None:
    # A printer whose device file never opens: a FIFO with nobody reading blocks its writer,
    # as a printer driver's device can. The print times out; the screen answers meanwhile.
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    cuff = button_cuff()
    settings = kiosk_settings(tmp_path, broker).model_copy(
        update={"printer": PrinterSettings(connection="file", path=fifo, timeout_s=0.5)})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        async with DeskEvents(url) as events:
            await acall(url, "POST", "/api/bp/begin", {"anonymous": True})
            cuff.press_start()
            await wait_until(lambda: events.named("result"), what="the result")
        [result] = events.named("result")
        assert result["resident_code"] is False
        status, _, _ = await svg(url, f"/api/bp/result/{result['seq']}/resident-code.svg")
        assert status == 404

        printing = asyncio.create_task(acall(url, "POST", f"/api/bp/result/{result['seq']}/print"))
        await asyncio.sleep(0.1)
        assert (await acall(url, "GET", "/api/screen")).status == 200  # not blocked by the print
        hung = await printing
        assert (hung.status, hung.body["error"]) == (503, "printer_error")
        busy = await acall(url, "POST", f"/api/bp/result/{result['seq']}/print")
        assert busy.body["error"] == "printer_error" and "busy" in busy.body["reason"]
        # Someone reads the FIFO: the hung open returns, and the printer is free again.
        drain = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            await wait_until(lambda: not agent.printer._busy, what="the hung print over")  # type: ignore[union-attr]
        finally:
            os.close(drain)
