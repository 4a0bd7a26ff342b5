"""CPU time and resident memory of a process, from /proc (Linux), sampled while it runs."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system time so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces: fields are counted after its closing parenthesis.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def write_bytes(pid: int | str = "self") -> int:
    """Bytes this process caused to be sent to the storage layer (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


@dataclass
class Sampler:
    """Samples a process every `every_s` in a thread: (elapsed s, CPU s, RSS bytes)."""

    pid: int
    every_s: float = 1.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sample-{self.pid}")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> None:
        try:
            self.samples.append((time.monotonic() - self._started, cpu_seconds(self.pid), rss_bytes(self.pid)))
        except (OSError, IndexError):
            pass  # it exited

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self

    @property
    def cpu_share(self) -> float:
        """CPU time over wall time between the first and last sample (1.0 = one core)."""
        if len(self.samples) < 2:
            return 0.0
        (t0, c0, _), (t1, c1, _) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def peak_rss(self) -> int:
        return max((rss for _, _, rss in self.samples), default=0)
