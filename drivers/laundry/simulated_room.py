"""The demo's laundry room: every machine simulated on a pseudo-terminal RS-485 line.

`SimulatedRoom.open(...)` plays it in the calling process: a pty pair (pty_link.py) with the
pymodbus simulator (simulator.py) on one end, found mid-morning (`busy_room`), on a clock 30x
fast. The agent does so for `port: simulated`, which tests use to drive the machines.

`python -m drivers.laundry.simulated_room --machine 1=washer-retrofit-a ...` runs it as its own
process, standing for the machines of a real room: it prints the driver's end of the line, a
/dev/pts path that the agent opens through pyserial as it opens /dev/ttyUSB0 on a kiosk, and
serves until SIGTERM or SIGINT. The demo and the footprint benchmark run it so (`RoomProcess`):
a kiosk's agent does not carry a simulated room, so neither does the one they run (in the
agent's process the room cost it 2.4 MB resident and a relay thread, measured beside
benchmarks/footprint.py, which reports the room's own process apart).
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self

from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, busy_room
from firmware_configs.laundry import LaundryProfile, load_laundry_profiles

# The machines' clocks run this many times faster than real time, so a 45-minute wash ends
# during a demo; they advance once a second.
SPEEDUP = 30
TICK_S = 1.0
# How long a parent waits for the room's process to print its port (imports and a pty pair).
START_TIMEOUT_S = 30.0


class SimulatedRoom:
    """A room on its pty line, serving; `driver_path` is the end a driver opens. `await close()`."""

    def __init__(self, link: PtyLink, simulator: LaundryRoomSimulator) -> None:
        self.link = link
        self.simulator = simulator
        self.driver_path: str = link.driver_path

    @classmethod
    async def open(cls, machines: Mapping[int, LaundryProfile], *, baudrate: int) -> Self:
        # The relay paces bytes like a line at `baudrate`, so polls take the time they take on RS-485.
        link = PtyLink(line_baudrate=baudrate)
        simulator = LaundryRoomSimulator(
            link.simulator_path, machines, baudrate=baudrate, tick_interval_s=TICK_S, seconds_per_tick=SPEEDUP
        )
        busy_room(simulator)
        try:
            await simulator.start()
        except BaseException:
            link.close()
            raise
        return cls(link, simulator)

    async def close(self) -> None:
        await self.simulator.stop()
        self.link.close()


class RoomProcess:
    """The room as a child process of the demo or a benchmark; `port` is the agent's serial port."""

    def __init__(self, machines: Mapping[int, str], *, baudrate: int = 9600, log: Path | None = None) -> None:
        arguments = [f"--machine={unit}={model}" for unit, model in sorted(machines.items())]
        with open(log or "/dev/null", "ab") as err:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "drivers.laundry.simulated_room", f"--baudrate={baudrate}", *arguments],
                stdout=subprocess.PIPE, stderr=err,
            )
        assert self.process.stdout is not None
        try:
            self.port = self._read_port(self.process.stdout)
        except BaseException:
            self.stop()
            raise

    def _read_port(self, stdout: IO[bytes]) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT_S):
                raise RuntimeError(f"the simulated laundry room printed no port in {START_TIMEOUT_S:.0f} s")
        line = stdout.readline().decode(errors="replace").strip()
        if not line.startswith("/dev/"):
            raise RuntimeError(f"the simulated laundry room did not start (exit {self.process.poll()}): {line!r}")
        return line

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_child(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


def stop_child(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout_s`: how the demo stops each of
    its children, this room among them."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _machine(text: str) -> tuple[int, str]:
    unit, _, model = text.partition("=")
    if not unit.isdigit() or not model:
        raise argparse.ArgumentTypeError(f"{text!r}: UNIT=MODEL, e.g. 1=washer-retrofit-a")
    return int(unit), model


async def _serve(machines: Mapping[int, LaundryProfile], baudrate: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    room = await SimulatedRoom.open(machines, baudrate=baudrate)
    try:
        print(room.driver_path, flush=True)  # the one line a parent reads
        await stop.wait()
    finally:
        await room.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", type=_machine, action="append", required=True,
                        help="UNIT=MODEL, a register map of firmware_configs/laundry/; repeat for each machine")
    parser.add_argument("--baudrate", type=int, default=9600)
    args = parser.parse_args(argv)
    profiles = load_laundry_profiles()
    unknown = sorted({model for _, model in args.machine} - profiles.keys())
    if unknown:
        parser.error(f"no register map {', '.join(unknown)} in firmware_configs/laundry/; known: {', '.join(sorted(profiles))}")
    asyncio.run(_serve({unit: profiles[model] for unit, model in args.machine}, args.baudrate))


if __name__ == "__main__":
    main()
