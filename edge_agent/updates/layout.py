"""The updates directory on the kiosk, shared with deploy/doorstep-launch (which reads `current`
and `trial` before it starts anything):

    {root}/versions/{version}/    a virtualenv per version; `.installed` in it once complete
    {root}/current -> versions/B  what the launcher starts (absent: the ./dev setup install)
    {root}/previous -> …          what a failed trial goes back to
    {root}/trial                  "{venv path} {starts}": the version on trial and how often the
                                  launcher has started it; removed when it passes its health check
    {root}/update.json            the newest update tried: its command and its state
    {root}/downloads/             bundles being downloaded (`.part`) and the wheels of one verified

Every change to `current`, `previous` and `trial` is a rename over the old one (POSIX rename(2) is
atomic): a power cut leaves the old link or the new, never none."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Written last in a version's virtualenv: a directory without it is a half install, never started.
INSTALLED_MARKER: Final = ".installed"


@dataclass(frozen=True)
class UpdateLayout:
    root: Path

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    @property
    def trial(self) -> Path:
        return self.root / "trial"

    @property
    def state(self) -> Path:
        return self.root / "update.json"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def venv(self, version: str) -> Path:
        return self.versions / version

    def installed(self, version: str) -> bool:
        return (self.venv(version) / INSTALLED_MARKER).exists()

    def running_venv(self) -> Path:
        """The virtualenv of this process: what `previous` points to when it switches away."""
        return Path(sys.prefix)

    def on_trial(self) -> bool:
        """Whether this process is the version on trial (the launcher started it under `trial`)."""
        try:
            tried = self.trial.read_text().split()[0]
        except (OSError, IndexError):
            return False
        return Path(tried).resolve() == self.running_venv().resolve()

    def point(self, link: Path, target: Path) -> None:
        """`link` -> `target`, replacing the old link in one rename."""
        fresh = link.with_name(link.name + ".new")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(target)
        os.replace(fresh, link)
        _sync_dir(link.parent)

    def write(self, path: Path, text: str) -> None:
        """`text` in `path`, durably: written beside, flushed, renamed over."""
        fresh = path.with_name(path.name + ".new")
        with fresh.open("w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(fresh, path)
        _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    # The rename itself reaches the disk only when the directory does (ext4 without
    # auto_da_alloc's help, a Pi's SD card).
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
