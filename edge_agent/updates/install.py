"""Installing a verified release side by side: a virtualenv of its own, from the bundle's wheels
alone (pip with no index: a kiosk installs nothing the release key did not sign)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from edge_agent.updates.layout import INSTALLED_MARKER

# pip on a Pi 4 installs Doorstep's ~50 wheels in about a minute; an install past this is stuck.
INSTALL_TIMEOUT_S: Final = 900.0


class InstallError(Exception):
    """The virtualenv or pip failed; the running version is untouched."""


def install(wheels: Path, venv: Path, version: str) -> None:
    """Doorstep `version` and its dependencies from `wheels` into a new virtualenv at `venv`.
    A directory left there by an interrupted install is removed first; the marker is written
    last, so that only a complete install is ever switched to."""
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # From the interpreter the running version's virtualenv was made from (the system's Python
    # 3.11 on a Pi). Without ensurepip's pip (slow to install), installed by the running
    # version's pip instead: the bundle's pip wheel goes in with the rest, for the next update.
    # Byte code is compiled as modules are first imported, not all ahead: pip's compiling was
    # most of an install's time (figures: the commit that made it so).
    _run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], "creating the virtualenv")  # type: ignore[attr-defined]
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-index",
          "--no-cache-dir", "--no-compile", "--disable-pip-version-check", "--find-links", str(wheels),
          f"doorstep=={version}", "pip"], "pip install")
    # pip does not fsync what it writes: a power cut after the marker could leave a truncated
    # module under it. Everything reaches the disk first, then the marker.
    os.sync()
    (venv / INSTALLED_MARKER).write_text(version + "\n")
    os.sync()


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: not done in {INSTALL_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        raise InstallError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-1500:]}")
