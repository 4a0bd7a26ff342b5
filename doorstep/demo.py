"""`doorstep demo`: a real broker, bridge and agent (simulated cuff) as separate processes, and a
simulated laundry room in its own, on a pseudo-terminal line the agent opens as a serial port."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port
from contract.sealing import encode_key, private_key_from_file, write_key_pair
from drivers.laundry.simulated_room import RoomProcess, stop_child

DEMO_SITE = "demo-site"
DEMO_KIOSK = "kiosk-1"
DEMO_DEVICES = (
    ("SIM:CU:FF:00:00:01", "simulated"),  # a blood-pressure cuff
    ("SIM:GL:UC:00:00:01", "generic-glucose-meter"),
    ("SIM:TH:ER:00:00:01", "generic-thermometer"),
)
# The laundry room of issue 4: 6 washers and 2 dryers on one RS-485 line (simulated).
DEMO_LAUNDRY_ROOM = {unit: "washer-retrofit-a" for unit in range(1, 7)} | {7: "dryer-retrofit-b", 8: "dryer-retrofit-b"}
# The simulated thermometer is used about this often; the cuff when someone presses its start
# button (Enter in the demo's terminal), as a real one is.
DEMO_MEASURE_EVERY_S = 10.0
# How often the agent looks for the cuff: soon after its button is pressed.
DEMO_CUFF_LOOK_EVERY_S = 1.0
# The kiosk screen's demo settings. The secret and the PIN are the demo's own, printed in the
# source: a real site makes its own (openssl rand -hex 32; docs/configuration.md).
DEMO_RESIDENT_SECRET = "demo-site-resident-secret-not-for-production"
DEMO_TECHNICIAN_PIN = "246810"
# Residents with volunteer-points accounts in the demo's laundry room: (card, birth year, points).
DEMO_RESIDENTS = (("310101194001011234", 1940, 0), ("310101197001011234", 1970, 30))
# The demo's people: a technician sees the fleet, the family doctor the readings.
DEMO_PASSWORD = "doorstep-demo"
DEMO_PEOPLE = (("tech", "technician", None), ("doctor", "doctor", DEMO_SITE))
# A child that ran this long before it ended is restarted at once; one that keeps ending
# sooner waits up to CHILD_RESTART_MAX_S between tries.
CHILD_STEADY_S = 10.0
CHILD_RESTART_MAX_S = 30.0


def _demo_people(database_url: str) -> dict[str, str]:
    """Add the demo's people to the bridge's database; an API token for each, by username."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from cloud_bridge.access import Role
    from cloud_bridge.accounts import User, add_user, issue_token
    from cloud_bridge.settings import DEVELOPMENT_SECRET
    from cloud_bridge.store import migrate
    from runtime.db import create_durable_engine

    engine = create_durable_engine(database_url)
    migrate(engine)
    tokens = {}
    now = datetime.now(UTC)
    with Session(engine) as session:
        for username, role, site in DEMO_PEOPLE:
            if session.get(User, username) is None:
                add_user(session, username=username, role=Role(role), site=site, password=DEMO_PASSWORD, now=now)
            tokens[username], _ = issue_token(session, DEVELOPMENT_SECRET, username=username, purpose="api", now=now,
                                              lifetime=None, label="demo")
        session.commit()
    engine.dispose()
    return tokens


