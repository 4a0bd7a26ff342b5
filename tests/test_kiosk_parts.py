"""The kiosk screen's parts on their own: pseudonyms, the guideline bands, the relay book's
expiry, the PIN and the rate limit."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from contract.clinical import BloodPressureGuideline, Threshold, category_of
from contract.topics import KioskTopics
from contract.pseudonym import IdentifierError, Pseudonyms
from contract.resident_code import ResidentCode
from edge_agent.screen.guard import PinGuard, RateLimit, Refused
from edge_agent.settings import ScreenSettings
from edge_agent.store.outbox import Outbox
from edge_agent.store.relay_station import RelayBook

KEY = Pseudonyms(b"k" * 32)


def test_a_pseudonym_is_the_hmac_of_kind_and_normalised_identifier() -> None:
    expected = hmac.new(b"k" * 32, b"card:31010119450101123X", hashlib.sha256).hexdigest()
    assert KEY.of_card(" 310101-1945 0101123x ") == expected
    # Kinds are kept apart; another site's secret gives another pseudonym.
    assert KEY.of_phone_last4("1234") != KEY.of("card", "1234") != KEY.of_qr("1234")
    assert Pseudonyms(b"s" * 32).of_card("310101194501011234") != KEY.of_card("310101194501011234")
    assert "k" * 32 not in repr(KEY)


def test_a_resident_code_scanned_back_in_is_the_same_resident_at_its_own_site_only() -> None:
    """The QR the kiosk shows and prints for the doctor (contract/resident_code.py) holds the
    pseudonym, not the card: scanned at a QR reader of the same site it must be her again, not
    the pseudonym of the code's text, or her readings would split across two records."""
    here = Pseudonyms(b"k" * 32, site="xuhui-01")
    card = here.of_card("310101194501011234")
    assert here.of_qr(f" {ResidentCode('xuhui-01', card).text()}\n") == card
    with pytest.raises(IdentifierError) as refused:
        here.of_qr(ResidentCode("minhang-02", card).text())
    assert refused.value.reason == "other_site_code"
    with pytest.raises(IdentifierError) as broken:
        here.of_qr(ResidentCode("xuhui-01", card).text()[:-1])
    assert broken.value.reason == "bad_qr_code"
    assert here.of_qr("rider-7731") == here.of("qr", "rider-7731")  # any other QR is as before


@given(st.text(max_size=300))
def test_any_typed_text_is_a_pseudonym_or_a_typed_refusal(text: str) -> None:
    for make in (KEY.of_card, KEY.of_phone_last4, KEY.of_qr):
        try:
            made = make(text)
        except IdentifierError as error:
            assert error.reason in {"bad_card_number", "bad_phone_digits", "bad_qr_code", "other_site_code"}
        else:
            assert len(made) == 64 and text.strip() not in ("",)


BANDS = ScreenSettings().blood_pressure_bands  # the kiosk's own default: the contract's guideline


@pytest.mark.parametrize(
    ("systolic", "diastolic", "category"),
    [
        (119, 79, "normal"), (120, 70, "high_normal"), (110, 80, "high_normal"), (139, 89, "high_normal"),
        (140, 70, "high"), (130, 90, "high"), (179, 109, "high"), (180, 60, "very_high"), (120, 110, "very_high"),
    ],
)
def test_the_chinese_guideline_bands_take_the_higher_of_the_two_numbers(systolic: int, diastolic: int, category: str) -> None:
    assert category_of(systolic, diastolic, "mmHg", BANDS, suspect=()) == category


def test_kpa_readings_are_banded_in_mmhg_and_the_bands_are_configurable() -> None:
    assert category_of(18.7, 12.0, "kPa", BANDS, suspect=()) == "high"  # 140.26/90.01 mmHg
    stricter = BloodPressureGuideline(high=Threshold(systolic=130, diastolic=80),
                                      high_normal=Threshold(systolic=120, diastolic=70))
    assert category_of(132, 70, "mmHg", stricter, suspect=()) == "high"
    with pytest.raises(ValidationError, match=r"the categories must rise: very_high.systolic \(180\) must be above high.systolic \(200\)"):
        BloodPressureGuideline(high=Threshold(systolic=200, diastolic=90))


