"""Run a real Mosquitto 2 broker with a generated configuration (demo and tests).

On a kiosk or a server Mosquitto runs as a system service with its own configuration (see
docs/deployment notes in the README); this module exists so the demo and the test suite start
exactly the same broker binary on a loopback port they own.
"""

from __future__ import annotations

import getpass
import itertools
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Mosquitto's default of 1000 queued messages per offline client silently drops the rest
# (measured here); the bridge's session must hold a day-long outage of the bridge.
DEFAULT_MAX_QUEUED_MESSAGES: Final = 1_000_000
# Mosquitto persists by snapshot, every 1800 s by default: a kill loses everything since.
# A short interval narrows that window; nothing relies on it (kiosks re-send until acked).
DEFAULT_AUTOSAVE_INTERVAL_S: Final = 5
MOSQUITTO_DEFAULT_AUTOSAVE_INTERVAL_S: Final = 1800


class MosquittoNotInstalled(RuntimeError):
    pass


# Ports for the servers the demo and the tests start are taken below the kernel's ephemeral
# range (net.ipv4.ip_local_port_range, 32768-60999 on Linux). A port the kernel picks for
# bind(0) comes from that range, which is also where every outgoing connection takes its own
# port: between our check and the server's bind, a client's connection could take it (CI: a
# bridge worker's API failed to bind, EADDRINUSE, its port in use by a connection).
LOWEST_SERVER_PORT: Final = 10_000
EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Handed out in turn from a random start, so two calls in one process never give the same port
# before the whole range has gone round, and two processes seldom start on the same one.
_port_turns = itertools.count(random.randrange(1 << 20))


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port no server holds now, and that no outgoing connection will take meanwhile."""
    span = _ephemeral_low() - LOWEST_SERVER_PORT
    for _ in range(max(span, 0)):
        port = LOWEST_SERVER_PORT + next(_port_turns) % span
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # a server of someone else's
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # an unusual port range
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class BrokerTlsFiles:
    ca_file: Path  # the CA clients' certificates must chain to, when required
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


@dataclass(frozen=True, slots=True)
class MosquittoConfig:
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    autosave_interval_s: int = DEFAULT_AUTOSAVE_INTERVAL_S
    # With TLS the one listener speaks only TLS: plaintext is refused at the handshake.
    tls: BrokerTlsFiles | None = None
    # With a password file (mosquitto_passwd format) anonymous clients are refused.
    password_file: Path | None = None
    # Who may publish and subscribe to what (Mosquitto's acl_file format).
    acl_file: Path | None = None

    def render(self) -> str:
        lines = [f"listener {self.port} {self.host}"]
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}"]
            if self.tls.require_certificate:
                lines.append("require_certificate true")
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += [
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"autosave_interval {self.autosave_interval_s}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 0",
            # Small packets go at once: see deploy/mosquitto/doorstep.conf.
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if getpass.getuser() == "root":
            # Started as root, Mosquitto drops to the 'mosquitto' user, which cannot write
            # to a data directory that root created.
            lines.append("user root")
        return "\n".join(lines) + "\n"


@dataclass
class MosquittoProcess:
    """One broker process; start() after kill() brings it back on the same port and data."""

    config: MosquittoConfig
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @classmethod
    def on_free_port(
        cls,
        data_dir: Path,
        *,
        autosave_interval_s: int = DEFAULT_AUTOSAVE_INTERVAL_S,
        tls: BrokerTlsFiles | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
    ) -> MosquittoProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        config = MosquittoConfig(
            port=free_port(),
            data_dir=data_dir,
            autosave_interval_s=autosave_interval_s,
            tls=tls,
            password_file=password_file,
            acl_file=acl_file,
        )
        return cls(config, log_path=data_dir / "mosquitto.log")

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
        )
        if binary is None:
            raise MosquittoNotInstalled("mosquitto is not installed: run 'sudo apt-get install mosquitto'")
        config_path = self.config.data_dir / "mosquitto.conf"
        config_path.write_text(self.config.render())
        if self.log_path is None:
            self._process = subprocess.Popen([binary, "-c", str(config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
                self._process = subprocess.Popen([binary, "-c", str(config_path)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: what a power cut or the OOM killer does; nothing is saved since the last snapshot."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        self._signal_and_wait(signal.SIGTERM)

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password file and ACL again (mosquitto(8), SIGNALS) and
        disconnects clients whose password is no longer valid; what `systemctl reload` does."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        self._process.send_signal(signal.SIGHUP)

    def _signal_and_wait(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(sig)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
