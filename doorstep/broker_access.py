"""Who may connect to the broker and what each may do: Mosquitto's password file and ACL file.

Every kiosk has its own identity, `{site}.{kiosk}` (the '.' is not in the slug alphabet, so
no two kiosks can share one): its username with a password, or the Common Name of its client
certificate (doorstep/pki.py). Each bridge worker has its own name too (one per client id).

The ACL (Mosquitto's `acl_file`, mosquitto.conf(5)) names each account's topics explicitly.
It does not use `pattern` lines with `%u`, for three reasons found on the way:
- one pattern level holds one topic level (mosquitto.conf(5): "the substitution pattern must be
  the only text for that level of hierarchy"), and a kiosk's root is two levels, site and kiosk.
  Mosquitto 2.0 (2.0.11 here, measured) happens to substitute a username `site/kiosk` across
  two levels, and 2.1 denies it (eclipse-mosquitto/mosquitto#3520): a broker upgrade would lock
  every kiosk out;
- patterns apply to every account, the bridge's too: measured on 2.0.11, `pattern write
  doorstep/v1/%u/readings/+` let a user `bridge` publish `doorstep/v1/bridge/readings/status`,
  a valid kiosk topic (site "bridge", kiosk "readings");
- a kiosk taken out of service is one block removed, whether it logs in with a password or a
  certificate (a certificate has no other revocation here: no CRL is kept).
A district of 2,000 kiosks makes a file of about 20,000 lines, which Mosquitto reads in
milliseconds, and a lookup per message stays within one account's nine lines.

Mosquitto 2.0 does not check SUBSCRIBE against the ACL file at all (src/security_default.c:
"FIXME - implement ACL subscription strings"): a kiosk may subscribe to `#` and is granted it,
but each message is checked against the reader's `read` rules before it is delivered, so it
receives only its own commands and acks (tests/test_broker_acl.py). PUBLISH is checked, and an
MQTT 5 client is told: PUBACK reason code 0x87 Not authorized (MQTT 5.0, 3.4.2.1).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from doorstep.wire import BRIDGE_STATUS_FILTER, TOPIC_ROOT, Channel, ContractError, KioskTopics

# A bridge worker's name: a slug, with no '.', so it can never read as a kiosk's `site.kiosk`.
BRIDGE_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,63}$"
_BRIDGE_NAME: Final = re.compile(BRIDGE_NAME_PATTERN)

# Mosquitto 2.0's password hash, "$7$": PBKDF2-SHA512 (mosquitto_passwd's default), with the
# salt length and iterations mosquitto_passwd uses (src/password_mosq.h: SALT_LEN 12,
# PW_DEFAULT_ITERATIONS 101). Iterations only slow the guessing of a weak password; ours are 32
# random bytes, beyond guessing at any cost.
# How long the certificates of doorstep/pki.py are valid. Here, not in pki.py, so that the CLI
# can show them as its defaults without importing cryptography (~17 MB resident, measured):
# every `doorstep agent` process loads the CLI, and a kiosk never issues a certificate.
CA_DAYS: Final = 3650  # the CA outlives the kiosks it signs; replacing it means visiting every kiosk
BROKER_DAYS: Final = 825  # the broker's certificate is replaced on the server alone, so more often
KIOSK_DAYS: Final = 1825  # a kiosk's card is rewritten by a visit: about the life of the hardware
HASH_ID: Final = 7
SALT_BYTES: Final = 12
ITERATIONS: Final = 101
PASSWORD_BYTES: Final = 32

ACL_HEADER: Final = """\
# Doorstep's broker ACL, written by `doorstep broker add-kiosk` / `add-bridge` / `remove`
# (doorstep/broker_access.py), which rewrite every account's rules: edits by hand are lost.
# Mosquitto reads it at start and on SIGHUP (systemctl reload mosquitto). Each kiosk publishes
# only its own upstream topics and reads only its own commands and acks; each bridge worker
# reads every kiosk and writes only commands and acks.
"""


class BrokerAccessError(ValueError):
    """A name that cannot be an account, or a file that is not ours to rewrite."""


def kiosk_username(site: str, kiosk: str) -> str:
    """The broker identity of a kiosk: username, and Common Name of its certificate."""
    try:
        KioskTopics(site, kiosk)  # both must be slugs
    except ContractError as error:
        raise BrokerAccessError(error.reason) from None
    return f"{site}.{kiosk}"


def split_kiosk_username(username: str) -> tuple[str, str] | None:
    """(site, kiosk) for a kiosk's username; None for anything else (a bridge worker)."""
    site, dot, kiosk = username.partition(".")
    if not dot:
        return None
    try:
        KioskTopics(site, kiosk)
    except ContractError:
        return None
    return site, kiosk


def check_bridge_name(name: str) -> str:
    if not _BRIDGE_NAME.match(name):
        raise BrokerAccessError(f"bridge name {name!r}: lowercase letters, digits and '-', at most 64, no '.'")
    return name


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    access: str  # "read" or "write": Mosquitto's access types
    topic: str

    def line(self) -> str:
        return f"topic {self.access} {self.topic}"


