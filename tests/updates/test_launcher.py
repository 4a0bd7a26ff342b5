"""deploy/doorstep-launch on each state a power cut can leave the updates directory in. The
versions it starts here are stand-in virtualenvs whose bin/doorstep says which it is: the
launcher is what is tested, and it needs nothing of what it starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.updates.supervised import LAUNCHER


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("fallback", "updates/versions/0.1.5", "updates/versions/0.2.0"):
        bin_dir = tmp_path / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "doorstep").write_text(f'#!/bin/sh\necho "{name.split("/")[-1]} $*"\n')
        (bin_dir / "doorstep").chmod(0o755)
    return tmp_path / "updates"


def launch(root: Path) -> str:
    env = {**os.environ, "DOORSTEP_UPDATES_ROOT": str(root), "DOORSTEP_FALLBACK_VENV": str(root.parent / "fallback")}
    return subprocess.run([str(LAUNCHER), "agent", "--config", "x.yaml"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def switched(root: Path, starts: str) -> None:
    """As an update leaves it after the switch: 0.1.5 previous, 0.2.0 current and on trial."""
    (root / "previous").symlink_to(root / "versions" / "0.1.5")
    (root / "current").symlink_to(root / "versions" / "0.2.0")
    (root / "trial").write_text(f"{root / 'versions' / '0.2.0'} {starts}\n")


def test_no_update_ever_installed_starts_the_install_of_dev_setup(root: Path) -> None:
    assert launch(root) == "fallback agent --config x.yaml"


def test_a_version_on_trial_is_started_and_its_starts_counted_up_to_three_then_the_previous(root: Path) -> None:
    switched(root, "0")
    assert [launch(root) for _ in range(3)] == ["0.2.0 agent --config x.yaml"] * 3
    assert (root / "trial").read_text().split()[1] == "3"
    assert launch(root) == "0.1.5 agent --config x.yaml"  # the fourth start: it never confirmed
    assert not (root / "trial").exists()
    assert os.readlink(root / "current") == str(root / "versions" / "0.1.5")
    assert "0.2.0 was started 3 times and never confirmed its health" in (root / "rolled_back").read_text()
    assert launch(root) == "0.1.5 agent --config x.yaml"  # and stays there


def test_a_trial_marker_torn_by_a_power_cut_goes_back_to_the_previous(root: Path) -> None:
    switched(root, "")
    (root / "trial").write_text(f"{root / 'versions' / '0.2.0'} 1x")  # a half-written count
    assert launch(root) == "0.1.5 agent --config x.yaml"


def test_a_trial_written_before_the_power_went_and_current_moved_is_stale(root: Path) -> None:
    (root / "current").symlink_to(root / "versions" / "0.1.5")
    (root / "trial").write_text(f"{root / 'versions' / '0.2.0'} 0\n")  # the switch never got to `current`
    assert launch(root) == "0.1.5 agent --config x.yaml"
    assert not (root / "trial").exists() and not (root / "rolled_back").exists()


def test_a_rollback_cut_after_current_moved_back_is_finished(root: Path) -> None:
    switched(root, "3")
    (root / "rolled_back").write_text("an earlier reason\n")
    (root / "current").unlink()
    (root / "current").symlink_to(root / "versions" / "0.1.5")  # moved back, trial not yet removed
    assert launch(root) == "0.1.5 agent --config x.yaml"
    assert not (root / "trial").exists()
