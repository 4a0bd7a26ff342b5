"""A receipt on an ESC/POS printer, through python-escpos: the printer's real-time status
before printing, and the receipt's bytes. No settings, no agent: an `Escpos` printer object in.

The real-time status (Epson ESC/POS Application Programming Guide, "DLE EOT n: Transmit
real-time status") answers one byte per request, even while the printer is offline:
- n=4, roll paper sensor: bits 5 and 6 set = paper end detected; bits 2 and 3 = near end.
- n=1, printer status: bit 3 set = offline (cover open, paper out, an error).
Bits 1 and 4 of both are fixed at 1 and bit 7 at 0, which tells an answer from line noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from escpos.escpos import Escpos

PAPER_END: Final = 0b0110_0000  # DLE EOT 4, bits 5-6
OFFLINE: Final = 0b0000_1000  # DLE EOT 1, bit 3
FIXED_MASK: Final = 0b1001_0010  # bits 7, 4 and 1 ...
FIXED_BITS: Final = 0b0001_0010  # ... are 0, 1 and 1 in every status byte
# FS & selects Chinese character mode on the GB18030 printers sold in China (the ESC/POS
# command sets of Xprinter, Zjiang and GPrinter, "FS &"); FS . leaves it.
CHINESE_ON: Final = b"\x1c\x26"
CHINESE_OFF: Final = b"\x1c\x2e"
# The QR code's module size in dots (GS ( k, function 167: 1-16): 6 dots at 203 dpi is 0.75 mm,
# which a phone reads from a hand's length on 58 mm paper.
QR_MODULE_DOTS: Final = 6


class PrinterFault(Exception):
    """Why the receipt was not printed. `kind` says whose it is: paper out (staff refill it),
    offline (the printer is off, unplugged, its cover open, or does not answer), error (it
    failed while printing)."""

    def __init__(self, kind: Literal["paper_out", "offline", "error"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Receipt:
    lines: tuple[str, ...]
    qr: str | None  # the text of a QR code printed under the lines


def _status(printer: Escpos, request: bytes) -> int:
    answer = printer.query_status(request)
    if not answer or answer[0] & FIXED_MASK != FIXED_BITS:
        raise PrinterFault("offline", "the printer did not answer its status request (DLE EOT): off or unplugged")
    return answer[0]


def check_status(printer: Escpos) -> None:
    """Raises PrinterFault unless the printer has paper and is online."""
    # python-escpos is imported where it is used: importing it loads its printer database
    # (half a second on a Pi), which a kiosk without a printer never needs.
    from escpos.constants import RT_STATUS_ONLINE, RT_STATUS_PAPER

    if _status(printer, RT_STATUS_PAPER) & PAPER_END == PAPER_END:
        raise PrinterFault("paper_out", "the printer is out of paper")
    if _status(printer, RT_STATUS_ONLINE) & OFFLINE:
        raise PrinterFault("offline", "the printer says it is offline (its cover open, or an error)")


def print_receipt(printer: Escpos, receipt: Receipt, *, chinese: bool) -> None:
    """The lines, the QR code centred under them, a feed and a cut. Raises PrinterFault."""
    from escpos.exceptions import Error as EscposError

    try:
        printer.set(align="left")
        for line in receipt.lines:
            if chinese:
                # python-escpos encodes text through its code pages, none of them Chinese: the
                # printer's own GB18030 mode takes the bytes as they are.
                printer._raw(CHINESE_ON + line.encode("gb18030") + b"\n" + CHINESE_OFF)
            else:
                printer.textln(line)
        if receipt.qr is not None:
            printer.set(align="center")
            printer.qr(receipt.qr, size=QR_MODULE_DOTS, native=True)  # GS ( k: the printer draws it
            printer.set(align="left")
        printer.cut()
    except (EscposError, OSError) as error:
        raise PrinterFault("error", f"printing failed: {error}") from None
