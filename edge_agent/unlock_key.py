"""This kiosk's unlock key for Omron cuffs that unlock with a key (profiles with
``omron_memory.unlock: key``, e.g. hem-7361t): programmed into a cuff when it is paired at the
kiosk (edge_agent/pairing.py), and used to unlock it at every reading (edge_agent/devices.py).

One key per kiosk, made at random the first time it is needed and kept in the kiosk's state
directory beside the outbox, readable by the agent only. It is never sent anywhere: not in
telemetry, the fleet configuration or a support bundle. Why not one fixed key for every kiosk:
omblepy's public default key (omblepy.py examplePairingKey) would let anybody in radio range who
bonds with the cuff in pairing mode read its residents' readings with a known key, and a fixed
key of ours would be public the day it is published. A per-kiosk key costs nothing more: a
cuff moved to another kiosk has to be paired there anyway, since the BLE bond is per adapter.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

from drivers.ble.omron.frames import KEY_SIZE

log = logging.getLogger(__name__)

FILE_NAME: Final = "omron-unlock-key"


def unlock_key_path(outbox_path: Path) -> Path:
    return outbox_path.with_name(FILE_NAME)


def kiosk_unlock_key(path: Path) -> bytes:
    """The key kept at ``path`` (hex, one line), made and saved first if there is none. A file
    that does not hold a key is replaced with a new one, logged: the cuffs paired with the lost
    key then refuse it and the technician screen offers to pair them again, whereas refusing to
    start would leave the kiosk's screen dark."""
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return _new_key(path)
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != KEY_SIZE:
        log.error("%s does not hold a %d-byte unlock key: a new one replaces it; cuffs paired with the old one "
                  "will be offered for pairing again", path, KEY_SIZE)
        return _new_key(path)
    return key


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    # Owner-only from its creation, then renamed over: a crash never leaves half a key.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key.hex() + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return key
