"""The kiosk's local API is on a public touch screen: the admin endpoints want the technician's
PIN, and identity look-ups are rate limited so nobody at the screen can try card numbers or
phone digits one after another to learn who has an account or who is inside.

The screen listens on loopback, so every request comes from the kiosk's own browser: the
limits are per kiosk, not per client address.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

WINDOW_S = 60.0


class Refused(Exception):
    """A request the guard turns away: `status` is the HTTP status, `reason` the screen's code."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class RateLimit:
    """At most `per_minute` look-ups in any 60 seconds (a sliding window)."""

    per_minute: int
    monotonic: Callable[[], float] = time.monotonic
    _times: deque[float] = field(default_factory=deque)

    def take(self) -> None:
        """Count one look-up, or raise Refused(429) with how long to wait."""
        now = self.monotonic()
        while self._times and now - self._times[0] >= WINDOW_S:
            self._times.popleft()
        if len(self._times) >= self.per_minute:
            raise Refused(429, "too_many_tries", retry_after_s=math.ceil(WINDOW_S - (now - self._times[0])))
        self._times.append(now)


@dataclass
class PinGuard:
    """The technician's PIN: compared in constant time; `attempts` wrong ones in a row lock the
    admin endpoints for `lockout_s` (a 6-digit PIN is then not guessable at a kiosk)."""

    pin: SecretStr | None
    attempts: int
    lockout_s: float
    monotonic: Callable[[], float] = time.monotonic
    _wrong: int = 0
    _locked_until: float = 0.0

    def check(self, offered: str | None) -> None:
        if self.pin is None:
            raise Refused(403, "admin_disabled")
        now = self.monotonic()
        if now < self._locked_until:
            raise Refused(429, "pin_locked", retry_after_s=math.ceil(self._locked_until - now))
        if offered is None or not hmac.compare_digest(offered.encode(), self.pin.get_secret_value().encode()):
            self._wrong += 1
            if self._wrong >= self.attempts:
                self._wrong, self._locked_until = 0, now + self.lockout_s
                raise Refused(429, "pin_locked", retry_after_s=math.ceil(self.lockout_s))
            raise Refused(401, "wrong_pin")
        self._wrong = 0
