"""Words read aloud, offline, with espeak-ng's Mandarin voice: the result, for a resident whose
reading glasses are in her pocket (screen.speak_results), and any screen's words again when she
presses "再说一遍".

espeak-ng playing by itself exits 0 with no sound device at all (measured on a machine without
a sound card: exit 0, nothing heard, nothing logged), so a silent loudspeaker went unnoticed.
Here espeak-ng only synthesises (--stdout, a WAV) and ALSA's `aplay` plays it: aplay's exit
status is the truth about the loudspeaker. Whether speech works is kept (SpeechHealth) for the
kiosk's telemetry, and each change of condition is logged once."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNRELIABLE = "这次的数字不可靠，请重新测量"
_MEANING = {"normal": "正常", "high_normal": "正常高值", "high": "偏高", "very_high": "很高，请尽快就医"}
# What the page may ask to be said: a screen's instruction is a sentence or two.
MAX_WORDS = 500
ENGLISH_VOICE = "en"
# aplay waits for a device that is busy: the start-up check must not hold up the agent's start,
# nor a saying the next one (a screen's words last seconds; MAX_WORDS of them, about a minute).
CHECK_TIMEOUT_S = 5.0
SAYING_TIMEOUT_S = 120.0
# The start-up check plays this much silence: it opens the sound device as speech would, and
# nobody hears it.
CHECK_SILENCE_S = 0.05


def spoken(result: dict[str, Any]) -> str:
    """What is said, e.g. "高压 128，低压 82，心率 71，正常"."""
    if result.get("systolic") is None or result.get("diastolic") is None:
        return "这次没有测出结果，请重新测量"
    if result.get("meaning") == "unreliable":
        # The desk's verdict (measurement.py), as the screen shows it: numbers read aloud would
        # sound like a result, so only the request to measure again is said.
        return UNRELIABLE
    unit = "千帕" if result.get("unit") == "kPa" else ""
    parts = [f"高压 {result['systolic']:g}{unit}", f"低压 {result['diastolic']:g}{unit}"]
    if result.get("pulse_rate") is not None:
        parts.append(f"心率 {result['pulse_rate']:g}")
    if result.get("category") in _MEANING:
        parts.append(_MEANING[result["category"]])
    if result.get("status"):
        parts.append("测量时有干扰，请坐好重新测量")
    return "，".join(parts)


@dataclass(frozen=True, slots=True)
class SpeechHealth:
    """`ok` None: nothing tried yet. `error`: why it failed, in a technician's words."""

    ok: bool | None = None
    error: str | None = None


class Speaker:
    def __init__(self, voice: str, *, to_wav: Path | None = None) -> None:
        """`to_wav`: write the speech to this WAV file instead of playing it (to hear what a
        machine without a sound card would have said: the tests)."""
        self._voice = voice
        self._espeak = shutil.which("espeak-ng")
        self._to_wav = to_wav
        self._tasks: set[asyncio.Task[None]] = set()
        self._current: asyncio.Task[None] | None = None
        self.health = SpeechHealth()
        self.last_words: str | None = None  # the last result said, for "say it again"

    def say(self, result: dict[str, Any]) -> None:
        """Starts saying a result and returns at once: the screen shows it meanwhile."""
        self.last_words = spoken(result)
        self.say_words(self.last_words)

    def say_words(self, words: str, *, english: bool = False) -> None:
        """Starts saying these words (at most MAX_WORDS characters) and returns at once.
        `english`: in espeak-ng's English voice (the page is in English), not the kiosk's."""
        voice = ENGLISH_VOICE if english else self._voice
        # New words cut the old ones short, and start once they are stopped: two players at
        # once would find the sound device busy (without dmix) and report a working one failing.
        previous = self._current
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self._say(words[:MAX_WORDS], voice, after=previous))
        self._current = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self) -> SpeechHealth:
        """Can this kiosk speak? espeak-ng is there and the sound device plays (silence)."""
        if self._espeak is None:
            self._record(False, "espeak-ng is not installed (apt-get install espeak-ng)")
        elif self._to_wav is None:
            self._record(*await _play(_silence(), CHECK_TIMEOUT_S))
        return self.health

    async def finished(self) -> None:
        """Wait for whatever is being said."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _say(self, words: str, voice: str, *, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        if self._espeak is None:
            self._record(False, "espeak-ng is not installed (apt-get install espeak-ng)")
            return
        # The words go in on stdin, never as an argument: words that begin with "-" are not options.
        output = ["--stdout"] if self._to_wav is None else ["-w", str(self._to_wav)]
        try:
            process = await asyncio.create_subprocess_exec(
                self._espeak, "-v", voice, *output, "--stdin",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            sound, errors = await _finish(process, words.encode())
        except OSError as error:
            self._record(False, f"espeak-ng could not run: {error}")
            return
        if process.returncode != 0:
            self._record(False, f"espeak-ng failed ({process.returncode}): {_last_line(errors)}")
        elif self._to_wav is None:
            self._record(*await _play(sound, SAYING_TIMEOUT_S))

    def _record(self, ok: bool, error: str | None = None) -> None:
        """Keep the condition; log it once when it changes, not at every sentence."""
        now = SpeechHealth(ok, None if ok else error)
        if now == self.health:
            return
        if ok:
            log.info("speech works%s: the loudspeaker plays", "" if self.health.ok is None else " again")
        else:
            log.warning("speech fails, the kiosk is silent: %s", error)
        self.health = now


async def _play(sound: bytes, timeout_s: float) -> tuple[bool, str | None]:
    """Play a WAV on the default ALSA device: (played, why not)."""
    aplay = shutil.which("aplay")
    if aplay is None:
        return False, "aplay is not installed (apt-get install alsa-utils)"
    try:
        process = await asyncio.create_subprocess_exec(
            aplay, "-q", "-", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await asyncio.wait_for(_finish(process, sound), timeout_s)
    except TimeoutError:  # before OSError: it is one
        return False, f"no sound: aplay did not finish within {timeout_s:.0f} s (the sound device is busy?)"
    except OSError as error:
        return False, f"aplay could not run: {error}"
    if process.returncode != 0:
        return False, f"no sound: aplay failed ({process.returncode}): {_last_line(errors)}"
    return True, None


async def _finish(process: asyncio.subprocess.Process, given: bytes) -> tuple[bytes, bytes]:
    """communicate(), and the process killed if the words are cut short (cancelled)."""
    try:
        return await process.communicate(given)
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


def _silence() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(b"\0\0" * int(22050 * CHECK_SILENCE_S))
    return buffer.getvalue()


def _last_line(errors: bytes) -> str:
    lines = errors.decode(errors="replace").strip().splitlines()
    return lines[-1][:200] if lines else "no message"