def test_a_technician_pin_is_six_to_twelve_digits() -> None:
    assert ScreenSettings(technician_pin=SecretStr("123456")).technician_pin is not None
    for bad in ("12345", "abcdef", "1" * 13):
        with pytest.raises(ValidationError, match="6 to 12 digits"):
            ScreenSettings(technician_pin=SecretStr(bad))


def test_the_rate_limit_is_a_sliding_minute() -> None:
    now = [0.0]
    limit = RateLimit(2, monotonic=lambda: now[0])
    limit.take()
    now[0] = 30.0
    limit.take()
    with pytest.raises(Refused) as refused:
        limit.take()
    assert (refused.value.status, refused.value.retry_after_s) == (429, 30)
    now[0] = 60.0
    limit.take()  # the first has left the window


def test_wrong_pins_lock_and_the_lock_ends() -> None:
    now = [0.0]
    guard = PinGuard(SecretStr("246810"), attempts=2, lockout_s=100, monotonic=lambda: now[0])
    guard.check("246810")
    with pytest.raises(Refused, match="wrong_pin"):
        guard.check("111111")
    with pytest.raises(Refused, match="pin_locked"):
        guard.check(None)
    with pytest.raises(Refused, match="pin_locked"):
        guard.check("246810")
    now[0] = 101.0
    guard.check("246810")


def test_a_visit_never_checked_out_stops_counting_and_is_closed_as_expired(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    now = [datetime(2026, 11, 26, 3, 0, tzinfo=UTC)]
    book = RelayBook(outbox, KioskTopics("site", "kiosk"), max_stay=timedelta(hours=12), clock=lambda: now[0])
    rider, cleaner = KEY.of_phone_last4("4821"), KEY.of_phone_last4("0007")
    assert book.check_in(rider, "phone_last4").outcome == "checked_in"
    now[0] += timedelta(hours=11)
    assert book.check_in(cleaner, "phone_last4").inside == 2
    now[0] += timedelta(hours=2)  # the rider's visit is 13 hours old
    assert book.inside() == 1
    assert book.expire() == 1 and book.expire() == 0
    assert book.check_out(rider).outcome == "not_inside"
    # The rider comes back the next night: a new visit.
    assert book.check_in(rider, "phone_last4").outcome == "checked_in" and book.inside() == 2
    bodies = [json.loads(r.body) for r in outbox.due(100)]
    checkouts = [b["payload"] for b in bodies if b["payload"].get("reason")]
    assert [(c["reason"], c["stay_s"], c["inside"]) for c in checkouts] == [("expired", 13 * 3600.0, 1)]
    outbox.close()


def test_a_clock_stepped_back_never_gives_a_negative_stay(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    now = [datetime(2026, 11, 26, 3, 0, tzinfo=UTC)]
    book = RelayBook(outbox, KioskTopics("site", "kiosk"), max_stay=timedelta(hours=12), clock=lambda: now[0])
    book.check_in(KEY.of_qr("RIDER-1"), "qr")
    now[0] -= timedelta(hours=1)
    answer = book.check_out(KEY.of_qr("RIDER-1"))
    assert (answer.outcome, answer.stay_s) == ("checked_out", 0.0)
    outbox.close()


def test_the_spoken_result_says_the_numbers_and_their_meaning_in_mandarin() -> None:
    from edge_agent.screen.speech import spoken

    result = {"systolic": 148.0, "diastolic": 92.0, "pulse_rate": 74.0, "unit": "mmHg", "category": "high",
              "status": ["body_movement"]}
    assert spoken(result) == "高压 148，低压 92，心率 74，偏高，测量时有干扰，请坐好重新测量"
    assert spoken({"systolic": None, "diastolic": None}) == "这次没有测出结果，请重新测量"


@pytest.mark.asyncio
async def test_espeak_ng_says_a_result_with_its_mandarin_voice(tmp_path: Path) -> None:
    from edge_agent.screen.speech import Speaker

    said = tmp_path / "said.wav"
    speaker = Speaker("cmn", to_wav=said)
    speaker.say({"systolic": 128.0, "diastolic": 82.0, "pulse_rate": 71.0, "unit": "mmHg", "category": "high_normal",
                 "status": []})
    await speaker.finished()
    # A RIFF/WAVE file of a few seconds of speech (22,050 samples a second, 16 bits).
    assert said.read_bytes()[:4] == b"RIFF" and said.stat().st_size > 22_050
