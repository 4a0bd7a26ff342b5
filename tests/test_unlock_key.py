"""This kiosk's Omron unlock key (edge_agent/unlock_key.py): made once, kept, owner-only, and a
file that lost it replaced rather than stopping the kiosk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_agent.unlock_key import kiosk_unlock_key


def test_the_key_is_made_once_kept_for_the_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "omron-unlock-key"
    key = kiosk_unlock_key(path)
    assert len(key) == 16
    assert path.stat().st_mode & 0o777 == 0o600
    assert kiosk_unlock_key(path) == key
    assert kiosk_unlock_key(tmp_path / "another-kiosk") != key  # one per kiosk, not a shared constant


@pytest.mark.parametrize("text", ["", "not hex at all", "00112233", "zz" * 16])
def test_a_file_without_a_key_is_replaced_and_said_so(tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "omron-unlock-key"
    path.write_text(text)
    with caplog.at_level(logging.ERROR):
        key = kiosk_unlock_key(path)
    assert len(key) == 16 and kiosk_unlock_key(path) == key
    assert "offered for pairing again" in caplog.text
