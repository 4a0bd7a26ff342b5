"""Why a bundle is refused: one error class with a reason code the kiosk reports and a
technician can act on."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    BAD_SIGNATURE = "bad_signature"  # signed by a trusted key, but these bytes are not what it signed
    UNKNOWN_KEY = "unknown_key"  # signed by a key this kiosk does not trust
    HASH_MISMATCH = "hash_mismatch"  # a wheel's bytes or size differ from the manifest's
    MISSING_FILE = "missing_file"  # the manifest names a file the bundle lacks
    EXTRA_FILE = "extra_file"  # the bundle holds a file the manifest does not name
    NOT_A_BUNDLE = "not_a_bundle"  # not a tar, or no readable manifest
    TOO_OLD_TO_UPDATE_FROM = "too_old_to_update_from"  # the running version is below the release's minimum


class ReleaseError(Exception):
    """A bundle refused, or a release that cannot be built or signed; `reason` says which."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
