"""The manifest: what a release is and every file it holds, by SHA-256 and size."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, StringConstraints

from contract.software import VERSION_PATTERN
from contract.storable import INT64_MAX, StorableTime, StrictModel

MANIFEST_NAME: Final = "manifest.json"
SIGNATURE_NAME: Final = "manifest.sig"
WHEELS_DIR: Final = "wheels"
# A wheel's file name (PEP 427): no path separators, so that a name cannot point outside wheels/.
WheelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.whl$")]


class FileEntry(StrictModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=INT64_MAX)


class Manifest(StrictModel):
    version: str = Field(pattern=VERSION_PATTERN)
    min_previous_version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="a kiosk running an older version refuses this release"
    )
    notes: str = Field(default="", max_length=20_000)
    created_at: StorableTime
    platforms: list[str] = Field(min_length=1, description="'host' (the machine that built it), 'aarch64' (a Pi)")
    files: dict[WheelName, FileEntry] = Field(min_length=1, description="each wheel under wheels/")

    def to_bytes(self) -> bytes:
        """The exact bytes that are signed and stored."""
        return self.model_dump_json(indent=2).encode()


def member_name(wheel: str) -> str:
    return f"{WHEELS_DIR}/{wheel}"

