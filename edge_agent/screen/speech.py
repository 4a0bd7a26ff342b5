"""The result read aloud (screen.speak_results), offline, with espeak-ng's Mandarin voice: for a
resident whose reading glasses are in her pocket."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNRELIABLE = "这次的数字不可靠，请重新测量"
_MEANING = {"normal": "正常", "high_normal": "正常高值", "high": "偏高", "very_high": "很高，请尽快就医"}


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


class Speaker:
    def __init__(self, voice: str, *, to_wav: Path | None = None) -> None:
        """`to_wav`: write the speech to this WAV file instead of the loudspeaker (a machine
        without a sound card: the tests)."""
        self._voice = voice
        self._program = shutil.which("espeak-ng")
        self._to_wav = to_wav
        self._tasks: set[asyncio.Task[None]] = set()
        if self._program is None:
            log.warning("screen.speak_results is on but espeak-ng is not installed (apt-get install espeak-ng)")

    def say(self, result: dict[str, Any]) -> None:
        """Starts speaking and returns at once: the screen shows the result meanwhile."""
        if self._program is None:
            return
        task = asyncio.get_running_loop().create_task(self._say(self._program, spoken(result)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finished(self) -> None:
        """Wait for whatever is being said."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _say(self, program: str, words: str) -> None:
        try:
            output = [] if self._to_wav is None else ["-w", str(self._to_wav)]
            process = await asyncio.create_subprocess_exec(
                program, "-v", self._voice, *output, words,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            _, errors = await process.communicate()
            if process.returncode != 0:
                log.warning("espeak-ng failed (%s): %s", process.returncode, errors.decode(errors="replace").strip())
        except OSError as error:
            log.warning("espeak-ng could not run: %s", error)
