"""Building a release's wheels: Doorstep's own, from a source tree at a chosen version, and its
dependencies' for each platform a kiosk runs on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final


# The kiosk's platforms. 'host': the machine that builds (tests, a PC kiosk). 'aarch64': Raspberry
# Pi OS bookworm, 64-bit, Python 3.11 (its system Python); manylinux2014 is the newest tag every
# binary dependency publishes for aarch64, and bookworm's glibc 2.36 runs it.
PLATFORMS: Final = ("host", "aarch64")
_AARCH64_PIP: Final = ("--only-binary=:all:", "--platform", "manylinux2014_aarch64", "--platform", "linux_aarch64",
                       "--python-version", "3.11", "--implementation", "cp")
# What of a source tree a wheel is not built from: caches, virtualenvs, earlier builds, git.
_NOT_SOURCE: Final = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                            ".mypy_cache", "tests", "benchmarks", "docs")


class BuildError(Exception):
    """A release that could not be built: pip's own words, or a source tree without a version."""


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"pip {' '.join(args[:2])} failed:\n{result.stderr[-4000:]}")


def doorstep_wheel(source: Path, dest: Path, version: str | None = None) -> Path:
    """Doorstep's wheel built from `source` (a checkout), at `version` if given (the project's
    otherwise): built from a copy, so the checkout is left as it was."""
    with tempfile.TemporaryDirectory(prefix="doorstep-release-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=_NOT_SOURCE, symlinks=True)
        if version is not None:
            pyproject = copy / "pyproject.toml"
            text, count = re.subn(r'(?m)^version = "[^"]*"$', f'version = "{version}"', pyproject.read_text(), count=1)
            if count != 1:
                raise BuildError(f"{source}/pyproject.toml has no version line to set")
            pyproject.write_text(text)
        built = Path(tmp) / "wheel"
        _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(built), str(copy))
        (wheel,) = built.glob("doorstep-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, dest / wheel.name))


def dependency_wheels(doorstep: Path, dest: Path, platforms: Sequence[str]) -> list[Path]:
    """The wheels of `doorstep`'s dependencies for each platform, in `dest`: built or taken from
    pip's cache for the host, downloaded as binaries for a Pi. And pip's own: each version's
    virtualenv carries the pip that installs the next one (edge_agent/updates/install.py)."""
    dest.mkdir(parents=True, exist_ok=True)
    for platform in platforms:
        if platform == "host":
            _pip("wheel", "--quiet", "--wheel-dir", str(dest), str(doorstep), "pip")
        elif platform == "aarch64":
            _pip("download", "--quiet", *_AARCH64_PIP, "--dest", str(dest), str(doorstep), "pip")
        else:
            raise BuildError(f"platform {platform!r}: one of {', '.join(PLATFORMS)}")
    return sorted(dest.glob("*.whl"))
