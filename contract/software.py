"""Software updates on the wire (issue 20): the command that asks a kiosk to install a release,
and the kiosk's word on the software it runs and on the newest update it tried, in its telemetry.

The bundle itself (manifest, signature, wheels) is `releases/`'s business; what crosses MQTT is
only where to fetch it and what its bytes must hash to, so that a kiosk refuses a swapped file
before it opens it."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import Field

from contract.storable import INT64_MAX, StorableTime, StrictModel

# PEP 440 versions as releases are cut ("0.2.0", "0.2.0rc1", "0.2.0+pi"): bounded, no spaces or
# path separators, since a version names a directory on the kiosk and a URL on the bridge.
VERSION_PATTERN: Final = r"^[0-9][0-9A-Za-z.+!_-]{0,47}$"


class UpdateSoftwareArgs(StrictModel):
    """Arguments of the `update_software` command."""

    version: str = Field(pattern=VERSION_PATTERN, description="the release to install")
    url: str = Field(min_length=1, max_length=500, description="where the kiosk downloads the bundle (HTTPS in production)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the whole bundle file, as the bridge stored it")
    size: int = Field(ge=1, le=INT64_MAX, description="the bundle's bytes: a download resumes until it has them all")
    rollout_id: int | None = Field(default=None, ge=1, le=INT64_MAX, description="the rollout that asked, if any")


class UpdateState(StrEnum):
    """Where the newest update a kiosk tried stands. The first seven are steps under way; the
    last four are how it ended."""

    QUEUED = "queued"  # accepted, not started
    DEFERRED = "deferred"  # waiting: a resident is measuring or a washer start is in doubt
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"  # signature and every file's hash, before anything is installed
    INSTALLING = "installing"  # a virtualenv of its own, offline, from the bundle alone
    SWITCHING = "switching"  # the new version is made current and the agent restarts
    CHECKING = "checking"  # the new version runs; its health check has not passed yet
    HEALTHY = "healthy"  # the new version passed its health check and is kept
    ROLLED_BACK = "rolled_back"  # the new version crashed or failed its check: the previous runs again
    REFUSED = "refused"  # not installed: bad signature or hash, too old a version to update from, ...
    FAILED = "failed"  # the download or the install failed; the running version is untouched

    @property
    def finished(self) -> bool:
        return self in {UpdateState.HEALTHY, UpdateState.ROLLED_BACK, UpdateState.REFUSED, UpdateState.FAILED}


class UpdateReport(StrictModel):
    """The newest update the kiosk tried."""

    version: str = Field(pattern=VERSION_PATTERN)
    state: UpdateState
    reason: str | None = Field(default=None, max_length=2000, description="why it was refused, failed or rolled back, or why deferred")
    rollout_id: int | None = Field(default=None, ge=1, le=INT64_MAX)
    at: StorableTime = Field(description="the kiosk's time of this state")


class SoftwareReport(StrictModel):
    """The kiosk's word on its software, in its telemetry."""

    version: str = Field(pattern=VERSION_PATTERN, description="the Doorstep version running now")
    previous_version: str | None = Field(default=None, pattern=VERSION_PATTERN, description="the one it would roll back to")
    update: UpdateReport | None = Field(default=None, description="the newest update tried; null if none")
