"""The README's demo command, run as a newcomer would: real processes, real ports, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def processes_running(config: Path) -> list[int]:
    """The pids of `doorstep … --config CONFIG` processes alive now (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(config).encode() in arguments and b"doorstep" in arguments and state != "Z":
            found.append(int(entry.name))
    return found


def test_the_demo_serves_a_simulated_reading_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "doorstep", "demo", "--workdir", str(tmp_path), "--http-port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, so a failed test can stop the demo and every child it started.
        start_new_session=True,
    )
    try:
        assert demo.stdout is not None
        url = None
        tokens: dict[str, str] = {}
        pin: re.Match[str] | None = None
        for line in demo.stdout:
            match = re.search(r"(http://127\.0\.0\.1:\d+/api/v1/readings)", line)
            if match:
                url = match.group(1)
            token = re.search(r"(\w+) (\w+) +curl -H 'Authorization: Bearer ([\w-]+)'", line)
            if token:
                tokens[token.group(1)] = token.group(3)
            pin = pin or re.search(r"technician PIN +(\d{6,12})", line)
            if "Press Ctrl-C to stop" in line:
                break
        assert url, "the demo printed no readings URL"
        assert set(tokens) == {"technician", "doctor"}, "the demo printed no tokens"
        assert pin, "the demo printed no technician PIN"

        def get(address: str, role: str) -> Any:
            request = urllib.request.Request(address, headers={"Authorization": f"Bearer {tokens[role]}"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.load(response)

        deadline = time.monotonic() + 60  # a device that missed its first session waits DEMO_MEASURE_EVERY_S

        def kinds_stored(wanted: set[str]) -> set[str]:
            items: list[dict[str, object]] = []
            while time.monotonic() < deadline and not wanted <= {i["kind"] for i in items}:
                try:
                    items = get(url, "doctor")["items"]
                except OSError:
                    pass
                time.sleep(0.5)
            return {str(item["kind"]) for item in items}

        # The cuff measures when someone presses its start button, not by itself (issue 18,
        # item 8: it measured every 10 s and pulled the kiosk screen away from whoever used it).
        kinds = kinds_stored({"glucose"})
        assert "glucose" in kinds and "blood_pressure" not in kinds, f"readings of {kinds}; logs in {tmp_path}"
        assert demo.stdin is not None
        demo.stdin.write("\n")
        demo.stdin.flush()
        pressed_at = time.monotonic()
        kinds = kinds_stored({"blood_pressure", "glucose"})
        assert {"blood_pressure", "glucose"} <= kinds, f"readings of {kinds} only; logs in {tmp_path}"
        # At a person's pace: the pressure climbs for seconds, not a fifth of one.
        assert time.monotonic() - pressed_at > 10
        items = get(url, "doctor")["items"]
        assert {item["site"] for item in items} == {"demo-site"}
        # The simulated laundry room: every machine reported, the faulted one with its error.
        events: list[dict[str, Any]] = []
        events_url = url.replace("/readings", "/events") + "?type=laundry_machine&limit=500"
        while time.monotonic() < deadline and len({e["payload"]["unit"] for e in events}) < 8:
            events = get(events_url, "technician")["items"]
            time.sleep(0.5)
        assert {e["payload"]["unit"] for e in events} == set(range(1, 9)), f"logs in {tmp_path}"
        assert any(e["payload"]["state"] == "fault" and e["payload"]["error_code"] == 21 for e in events)
        # A crashed child is started again; the demo goes on.
        [agent] = processes_running(tmp_path / "agent.yaml")
        os.kill(agent, signal.SIGKILL)
        while time.monotonic() < deadline and processes_running(tmp_path / "agent.yaml") in ([], [agent]):
            time.sleep(0.2)
        assert processes_running(tmp_path / "agent.yaml") not in ([], [agent]), "the killed agent was not restarted"
        assert demo.poll() is None, "the demo ended with its agent"
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
        assert demo.returncode == 0
        assert "the agent exited with -9; restarting it" in output
        assert "Doorstep demo stopped." in output
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.communicate()
