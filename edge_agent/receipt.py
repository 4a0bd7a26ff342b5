"""The result on paper: "打印" on the result screen prints the reading, its meaning in words,
the time and the resident's QR code for the doctor (issue 22, issue 21).

Printing runs in a thread with a timeout, never on the event loop: a printer that hangs holds
one print, never the screen. A printer out of paper, offline or failing is the printer's device
error in telemetry and a reason the screen says in words."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from contract.device_errors import DeviceErrorCode
from contract.resident_code import ResidentCode
from contract.telemetry import DeviceTelemetry
from drivers.receipt_printer import PrinterFault, Receipt, check_status, print_receipt
from edge_agent.device_health import DeviceHealthBook
from edge_agent.screen.measurement import ShownResult
from kiosk_config.peripherals import PrinterSettings

if TYPE_CHECKING:
    from escpos.escpos import Escpos

log = logging.getLogger(__name__)

ADDRESS = "receipt-printer"
FAULT_CODES = {
    "paper_out": DeviceErrorCode.PRINTER_PAPER_OUT,
    "offline": DeviceErrorCode.PRINTER_OFFLINE,
    "error": DeviceErrorCode.PRINTER_ERROR,
}
# The screen's words for a result's meaning (i18n.js, bp.category.*), on paper.
MEANING_WORDS = {
    True: {
        "normal": "正常", "high_normal": "正常高值：请注意少盐、多运动", "high": "偏高：请告诉您的家庭医生",
        "very_high": "很高：请休息5分钟后再测，并尽快就医", "unreliable": "这次的数字不可靠，请重新测量",
        "none": "没有测出结果，请重新测量",
    },
    False: {
        "normal": "Normal", "high_normal": "High-normal: less salt, more exercise",
        "high": "High: please tell your family doctor",
        "very_high": "Very high: rest 5 minutes, measure again, and see a doctor soon",
        "unreliable": "This reading is not reliable, please measure again", "none": "No result this time",
    },
}
UNKNOWN_TIME = {True: "未知（本机时钟未校准）", False: "unknown (the kiosk's clock is not set)"}
LABELS = {
    True: ("血压测量结果", "高压/低压", "心率", "时间", "请把二维码给家庭医生扫码"),
    False: ("Blood pressure", "Upper/lower", "Pulse", "Time", "Show this code to your family doctor"),
}


def wrapped(line: str, columns: int) -> list[str]:
    """`line` in pieces that fit `columns` of the printer's font: a Chinese character takes two
    (the printer's double-width GB18030 glyphs), a Latin one one; English breaks at a space. The
    printer would wrap too, but mid-number ("148/9" and "2 mmHg")."""
    pieces, piece = [], ""
    for character in line:
        if _columns(piece + character) > columns:
            cut = piece.rfind(" ") if character != " " else -1
            head, piece = (piece[:cut], piece[cut + 1:]) if cut > 0 else (piece, "")
            pieces.append(head)
        piece += character
    return [*pieces, piece.strip()] if piece.strip() else pieces


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def receipt_for(shown: ShownResult, site: str, *, chinese: bool, columns: int = 32) -> Receipt:
    """What is printed for a result, in lines of `columns` characters (PrinterSettings.
    characters_per_line); the QR code only for a resident on her record."""
    result = shown.result
    title, pressure, pulse, when, code_words = LABELS[chinese]

    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:g}"

    lines = [title, f"{pressure}: {number(result['systolic'])}/{number(result['diastolic'])} {result['unit']}"]
    if result.get("pulse_rate") is not None:
        lines.append(f"{pulse}: {number(result['pulse_rate'])}")
    at = UNKNOWN_TIME[chinese] if shown.at is None else f"{shown.at:%Y-%m-%d %H:%M}"
    lines += [MEANING_WORDS[chinese][result["meaning"]], f"{when}: {at}"]
    code = None if shown.subject is None else ResidentCode(site, shown.subject).text()
    if code is not None:
        lines.append(code_words)
    return Receipt(tuple(piece for line in lines for piece in wrapped(line, columns)), code)


def open_printer(settings: PrinterSettings) -> Escpos:
    """A python-escpos printer for the settings; it opens its device when first written to."""
    from escpos import printer  # imports every backend's library: only on a kiosk with a printer

    match settings.connection:
        case "usb":
            return printer.Usb(settings.usb_vendor_id, settings.usb_product_id, timeout=int(settings.timeout_s * 1000),
                               profile=settings.model)
        case "serial":
            return printer.Serial(settings.port, baudrate=settings.baudrate, timeout=1, profile=settings.model)
        case "file":
            return printer.File(str(settings.path), profile=settings.model)


class ReceiptPrinter:
    def __init__(self, settings: PrinterSettings, *, health: DeviceHealthBook, wall_clock: Callable[[], datetime],
                 connect: Callable[[], Escpos] | None = None) -> None:
        """`connect`: a printer object for each print (default: open_printer with the settings)."""
        self.settings = settings
        self._health, self._now = health, wall_clock
        self._connect = connect or (lambda: open_printer(settings))
        self._busy = False
        self.link: Literal["online", "degraded", "offline", "unknown"] = "unknown"

    async def print(self, receipt: Receipt) -> None:
        """Raises PrinterFault; `busy` when a print is still under way (or hung past its timeout)."""
        if self._busy:
            raise PrinterFault("error", "the printer is still busy with the last receipt")
        self._busy = True
        job = asyncio.get_running_loop().run_in_executor(None, self._print, receipt)
        job.add_done_callback(self._done)  # a hung print frees the printer only when it ends
        try:
            await asyncio.wait_for(asyncio.shield(job), self.settings.timeout_s)
        except TimeoutError:
            self._failed(PrinterFault("error", f"printing took longer than {self.settings.timeout_s:g} s"))
            raise PrinterFault("error", "printing took too long") from None
        except PrinterFault as fault:
            self._failed(fault)
            raise
        self.link = "online"
        self._health.succeeded(ADDRESS)

    def _done(self, job: asyncio.Future[None]) -> None:
        self._busy = False
        if not job.cancelled():
            job.exception()  # retrieved: a late failure is already reported as the timeout

    def _print(self, receipt: Receipt) -> None:
        try:
            printer = self._connect()
            printer.open()
        except Exception as error:  # python-escpos raises its own and the USB and serial libraries'
            raise PrinterFault("offline", f"cannot open the printer: {error}") from None
        try:
            if self.settings.status_query and self.settings.connection != "file":
                check_status(printer)
            print_receipt(printer, receipt, chinese=self.settings.chinese)
        except PrinterFault:
            raise
        except Exception as error:  # the device went away mid-print (pyusb, pyserial)
            raise PrinterFault("offline", f"the printer went away: {error}") from None
        finally:
            printer.close()

    def _failed(self, fault: PrinterFault) -> None:
        self.link = "offline" if fault.kind == "offline" else "degraded"
        self._health.failed(ADDRESS, FAULT_CODES[fault.kind], str(fault), self._now())

    def telemetry(self) -> DeviceTelemetry:
        return DeviceTelemetry(address=ADDRESS, model=self.settings.model[:64], link=self.link,
                               **self._health.telemetry(ADDRESS))
