"""Small things every benchmark needs."""

from __future__ import annotations

import signal
import statistics
from collections.abc import Sequence


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM (a timeout, a CI stop) unwinds like Ctrl-C: every broker, bridge and agent a
    benchmark started is stopped by its context manager instead of being left behind."""

    def _raise(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), by the inclusive method: no interpolation past the data."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(p) - 1))] if p < 100 else max(values)