def kiosk_rules(site: str, kiosk: str) -> list[Rule]:
    """The kiosk's own upstream channels (docs/protocol.md, Topics), and its two downstream ones."""
    root = KioskTopics(site, kiosk).root
    return [
        Rule("write", f"{root}/{Channel.STATUS}"),  # birth, clean stop and the Last Will
        Rule("write", f"{root}/{Channel.READINGS}/+"),
        Rule("write", f"{root}/{Channel.EVENTS}/+"),
        Rule("write", f"{root}/{Channel.TELEMETRY}"),
        Rule("write", f"{root}/{Channel.COMMAND_RESULTS}/+"),
        # A backlog, many records to a message. An ACL written before batches lacks it: the
        # agent is refused (PUBACK 0x87) and sends its records one by one.
        Rule("write", f"{root}/{Channel.BATCH}"),
        Rule("read", f"{root}/{Channel.COMMANDS}/+"),
        Rule("read", f"{root}/{Channel.ACKS}"),
        Rule("read", BRIDGE_STATUS_FILTER),  # whether a bridge worker is up (docs/protocol.md)
    ]


def bridge_rules() -> list[Rule]:
    """Reads every kiosk (its shared subscriptions and its own status subscription are checked
    per message against these), writes only what goes down."""
    return [
        Rule("read", f"{TOPIC_ROOT}/#"),
        Rule("write", f"{TOPIC_ROOT}/+/+/{Channel.COMMANDS}/+"),
        Rule("write", f"{TOPIC_ROOT}/+/+/{Channel.ACKS}"),
        Rule("write", BRIDGE_STATUS_FILTER),  # each worker's retained status and Last Will
    ]


def rules_for(username: str) -> list[Rule]:
    kiosk = split_kiosk_username(username)
    if kiosk is not None:
        return kiosk_rules(*kiosk)
    return bridge_rules()


def render_acl(usernames: set[str]) -> str:
    """The whole ACL file for these accounts: bridge workers first, then kiosks, sorted."""
    bridges = sorted(u for u in usernames if split_kiosk_username(u) is None)
    kiosks = sorted(u for u in usernames if split_kiosk_username(u) is not None)
    blocks = []
    for username in bridges + kiosks:
        what = "bridge worker" if username in bridges else "kiosk"
        lines = [f"# {what} {username}", f"user {username}", *(rule.line() for rule in rules_for(username))]
        blocks.append("\n".join(lines))
    return ACL_HEADER + "".join(f"\n{block}\n" for block in blocks)


def acl_usernames(text: str) -> set[str]:
    """The accounts of an ACL file this module wrote. Their rules are not read back: they are
    written again from this module, which is how a newer Doorstep's rules reach every account.
    Anything this module would never write (a pattern, rules for anonymous clients) is refused
    rather than silently dropped."""
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "user":
            name = rest.strip()
            if split_kiosk_username(name) is None:
                check_bridge_name(name)
            names.add(name)
        elif keyword != "topic" or not names:
            raise BrokerAccessError(f"ACL line {number} ({line!r}) is not one `doorstep broker` writes: "
                                    "refusing to rewrite the file; move it aside first")
    return names


# --- The password file ------------------------------------------------------------------------


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The password file's hash of `password`, as mosquitto_passwd writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"${HASH_ID}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _password_lines(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            username, _, hashed = line.partition(":")
            entries[username] = hashed
    return entries


def password_usernames(path: Path) -> set[str]:
    return set(_password_lines(path))


def _replace(path: Path, text: str) -> None:
    """Write the whole file at once (a reload mid-write must never see half of it), keeping the
    mode and owner of the file it replaces: Mosquitto reads it as its own unprivileged user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        # New files: the owner writes, the broker's group reads, nobody else (the hashes and the
        # list of kiosks are nobody's business).
        os.chmod(temporary, old.st_mode & 0o777 if old else 0o640)
        if old is not None and os.geteuid() == 0:
            os.chown(temporary, old.st_uid, old.st_gid)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def set_password(path: Path, username: str, password: str) -> None:
    entries = _password_lines(path)
    entries[username] = hash_password(password)
    _replace(path, "".join(f"{name}:{hashed}\n" for name, hashed in sorted(entries.items())))


def remove_password(path: Path, username: str) -> bool:
    entries = _password_lines(path)
    if entries.pop(username, None) is None:
        return False
    _replace(path, "".join(f"{name}:{hashed}\n" for name, hashed in sorted(entries.items())))
    return True


def allow(acl_path: Path, username: str) -> None:
    """Give `username` its rules in the ACL file (a no-op if it has them)."""
    names = acl_usernames(acl_path.read_text()) if acl_path.exists() else set()
    names.add(username)
    _replace(acl_path, render_acl(names))


def revoke(acl_path: Path, username: str) -> bool:
    """Take every right of `username` away; False if it had none."""
    if not acl_path.exists():
        return False
    names = acl_usernames(acl_path.read_text())
    if username not in names:
        return False
    names.discard(username)
    _replace(acl_path, render_acl(names))
    return True