def _demo_residents(screen: str, wait_s: float = 30.0) -> str:
    """Open the demo residents' points accounts through the screen's admin endpoint, as a
    technician would; a line saying which cards to try."""
    import json
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + wait_s
    for card, birth_year, points in DEMO_RESIDENTS:
        body = json.dumps({"card_number": card, "birth_year": birth_year, "balance": points}).encode()
        while True:
            try:
                # The screen takes changes only with its page token (edge_agent/screen/same_origin.py),
                # which a tool on the kiosk fetches as the page does.
                with urllib.request.urlopen(screen + "api/page-token", timeout=2) as answer:
                    token = json.load(answer)["token"]
                request = urllib.request.Request(
                    screen + "api/admin/residents", data=body, method="PUT",
                    headers={"content-type": "application/json", "x-technician-pin": DEMO_TECHNICIAN_PIN,
                             "x-page-token": token},
                )
                urllib.request.urlopen(request, timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                # The agent is still starting, or its laundry room is still opening.
                if time.monotonic() > deadline:
                    return "(the screen did not answer in time: no demo residents; see agent.log)"
                time.sleep(0.5)
    (old_card, _, _), (young_card, _, young_points) = DEMO_RESIDENTS
    return (f"demo residents' cards: {old_card} (over 80: laundry free), "
            f"{young_card} ({young_points} volunteer points)")


def _demo_device(address: str, model: str, cuff_button: Path) -> dict[str, object]:
    device: dict[str, object] = {"address": address, "model": model, "simulated": True,
                                 "reconnect_interval_s": DEMO_MEASURE_EVERY_S, "idle_timeout_s": 1.0}
    if model == "simulated":  # the cuff
        # Its session waits for the next pressure value up to idle_timeout_s (BLS 3.2 values come
        # every fraction of a second while it inflates).
        device |= {"simulated_start_button": str(cuff_button), "reconnect_interval_s": DEMO_CUFF_LOOK_EVERY_S,
                   "idle_timeout_s": 3.0}
    return device


def _press_on_enter(button: Path, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for a line on standard input, and press the cuff's start button
    for it. False once standard input is closed (the demo run without a terminal)."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if not ready:
        return True
    if not sys.stdin.readline():
        return False
    button.touch()
    print("the cuff's start button is pressed: it inflates for about 15 s, and the kiosk screen shows it",
          flush=True)
    return True


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _spawn(role: str, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "doorstep", role, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class _Child:
    """One of the demo's processes, started again when it ends by itself: a crashed agent or
    bridge is what a newcomer pokes at, and it must not take the whole demo down."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    log: Path
    process: subprocess.Popen[bytes] = field(init=False)
    started_at: float = field(init=False)
    restart_at: float | None = None
    quick_exits: int = 0

    def __post_init__(self) -> None:
        self._run()

    def _run(self) -> None:
        self.process = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None

    def look_after(self, now: float) -> None:
        if self.restart_at is not None:
            if now >= self.restart_at:
                self._run()
                print(f"the {self.name} started again (pid {self.process.pid})", file=sys.stderr, flush=True)
            return
        if self.process.poll() is None:
            return
        # One that dies at once would die again at once: wait longer each time (1, 2, 4 … 30 s).
        self.quick_exits = self.quick_exits + 1 if now - self.started_at < CHILD_STEADY_S else 0
        delay = min(CHILD_RESTART_MAX_S, 2.0 ** max(self.quick_exits - 1, 0))
        print(f"the {self.name} exited with {self.process.returncode}; restarting it in {delay:.0f} s "
              f"(its log: {self.log})", file=sys.stderr, flush=True)
        self.restart_at = now + delay

    def stop(self) -> None:
        stop_child(self.process)


def _demo_payload_key(directory: Path) -> tuple[Path, str]:
    """The demo seals readings as a real station does: the bridge holds the private key, the
    kiosk only the public one. Kept across runs of the same workdir."""
    path = directory / "payload.key"
    if path.exists():
        return path, encode_key(private_key_from_file(path).public_key)
    return write_key_pair(directory)


def run_demo(workdir: Path | None, http_port: int) -> None:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="doorstep-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if http_port == 0 or not _port_is_free(http_port):
        http_port = free_port()
    broker = MosquittoProcess.on_free_port(workdir / "broker")
    broker.start()
    broker_settings = {"host": broker.host, "port": broker.port}

    bridge_config = workdir / "bridge.yaml"
    database_url = f"sqlite:///{workdir / 'bridge.sqlite3'}"
    tokens = _demo_people(database_url)
    payload_key, payload_public_key = _demo_payload_key(workdir / "keys")
    bridge_config.write_text(
        yaml.safe_dump(
            {
                "database_url": database_url,
                "environment": "development",
                "payload_keys": [str(payload_key)],
                "broker": broker_settings,
                "http_port": http_port,
                # The doctor finds the demo's residents by card (docs/doctors.md).
                "resident_keys": {DEMO_SITE: DEMO_RESIDENT_SECRET},
            }
        )
    )
    screen_port = free_port()
    agent_config = workdir / "agent.yaml"
    cuff_button = workdir / "cuff-start-button"
    cuff_button.unlink(missing_ok=True)
    agent_settings = {
        "site": DEMO_SITE,
        "kiosk": DEMO_KIOSK,
        "outbox_path": str(workdir / "outbox.sqlite3"),
        "broker": broker_settings,
        "payload_public_key": payload_public_key,
        "devices": [_demo_device(address, model, cuff_button) for address, model in DEMO_DEVICES],
        "relay": {},
        "resident_secret": DEMO_RESIDENT_SECRET,
        "screen": {"port": screen_port, "technician_pin": DEMO_TECHNICIAN_PIN},
    }
    laundry_room: RoomProcess | None = None

    def start_laundry_room() -> subprocess.Popen[bytes]:
        """The machines, as a kiosk finds them: another party at the end of its RS-485 line. A
        new room is on a new pseudo-terminal, so the agent starts again on it."""
        nonlocal laundry_room
        if laundry_room is not None:
            laundry_room.stop()  # ended already: this closes what the demo held of it
        laundry_room = RoomProcess(DEMO_LAUNDRY_ROOM, log=workdir / "laundry-room.log")
        agent_settings["laundry"] = {"port": laundry_room.port, "machines": DEMO_LAUNDRY_ROOM}
        agent_config.write_text(yaml.safe_dump(agent_settings))
        if "agent" in children:
            children["agent"].stop()  # looked after: it starts again on the new line
        return laundry_room.process

    children: dict[str, _Child] = {}
    children["bridge"] = _Child("bridge", lambda: _spawn("bridge", bridge_config, workdir / "bridge.log"),
                                workdir / "bridge.log")
    children["laundry-room"] = _Child("laundry-room", start_laundry_room, workdir / "laundry-room.log")
    children["agent"] = _Child("agent", lambda: _spawn("agent", agent_config, workdir / "agent.log"),
                               workdir / "agent.log")
    base = f"http://127.0.0.1:{http_port}"
    screen = f"http://127.0.0.1:{screen_port}/"
    residents = _demo_residents(screen)
    print(
        f"""
Doorstep demo is running. Open:
  dashboard         {base}/dashboard/   (log in as tech or doctor, password {DEMO_PASSWORD!r})
  readings (JSON)   {base}/api/v1/readings
  laundry events    {base}/api/v1/events
  API documentation {base}/docs   (log in to the dashboard first)
The API wants a token (the demo's people log in with the password {DEMO_PASSWORD!r}):
  technician tech   curl -H 'Authorization: Bearer {tokens["tech"]}' {base}/api/v1/kiosks
  doctor doctor     curl -H 'Authorization: Bearer {tokens["doctor"]}' {base}/api/v1/readings
The kiosk screen   {screen}   (full screen on a Pi: chromium --kiosk {screen})
  {residents}
  technician PIN    {DEMO_TECHNICIAN_PIN}   (the screen's admin endpoints, X-Technician-Pin; docs/kiosk.md)
Broker: mqtt://{broker.host}:{broker.port}   watch it: mosquitto_sub -p {broker.port} -t 'doorstep/#' -v
Press Enter here to press the simulated cuff's start button, as a resident does once the screen
asks (identify first on the screen to have it saved on a record); it measures at a person's
pace. A simulated thermometer measures about every {DEMO_MEASURE_EVERY_S:.0f} s, and a simulated glucose
meter hands over its stored records once. A simulated laundry room
(6 washers, 2 dryers on a pseudo-terminal RS-485 line, clocks 30x fast) reports its machines.
Logs and data: {workdir}
Press Ctrl-C to stop.
""",
        flush=True,
    )

    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        terminal = True
        while not stopping:
            now = time.monotonic()
            for child in children.values():
                child.look_after(now)
            if terminal:
                terminal = _press_on_enter(cuff_button, 0.2)
            else:
                time.sleep(0.2)
    finally:
        # Agent first, so it says "offline" to a broker that is still there, and does not see its
        # laundry line go. (Ctrl-C in a terminal also reaches the children, which stop by
        # themselves; that is fine too.)
        for name in ("agent", "laundry-room", "bridge"):
            children[name].stop()
        if laundry_room is not None:
            laundry_room.stop()
        broker.stop()
        print("Doorstep demo stopped.", flush=True)
