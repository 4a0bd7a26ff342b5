"""Issue 18, item 9: help on every kiosk screen, and a loudspeaker whose silence is noticed.

- Speech is checked for real: espeak-ng exits 0 with no sound device, so the kiosk plays its
  sound with ALSA's aplay and trusts aplay's exit status. This machine has no sound card: a
  real run must report speech failing (logged once per condition, in the telemetry). A fake
  `aplay` on PATH (a script at the hardware edge, the only thing not real here) stands for a
  kiosk whose loudspeaker plays.
- "Say it again" says the screen's words again; "call staff" is a staff_called event in the
  outbox, once per repeat window, that the bridge turns into an alert the station's staff see.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from contract.envelope import Envelope
from contract.payloads import StaffCalledEvent
from edge_agent.screen.speech import CHECK_TIMEOUT_S, Speaker, SpeechHealth
from tests.kiosk_support import acall, kiosk_settings
from tests.support import SITE, running_agent, wait_until

RESULT = {"systolic": 128.0, "diastolic": 82.0, "pulse_rate": 71.0, "unit": "mmHg", "category": "high_normal",
          "status": []}


@pytest.fixture
def fake_aplay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `aplay` first on PATH that keeps what it was given to play (in played-*.wav) and exits
    with the status in its `exit` file (0: it played); with a `hang` file, it never finishes (a
    sound device held by another program)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "aplay"
    script.write_text(
        "#!/bin/sh\n"
        f'dir="{bin_dir}"\n'
        '[ -e "$dir/hang" ] && exec sleep 60\n'
        'cat > "$dir/played-$(date +%s%N)-$$.wav"\n'
        'status=$(cat "$dir/exit")\n'
        '[ "$status" = 0 ] || echo "aplay: main:831: audio open error: Device or resource busy" >&2\n'
        'exit "$status"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "exit").write_text("0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def played(bin_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(bin_dir.glob("played-*.wav"))]


# --- Speech, on this machine and with a loudspeaker -------------------------------------------


@pytest.mark.asyncio
async def test_on_this_machine_without_a_sound_card_speech_is_reported_failing_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not Path("/proc/asound/cards").exists(), "this test means a machine without a sound card"
    speaker = Speaker("cmn")
    with caplog.at_level(logging.WARNING, logger="edge_agent.screen.speech"):
        health = await speaker.check()
        assert health.ok is False
        assert health.error is not None and "aplay" in health.error
        for _ in range(3):
            speaker.say(RESULT)
            await speaker.finished()
    assert speaker.health == health  # the same condition
    failures = [r for r in caplog.records if "speech fails" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.asyncio
async def test_with_a_loudspeaker_speech_plays_and_a_failure_and_the_recovery_are_each_logged_once(
    fake_aplay: Path, caplog: pytest.LogCaptureFixture
) -> None:
    speaker = Speaker("cmn")
    with caplog.at_level(logging.INFO, logger="edge_agent.screen.speech"):
        assert (await speaker.check()).ok is True
        speaker.say(RESULT)
        await speaker.finished()
        assert speaker.health.ok is True and speaker.health.error is None
        # The silence of the check, then the result: a WAV espeak-ng made, of some length.
        [silence, result] = played(fake_aplay)
        assert result[:4] == b"RIFF" and len(result) > len(silence) > 44

        (fake_aplay / "exit").write_text("1")  # the USB sound card pulled out
        for _ in range(2):
            speaker.say_words("请戴好袖带")
            await speaker.finished()
        assert speaker.health.ok is False
        assert speaker.health.error == "no sound: aplay failed (1): aplay: main:831: audio open error: Device or resource busy"
        (fake_aplay / "exit").write_text("0")
        speaker.say_words("请戴好袖带")
        await speaker.finished()
        assert speaker.health.ok is True
        # Pressed again and again: each new saying cuts the last short; none fails for it.
        for _ in range(5):
            speaker.say_words("请戴好袖带，按血压计上的“开始”键。袖带绑在左上臂，与心脏同高。")
        await speaker.finished()
        assert speaker.health.ok is True
    messages = [r.getMessage() for r in caplog.records]
    assert sum("speech fails" in m for m in messages) == 1 and sum("speech works again" in m for m in messages) == 1


@pytest.mark.asyncio
async def test_a_player_that_hangs_is_a_failure_within_the_check_timeout_not_a_stuck_start(fake_aplay: Path) -> None:
    (fake_aplay / "hang").touch()
    started = time.monotonic()
    health = await Speaker("cmn").check()
    assert time.monotonic() - started < CHECK_TIMEOUT_S + 2
    assert health == SpeechHealth(False, "no sound: aplay did not finish within 5 s (the sound device is busy?)")


# --- The agent: telemetry, "say it again", "call staff" --------------------------------------


@pytest.mark.asyncio
async def test_the_kiosks_telemetry_says_its_speech_fails_here(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker, screen={"speak_results": True})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        report = await agent.snapshot()
    assert report.speech_ok is False and report.speech_error is not None and "aplay" in report.speech_error


@pytest.mark.asyncio
async def test_a_kiosk_that_does_not_speak_reports_nothing_of_speech_and_offers_no_say_again(
    tmp_path: Path, broker
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        report = await agent.snapshot()
        assert report.speech_ok is None and report.speech_error is None
        assert (await acall(agent.screen.url, "GET", "/api/screen")).body["speech"] is False
        refused = await acall(agent.screen.url, "POST", "/api/help/say-again", {"words": "您好"})
        assert refused.status == 409 and refused.body["error"] == "speech_off"


@pytest.mark.asyncio
async def test_say_it_again_says_the_screens_words_or_the_last_result_through_the_loudspeaker(
    tmp_path: Path, broker, fake_aplay: Path
) -> None:
    settings = kiosk_settings(tmp_path, broker, screen={"speak_results": True})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None and agent.speaker is not None
        url = agent.screen.url
        assert (await acall(url, "GET", "/api/screen")).body["speech"] is True
        assert (await agent.snapshot()).speech_ok is True
        said = await acall(url, "POST", "/api/help/say-again", {"words": "请刷卡，或输入居民卡号"})
        assert said.status == 200 and said.body == {"words": "请刷卡，或输入居民卡号"}
        await wait_until(lambda: len(played(fake_aplay)) == 2, what="the words played")
        # Before any result, "the result again" has nothing to say.
        assert (await acall(url, "POST", "/api/help/say-again", {"result": True})).status == 422
        agent.speaker.say(RESULT)
        await wait_until(lambda: len(played(fake_aplay)) == 3, what="the result said")
        again = await acall(url, "POST", "/api/help/say-again", {"result": True, "language": "en"})
        assert again.status == 200 and again.body == {"words": "高压 128，低压 82，心率 71，正常高值"}
        await wait_until(lambda: len(played(fake_aplay)) == 4, what="the result said again")
        too_long = await acall(url, "POST", "/api/help/say-again", {"words": "长" * 501})
        assert too_long.status == 422


def staff_calls(agent) -> list[StaffCalledEvent]:  # type: ignore[no-untyped-def]
    records = [r for r in agent.outbox.due(1000) if r.topic.endswith("/events/staff_called")]
    return [StaffCalledEvent.model_validate(Envelope.model_validate_json(r.body).payload) for r in records]


@pytest.mark.asyncio
async def test_call_staff_saves_one_event_per_window_naming_the_screen_only(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker)  # the broker is never started: saved, waiting
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        first = await acall(url, "POST", "/api/help/call-staff", {"screen": "bp-cuff"})
        assert first.status == 200 and first.body == {"outcome": "called"}
        for screen in ("bp-cuff", "home"):
            again = await acall(url, "POST", "/api/help/call-staff", {"screen": screen})
            assert again.status == 200 and again.body == {"outcome": "already_called"}
        [call] = staff_calls(agent)
        assert call.screen == "bp-cuff"
        assert set(call.model_dump()) == {"call_id", "screen"}
        bad = await acall(url, "POST", "/api/help/call-staff", {"screen": "<script>"})
        assert bad.status == 422


@pytest.mark.asyncio
async def test_a_call_for_staff_reaches_the_bridge_as_an_alert_the_stations_staff_see_and_resolve(
    tmp_path: Path, running_broker, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    settings = kiosk_settings(tmp_path, running_broker)
    settings = settings.model_copy(update={"screen": settings.screen.model_copy(update={"staff_call_repeat_s": 0.5})})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        called = await acall(agent.screen.url, "POST", "/api/help/call-staff", {"screen": "laundry-card"})
        assert called.body == {"outcome": "called"}
        await wait_until(lambda: any(e.type == "staff_called" for e in bridge.events()), what="the call stored")
        with bridge.api(role="station_staff", site=SITE) as staff:
            await wait_until(lambda: staff.get("/api/v1/alerts", kind="staff_called").body["total"] == 1,
                             what="the alert")
            [alert] = staff.get("/api/v1/alerts", kind="staff_called").body["items"]
            assert (alert["severity"], alert["state"], alert["site"]) == ("warning", "open", SITE)
            assert alert["data"]["title_zh"] == "自助机上有人呼叫工作人员（洗衣房）"
            assert alert["data"]["screen"] == "laundry-card"
            # A second call after the kiosk's window, while the alert is open: one alert, counted.
            await asyncio.sleep(0.6)  # the kiosk's repeat window (0.5 s here)
            assert (await acall(agent.screen.url, "POST", "/api/help/call-staff", {"screen": "home"})).body == {"outcome": "called"}
            await wait_until(lambda: staff.get(f"/api/v1/alerts/{alert['id']}").body["occurrences"] == 2,
                             what="the second call counted")
            resolved = staff.post(f"/api/v1/alerts/{alert['id']}/resolve", {"note": "到了，帮她重新绑好袖带"})
            assert resolved.status == 200 and resolved.body["state"] == "resolved"
        with bridge.api(role="technician") as technician:
            assert technician.get("/api/v1/alerts", kind="staff_called").body["total"] == 1
        with bridge.api(role="station_staff", site="xuhui-tianlin") as elsewhere:
            assert elsewhere.get("/api/v1/alerts", kind="staff_called").body["total"] == 0
