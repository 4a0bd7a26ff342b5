"""A small real filesystem for tests at the disk's limits: a tmpfs mounted for the test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(where: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `where`, unmounted afterwards. Skips the test when it
    cannot be mounted (not root, or no mount namespace allowing it)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def free_bytes(where: Path) -> int:
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize


def fill(where: Path) -> Path:
    """Fill the filesystem at `where` to its last byte with one file; returns it."""
    filler = where / "filler"
    with filler.open("wb", buffering=0) as file:
        for chunk in (1024 * 1024, 4096, 1):
            try:
                while True:
                    file.write(b"\0" * chunk)
            except OSError:
                pass
    return filler
