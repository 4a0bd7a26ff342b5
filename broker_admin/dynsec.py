"""Mosquitto's dynamic-security plugin: its configuration file, and an admin client for the running broker.

The plugin (mosquitto 2.0, plugins/dynamic-security/) keeps clients (username, password hash,
roles), roles (ACLs) and default access in one JSON file, which it owns while the broker runs: it
rewrites the file after every change, so the file is written here only while the broker is
stopped (a first installation, an import of old password and ACL files). A running broker is
changed through its control topic, `$CONTROL/dynamic-security/v1`, by a client whose role may
publish there: the change is in force at once, with no reload (the next CONNECT, PUBLISH and
SUBSCRIBE are checked against it), and a deleted client is disconnected
(docs/dynamic-security.md in Mosquitto's sources; `deleteClient` calls
`mosquitto_kick_client_by_username`, plugins/dynamic-security/clients.c).

This module knows the plugin, not Doorstep: which accounts and rules Doorstep wants is
broker_admin/access.py. `doorstep enrol` (run-time enrolment, instant revocation) is meant to
build on `DynsecAdmin` too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import secrets
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from paho.mqtt.reasoncodes import ReasonCode

from runtime.mqtt import BrokerSettings, make_client

CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"

# The plugin's password hash: PBKDF2-HMAC-SHA512, 64 bytes, over a 12-byte salt, with the
# iterations stored beside it, each base64 in the JSON (plugins/dynamic-security/auth.c,
# dynsec_auth__pw_hash; src/password_mosq.h: SALT_LEN 12, PW_DEFAULT_ITERATIONS 101). The same
# hash as the "$7$" lines of a mosquitto_passwd file, so an old password file converts without
# anyone's password changing. Iterations only slow the guessing of a weak password; Doorstep's
# are 32 random bytes.
SALT_BYTES: Final = 12
HASH_BYTES: Final = 64
ITERATIONS: Final = 101

AclType = Literal[
    "publishClientSend", "publishClientReceive", "subscribeLiteral", "subscribePattern",
    "unsubscribeLiteral", "unsubscribePattern",
]


class DynsecError(RuntimeError):
    """The broker refused a command, did not answer, or refused the admin client."""


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ACL of a role: what it allows (every ACL Doorstep writes allows; anything not
    allowed falls to defaultACLAccess, which denies)."""

    acltype: AclType
    topic: str

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": True}


@dataclass(frozen=True, slots=True)
class PasswordHash:
    password: str  # base64 of the 64-byte hash
    salt: str  # base64 of the 12-byte salt
    iterations: int

    def as_json(self) -> dict[str, Any]:
        return {"password": self.password, "salt": self.salt, "iterations": self.iterations}


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> PasswordHash:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return PasswordHash(base64.b64encode(digest).decode(), base64.b64encode(salt).decode(), iterations)


def hash_from_passwd_line(hashed: str) -> PasswordHash:
    """A mosquitto_passwd "$7$iterations$salt$hash" (PBKDF2-SHA512, src/password_mosq.c) as the
    plugin stores it. "$6$" (SHA512 of salt and password, 2.0's older format) has no equivalent
    in the plugin: that account needs a new password."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        raise DynsecError(f"not a PBKDF2-SHA512 ($7$) hash: {hashed[:4]}…; give this account a new password")
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    if len(salt) != SALT_BYTES or len(digest) != HASH_BYTES:
        raise DynsecError("a $7$ hash with a salt or digest of an unexpected length")
    return PasswordHash(parts[4], parts[3], iterations)


# --- The file, while the broker is stopped ---------------------------------------------------


def default_access() -> dict[str, bool]:
    """Deny what no role allows: publishing, receiving and subscribing. Unsubscribing stays
    allowed: it can only take away (a bridge drops a subscription of an older version)."""
    return {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True}


ADMIN_ACLS: Final = (
    # The control topic only: the admin account reads no kiosk's messages.
    Acl("publishClientSend", f"{CONTROL_TOPIC}/#"),
    Acl("publishClientReceive", f"{CONTROL_TOPIC}/#"),
    Acl("subscribeLiteral", RESPONSE_TOPIC),
)


def new_config(admin_username: str, admin_password: str) -> dict[str, Any]:
    """A configuration holding only the admin account, as `mosquitto_ctrl dynsec init` makes
    one, but with every default denied and an admin that can only administer."""
    return {
        "clients": [client_json(admin_username, hash_password(admin_password), [admin_username],
                                text="Doorstep's broker admin (doorstep broker)")],
        "roles": [role_json(admin_username, ADMIN_ACLS)],
        "groups": [],
        "defaultACLAccess": default_access(),
    }


def client_json(
    username: str, hashed: PasswordHash | None, roles: Iterable[str], *, text: str = "", description: str = ""
) -> dict[str, Any]:
    """A client of the file (its keys as plugins/dynamic-security/clients.c reads them). Without a
    hash it logs in only where the broker does not ask the plugin for a password: the
    certificate listener (use_identity_as_username)."""
    entry: dict[str, Any] = {"username": username, "textname": text, "textdescription": description,
                             "roles": [{"rolename": r} for r in roles]}
    if hashed is not None:
        entry.update(hashed.as_json())
    return entry


def role_json(rolename: str, acls: Iterable[Acl]) -> dict[str, Any]:
    return {"rolename": rolename, "acls": [acl.as_json() for acl in sorted(acls)]}


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise DynsecError(f"{path} does not exist: create it with `doorstep broker init`") from None
    except json.JSONDecodeError as error:
        raise DynsecError(f"{path} is not the plugin's JSON: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("clients"), list) or not isinstance(config.get("roles"), list):
        raise DynsecError(f"{path} is not a dynamic-security configuration (no clients and roles)")
    return config


def write_config(path: Path, config: Mapping[str, Any], *, overwrite: bool) -> None:
    """The whole file at once (a broker starting mid-write must never read half of it), mode
    0600 for a new file, keeping the owner and mode of one it replaces: the broker's own user
    rewrites it while running, and it holds every account's hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    if old is not None and not overwrite:
        raise DynsecError(f"{path} exists: refusing to replace every account in it")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(config, file, indent="\t")
            file.write("\n")
        os.chmod(temporary, old.st_mode & 0o777 if old else 0o600)
        if old is not None and os.geteuid() == 0:
            os.chown(temporary, old.st_uid, old.st_gid)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- The running broker ---------------------------------------------------------------------


