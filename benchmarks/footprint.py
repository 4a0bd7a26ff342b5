"""Benchmark 3, footprint: the real agent process idle with a simulated cuff and the simulated
laundry room (6 washers, 2 dryers polled on a pseudo-terminal RS-485 line), connected to a real
broker and bridge: its resident memory and CPU over a minute. Against the floors of the raw
stack: a Python process with paho-mqtt connected and idle, and one that imports the agent's
libraries and runs nothing (benchmarks/raw_imports.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from tqdm import tqdm

from broker_admin.mosquitto import free_port
from doorstep.demo import DEMO_LAUNDRY_ROOM
from drivers.laundry.simulated_room import RoomProcess

from benchmarks import agents, plots, stack
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.procstat import Sampler
from benchmarks.report import Figure, common_arguments, publish

MB = 1024 * 1024
WARM_UP_S = 15.0  # start-up, the cuff's one session, the first laundry polls and telemetry


def _watch(pid: int, seconds: float, progress: bool, label: str) -> Sampler:
    sampler = Sampler(pid, every_s=1.0).start()
    for _ in tqdm(range(int(seconds)), desc=label, unit="s", disable=not progress, leave=False):
        time.sleep(1)
    return sampler.stop()


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the idle agent is watched")
    parser.add_argument("--warm-up", type=float, default=WARM_UP_S)
    common_arguments(parser)
    args = parser.parse_args(argv)
    rss = Figure("resident memory, peak", "MB", goal="< 80 MB", judge=lambda v, _r: v < 80, higher_is_better=False)
    # The same peak against the libraries the agent runs on, imported and nothing else: what of
    # the goal is left for Doorstep's own code and data.
    libraries = Figure("resident memory, peak, against its libraries alone (imported, nothing run)", "MB",
                       higher_is_better=False)
    cpu = Figure("CPU", "% of a core", goal="< 1%", judge=lambda v, _r: v < 1.0, higher_is_better=False)
    # Not the kiosk's: the machines' side of the line. Shown so that nothing moved out of the
    # agent's process goes unseen.
    room_rss = Figure("simulated laundry room's own process, resident memory, peak", "MB", higher_is_better=False)
    room_cpu = Figure("simulated laundry room's own process, CPU", "% of a core", higher_is_better=False)
    traces = []
    with stack.workdir("footprint") as directory, stack.broker(directory) as mqtt, stack.databases(directory) as dbs:
        key, public = stack.payload_keys()
        with stack.bridge_workers(directory / "bridge", mqtt, dbs.new("sqlite"), key=key):
            for run in range(args.repeat):
                room = RoomProcess(DEMO_LAUNDRY_ROOM, log=directory / f"laundry-room-{run}.log")
                config = agents.write_config(
                    directory / f"agent-{run}.yaml", f"kiosk-idle-{run}", directory / f"outbox-{run}.sqlite3", mqtt,
                    payload_public_key=public,
                    # A cuff present but nobody measuring: one session at start, then none
                    # (a simulated cuff measures on every connection).
                    devices=[{"address": "SIM:CU:FF:00:00:01", "model": "simulated", "simulated": True,
                              "reconnect_interval_s": 3600, "idle_timeout_s": 1.0}],
                    laundry={"port": room.port, "machines": DEMO_LAUNDRY_ROOM},
                    # Serving the kiosk screen, as a kiosk does, on a port no other program holds
                    # (one that cannot listen goes on without its screen, and would weigh less).
                    screen={"port": free_port()},
                )
                agent = agents.start(config, directory / f"agent-{run}.log")
                raw = subprocess.Popen([sys.executable, "-m", "benchmarks.raw_mqtt", "idle", "--port", str(mqtt.port)])
                imports_only = subprocess.Popen([sys.executable, "-m", "benchmarks.raw_imports"])
                try:
                    time.sleep(args.warm_up)
                    raw_sampler = Sampler(raw.pid, every_s=1.0).start()
                    imports_sampler = Sampler(imports_only.pid, every_s=1.0).start()
                    room_sampler = Sampler(room.pid, every_s=1.0).start()
                    ours = _watch(agent.pid, args.seconds, not args.no_progress, f"idle agent, run {run + 1}")
                    raw_sampler.stop()
                    imports_sampler.stop()
                    room_sampler.stop()
                    if agent.poll() is not None:
                        raise RuntimeError(f"the agent exited; see {directory / f'agent-{run}.log'}")
                finally:
                    agents.stop(agent)
                    room.stop()
                    for process in (raw, imports_only):
                        process.terminate()
                        process.wait()
                rss.doorstep.append(ours.peak_rss / MB)
                rss.raw.append(raw_sampler.peak_rss / MB)
                libraries.doorstep.append(ours.peak_rss / MB)
                libraries.raw.append(imports_sampler.peak_rss / MB)
                cpu.doorstep.append(ours.cpu_share * 100)
                cpu.raw.append(raw_sampler.cpu_share * 100)
                room_rss.doorstep.append(room_sampler.peak_rss / MB)
                room_cpu.doorstep.append(room_sampler.cpu_share * 100)
                traces.append(ours.samples)
                print(f"run {run + 1}: agent {rss.doorstep[-1]:.1f} MB, {cpu.doorstep[-1]:.2f}% of a core; "
                      f"idle paho {rss.raw[-1]:.1f} MB, {cpu.raw[-1]:.2f}%; "
                      f"simulated laundry room {room_rss.doorstep[-1]:.1f} MB, {room_cpu.doorstep[-1]:.2f}%")
    plot = plots.lines(args.plots / "footprint.png", "The idle agent's resident memory (cuff and laundry room simulated)",
                       "seconds after warm-up", "MB", [(f"run {i + 1}", [t for t, _, _ in s], [r / MB for _, _, r in s])
                                                       for i, s in enumerate(traces)])
    notes = f"""
A real `doorstep agent` process with one simulated cuff (`simulated: true`, one session at start, none
after: nobody measuring), serving its kiosk screen, and the simulated laundry room of the demo (8
machines on a pseudo-terminal RS-485 line, polled every 10 s when idle), connected to Mosquitto and a
bridge, readings sealed. The room (the pymodbus simulator and the pty relay,
`drivers/laundry/simulated_room.py`) runs in **its own process**, as the demo runs it: it stands for
the washing machines, which are not the kiosk, and the agent opens its end of the line through
pyserial as it opens /dev/ttyUSB0 on a kiosk. The room's process is measured too, in the rows marked
so. Watched for {args.seconds:.0f} s after {args.warm_up:.0f} s of warm-up; memory is the peak VmRSS
of the process, CPU its user+system time over the wall time. Raw: a Python process with paho-mqtt
connected and idle (the floor under any MQTT client in Python); and, in the row that says so, a Python
process that imports the third-party libraries the agent runs on and nothing of Doorstep
(`benchmarks/raw_imports.py`: SQLModel and SQLAlchemy, FastAPI and uvicorn, bleak, paho-mqtt, APScheduler,
pymodbus' client, pyserial, PyNaCl, pydantic-settings, typer, PyYAML). Not measured on a Raspberry Pi: its
cores are slower than this machine's, so read the CPU share as a lower bound there.
"""
    publish("footprint", "3. Footprint: the idle agent", "python -m benchmarks.footprint",
            [rss, libraries, cpu, room_rss, room_cpu], notes, [plot], args.docs)
    return [rss, libraries, cpu, room_rss, room_cpu]


if __name__ == "__main__":
    main()
