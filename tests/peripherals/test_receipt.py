"""What a receipt holds and the bytes python-escpos's Dummy printer is sent for it: the reading,
its meaning in words, the time, and the resident's code as a native QR command (GS ( k) only
for a resident on her record; and the ESC/POS status bytes read as the printer means them."""

from __future__ import annotations

from datetime import datetime

import pytest
from escpos.printer import Dummy

from contract.resident_code import ResidentCode
from drivers.receipt_printer import PrinterFault, check_status, print_receipt
from edge_agent.receipt import receipt_for
from edge_agent.screen.measurement import ShownResult

PSEUDONYM = "ab" * 32
RESULT = {"seq": 7, "unit": "mmHg", "systolic": 148.0, "diastolic": 92.0, "pulse_rate": 74.0, "category": "high",
          "meaning": "high", "status": [], "suspect": [], "record": True, "resident_code": True, "saved": True}
AT = datetime(2026, 12, 7, 9, 30)


def test_a_residents_receipt_in_chinese_has_the_reading_its_meaning_the_time_and_her_code() -> None:
    receipt = receipt_for(ShownResult(7, RESULT, PSEUDONYM, AT, 0.0), "jingan-01", chinese=True)
    code = ResidentCode("jingan-01", PSEUDONYM).text()
    assert receipt.lines == ("血压测量结果", "高压/低压: 148/92 mmHg", "心率: 74", "偏高：请告诉您的家庭医生",
                             "时间: 2026-12-07 09:30", "请把二维码给家庭医生扫码")
    assert receipt.qr == code
    printer = Dummy()
    print_receipt(printer, receipt, chinese=True)
    sent = printer.output
    # Each line in the printer's Chinese mode (FS & ... FS .), GB18030-encoded.
    assert b"\x1c\x26" + "偏高：请告诉您的家庭医生".encode("gb18030") + b"\n\x1c\x2e" in sent
    # GS ( k, function 180 (store the data: "1P0" + the code), then function 181 (print it).
    assert b"\x1d(k" + (len(code) + 3).to_bytes(2, "little") + b"1P0" + code.encode() in sent
    assert sent.index(b"1P0") < sent.index(b"\x1d(k\x03\x001Q0")
    assert sent.endswith(b"\x1bd\x06\x1dV\x00")  # ESC d 6: fed past the cutter; GS V 0: cut


def test_lines_are_wrapped_to_the_paper_chinese_characters_counting_double() -> None:
    receipt = receipt_for(ShownResult(7, {**RESULT, "meaning": "very_high"}, None, AT, 0.0), "jingan-01",
                          chinese=True, columns=16)
    # "很高：请休息5分钟后再测，并尽快就医": 17 characters, 16 of them wide; the numbers whole.
    assert receipt.lines == ("血压测量结果", "高压/低压:", "148/92 mmHg", "心率: 74", "很高：请休息5分", "钟后再测，并尽快",
                             "就医", "时间: 2026-12-07", "09:30")
    assert all(sum(2 if ord(c) > 0x2E80 else 1 for c in line) <= 16 for line in receipt.lines)


def test_a_kiosk_whose_clock_is_not_trusted_prints_no_time() -> None:
    receipt = receipt_for(ShownResult(7, RESULT, PSEUDONYM, None, 0.0), "jingan-01", chinese=True)
    assert "时间: 未知（本机时钟未校准）" in receipt.lines


def test_an_anonymous_receipt_in_english_has_no_code() -> None:
    anonymous = {**RESULT, "record": False, "resident_code": False, "pulse_rate": None, "meaning": "unreliable"}
    receipt = receipt_for(ShownResult(8, anonymous, None, AT, 0.0), "jingan-01", chinese=False)
    assert receipt.qr is None
    assert receipt.lines == ("Blood pressure", "Upper/lower: 148/92 mmHg",
                             "This reading is not reliable,", "please measure again", "Time: 2026-12-07 09:30")
    printer = Dummy()
    print_receipt(printer, receipt, chinese=False)
    assert b"Upper/lower: 148/92 mmHg\n" in printer.output and b"\x1d(k" not in printer.output


class AnsweringDummy(Dummy):
    """A Dummy that answers DLE EOT as a printer does: the edge of the hardware, faked."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        super().__init__()
        self._answers, self._last = answers, b""

    def _raw(self, msg: bytes) -> None:
        self._last = msg
        super()._raw(msg)

    def _read(self) -> bytes:
        return self._answers.get(self._last, b"")


@pytest.mark.parametrize(("paper", "online", "fault"), [
    (b"\x12", b"\x12", None),  # paper, online
    (b"\x1e", b"\x12", None),  # paper near its end (bits 2-3): still prints
    (b"\x72", b"\x1a", "paper_out"),  # paper end (bits 5-6), and so offline
    (b"\x12", b"\x1a", "offline"),  # online status bit 3: its cover open
    (b"", b"", "offline"),  # no answer
    (b"\xff", b"\x12", "offline"),  # not a status byte (fixed bits wrong): noise
])
def test_the_real_time_status_bytes_are_read_as_the_printer_means_them(paper: bytes, online: bytes, fault: str | None) -> None:
    printer = AnsweringDummy({b"\x10\x04\x04": paper, b"\x10\x04\x01": online})
    if fault is None:
        check_status(printer)
    else:
        with pytest.raises(PrinterFault) as caught:
            check_status(printer)
        assert caught.value.kind == fault
