"""How long the outbox's disk budget lasts at the rate its undelivered records grow (issue 19).

The kiosk samples the bytes of its undelivered records (every record not yet confirmed by the
bridge: those are what the budget cannot free by deleting delivered ones) each time it reports
telemetry. The growth is measured over the last `window_s` of samples, from the oldest sample
in the window to the newest; the runway is the budget left (budget minus undelivered bytes)
divided by that growth. When they are not growing (drained, or delivered as fast as saved) the
runway is unbounded: None on the wire (docs/protocol.md, "Telemetry").

Samples are taken against a monotonic clock the caller passes: a Pi has no real-time clock,
and its wall clock steps when NTP first answers, which would make a rate out of nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

SECONDS_PER_HOUR: Final = 3600.0
# A growth is reported once the samples span this share of the window: a rate over the first
# few telemetry periods after a start would swing with each save.
MIN_SPAN_SHARE: Final = 0.1


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float  # the monotonic clock's reading
    undelivered_bytes: int


@dataclass(frozen=True, slots=True)
class Runway:
    growth_bytes_per_h: float | None  # None: not measured yet (the samples span too little)
    hours: float | None  # None: unbounded (not growing), or not measured yet


def runway(samples: Sequence[Sample], *, budget_bytes: int, now_s: float, window_s: float) -> Runway:
    """The runway from `samples` (in the order taken) within `window_s` before `now_s`."""
    recent = [sample for sample in samples if now_s - sample.at_s <= window_s]
    if len(recent) < 2:
        return Runway(None, None)
    first, last = recent[0], recent[-1]
    span_s = last.at_s - first.at_s
    if span_s < MIN_SPAN_SHARE * window_s:
        return Runway(None, None)
    growth = (last.undelivered_bytes - first.undelivered_bytes) / span_s * SECONDS_PER_HOUR
    if growth <= 0:
        return Runway(growth, None)
    # Health readings over the budget are kept (docs/outbox.md): none left, not a negative.
    left = max(0, budget_bytes - last.undelivered_bytes)
    return Runway(growth, left / growth)


class RunwayWatch:
    """The samples of one outbox, kept for one window. Telemetry and a remote `status` command
    sample from their own threads: a lock keeps the window whole while it is read."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()
        self.latest = Runway(None, None)  # for the status file doctor reads

    def sample(self, now_s: float, undelivered_bytes: int, *, budget_bytes: int) -> Runway:
        """Record a sample taken at `now_s` and return the runway it gives."""
        with self._lock:
            self._samples.append(Sample(now_s, undelivered_bytes))
            while now_s - self._samples[0].at_s > self.window_s:
                self._samples.popleft()
            self.latest = runway(self._samples, budget_bytes=budget_bytes, now_s=now_s, window_s=self.window_s)
            return self.latest