class DynsecAdmin:
    """A connection to the broker as its admin account, sending control commands and waiting
    for their answers. Use as a context manager:

        with DynsecAdmin(BrokerSettings(username="doorstep-admin", password=...)) as admin:
            admin.run({"command": "createRole", "rolename": "x", "acls": [...]})

    Commands of one `run` are one control message, answered in one response in the same order
    (plugins/dynamic-security/plugin.c, dynsec__handle_control). A command that fails raises
    DynsecError with the plugin's own words ("Client already exists", "Role not found")."""

    def __init__(self, broker: BrokerSettings, *, timeout_s: float = 10.0) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        # On a broker binding client ids to usernames (use_username_as_clientid) the client id
        # is the admin's username whatever is sent: two admin connections at once would take
        # each other's session, so `doorstep broker` commands are run one at a time.
        self._client = make_client(f"doorstep-admin-{uuid.uuid4().hex[:8]}", broker)
        self._responses: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._client.on_message = lambda _c, _u, message: self._responses.put(bytes(message.payload))

    def __enter__(self) -> DynsecAdmin:
        answers: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
        subscribed: queue.SimpleQueue[list[ReasonCode]] = queue.SimpleQueue()
        self._client.on_connect = lambda _c, _u, _f, reason, _p: answers.put(reason)
        self._client.on_subscribe = lambda _c, _u, _m, reasons, _p: subscribed.put(list(reasons))
        where = f"{self._broker.host}:{self._broker.port}"
        try:
            self._client.connect(self._broker.host, self._broker.port, keepalive=30, clean_start=True)
        except OSError as error:
            raise DynsecError(f"cannot reach the broker at {where}: {error.strerror or error}") from None
        self._client.loop_start()
        try:
            reason = answers.get(timeout=self._timeout_s)
            if reason.is_failure:
                raise DynsecError(f"the broker at {where} refused the admin account: {reason}")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            [granted] = subscribed.get(timeout=self._timeout_s)
            if granted.is_failure:
                raise DynsecError(f"the admin account may not read {RESPONSE_TOPIC} ({granted}): is the "
                                  "dynamic-security plugin loaded, and this its admin?")
        except queue.Empty:
            self.close()
            raise DynsecError(f"the broker at {where} did not answer within {self._timeout_s:.0f} s") from None
        except DynsecError:
            self.close()
            raise
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        # The callbacks refer back to this object: without them there is no reference cycle,
        # so paho's client is freed (and its internal socket pair closed, Client.__del__) as
        # soon as this object is, not by a later garbage collection in arbitrary order.
        self._client.on_message = self._client.on_connect = self._client.on_subscribe = None

    def run(self, *commands: Mapping[str, Any], allow: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Send the commands and return the plugin's answer to each. An answer whose error is in
        `allow` (e.g. "Client not found" for a removal) is returned rather than raised."""
        if not commands:
            return []
        correlation = uuid.uuid4().hex
        tagged = [{**command, "correlationData": f"{correlation}-{index}"} for index, command in enumerate(commands)]
        info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        info.wait_for_publish(self._timeout_s)
        answers: dict[str, dict[str, Any]] = {}
        while len(answers) < len(tagged):
            try:
                raw = self._responses.get(timeout=self._timeout_s)
            except queue.Empty:
                raise DynsecError(f"no answer to {', '.join(c['command'] for c in commands)} within "
                                  f"{self._timeout_s:.0f} s: is the dynamic-security plugin loaded?") from None
            for response in json.loads(raw).get("responses", []):
                tag = response.get("correlationData", "")
                if isinstance(tag, str) and tag.startswith(correlation):
                    answers[tag] = response
        ordered = [answers[command["correlationData"]] for command in tagged]
        allowed = set(allow)
        for command, answer in zip(commands, ordered):
            error = answer.get("error")
            if error and error not in allowed:
                raise DynsecError(f"{command['command']}: {error}")
        return ordered

    def one(self, command: Mapping[str, Any], *, allow: Iterable[str] = ()) -> dict[str, Any]:
        [answer] = self.run(command, allow=allow)
        return answer


def is_missing(answer: Mapping[str, Any]) -> bool:
    """An answer saying the client, role or group named is not there."""
    return str(answer.get("error", "")).endswith("not found")
