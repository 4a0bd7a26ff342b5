"""Which bridge workers are online, and whether every one of them opens a session box.

Each worker says so on its retained status (contract/sealing.py, OPENS_PROPERTY): a kiosk seals
a reading in a session box only while every worker online names SESSION_BOX, so that a worker
of before, still running during a rolling upgrade, is never handed a box it would refuse. With
no worker heard yet (a kiosk offline since it started), it seals sealed boxes, which every
bridge opens.
"""

from __future__ import annotations

import threading

from contract.sealing import SESSION_BOX


class BridgeWorkers:
    """Updated from the uplink's network thread, read by whatever thread saves a reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opens_session_boxes: dict[str, bool] = {}  # the workers online

    def online(self, worker: str, opens: frozenset[str]) -> None:
        with self._lock:
            self._opens_session_boxes[worker] = SESSION_BOX in opens

    def offline(self, worker: str) -> None:
        with self._lock:
            self._opens_session_boxes.pop(worker, None)

    def online_now(self) -> dict[str, bool]:
        """The workers online, each with whether it opens session boxes."""
        with self._lock:
            return dict(self._opens_session_boxes)

    def all_open_session_boxes(self) -> bool:
        with self._lock:
            return bool(self._opens_session_boxes) and all(self._opens_session_boxes.values())
