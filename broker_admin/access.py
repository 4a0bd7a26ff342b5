"""Who may connect to the broker and what each may do: one account and one role per kiosk and
per bridge worker, in Mosquitto's dynamic-security plugin (broker_admin/dynsec.py).

Every kiosk has its own identity, `{site}.{kiosk}` (the '.' is not in the slug alphabet, so
no two kiosks can share one): its username with a password, or the Common Name of its client
certificate (broker_admin/pki.py). Each bridge worker has its own name, a slug without '.'.

The identity is the client id too: every listener of deploy/mosquitto/doorstep.conf sets
`use_username_as_clientid`, which replaces whatever client id a client sends by its username
(after a certificate's Common Name became the username, src/handle_connect.c in 2.0.11). So a
kiosk connecting with the bridge's client id, or with another kiosk's, only ever takes over its
own session (issue 16, finding 2). Only a second holder of the same credentials can take a
session over; the bridge watches for that (cloud_bridge/ingest.py, DisconnectWatch).

Why the plugin, not Mosquitto's acl_file (issue 16, finding 1): Mosquitto 2.0 does not check a
SUBSCRIBE against the acl_file at all (src/security_default.c: "FIXME - implement ACL
subscription strings"). A kiosk could join the bridge's shared subscription,
`$share/bridge/doorstep/v1/+/+/readings/+`: the broker then gave it its turn of every kiosk's
messages and dropped each one the kiosk may not read, so the bridge got a fraction of them on
first delivery. The plugin checks each SUBSCRIBE against the role's subscribe ACLs, with the
`$share/{group}/` prefix as the client sent it (src/handle_subscribe.c passes the whole filter
to mosquitto_acl_check; plugins/dynamic-security/acl.c, acl_check_subscribe), and refuses what
no ACL allows (defaultACLAccess subscribe false): SUBACK 0x87 (MQTT 5.0, 3.9.3).

Each role's ACLs name its topics explicitly: one role per identity, so taking a kiosk out of
service is deleting its client and role, whether it logs in with a password or a certificate,
and the plugin disconnects it at once (deleteClient kicks the username,
plugins/dynamic-security/clients.c).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from broker_admin.dynsec import (
    Acl,
    DynsecAdmin,
    PasswordHash,
    client_json,
    hash_from_passwd_line,
    hash_password,
    is_missing,
    read_config,
    role_json,
    write_config,
)
from contract.errors import ContractError
from contract.topics import BRIDGE_STATUS_FILTER, TOPIC_ROOT, Channel, KioskTopics, bridge_status_topic

# A bridge worker's name: a slug, with no '.', so it can never read as a kiosk's `site.kiosk`.
BRIDGE_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,63}$"
_BRIDGE_NAME: Final = re.compile(BRIDGE_NAME_PATTERN)
# The bridge workers' shared-subscription group (cloud_bridge/settings.py, share_group).
DEFAULT_SHARE_GROUP: Final = "bridge"
# The account `doorstep broker` administers the plugin with (doorstep broker init).
ADMIN_USERNAME: Final = "doorstep-admin"

# How long the certificates of broker_admin/pki.py are valid. Here, not in pki.py, so that the CLI
# can show them as its defaults without importing cryptography (~17 MB resident, measured):
# every `doorstep agent` process loads the CLI, and a kiosk never issues a certificate.
CA_DAYS: Final = 3650  # the CA outlives the kiosks it signs; replacing it means visiting every kiosk
BROKER_DAYS: Final = 825  # the broker's certificate is replaced on the server alone, so more often
KIOSK_DAYS: Final = 1825  # a kiosk's card is rewritten by a visit: about the life of the hardware
PASSWORD_BYTES: Final = 32

# How an account logs in, kept in the client's textDescription: the plugin does not say whether
# a client has a password.
PASSWORD_LOGIN: Final = "password"
CERTIFICATE_LOGIN: Final = "certificate"


class BrokerAccessError(ValueError):
    """A name that cannot be an account, or a file that is not ours to convert."""


def kiosk_username(site: str, kiosk: str) -> str:
    """The broker identity of a kiosk: username, client id, and Common Name of its certificate."""
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


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# --- What each identity may do ---------------------------------------------------------------


def kiosk_acls(site: str, kiosk: str) -> list[Acl]:
    """The kiosk's own upstream channels (docs/protocol.md, Topics), and its downstream ones,
    subscribed exactly as the agent subscribes them (edge_agent/uplink.py): no wildcard of its
    own, no `$share/…` group, nobody else's topics."""
    topics = KioskTopics(site, kiosk)
    root = topics.root
    # Its commands, acks, desired configuration (retained), and the bridge's presence (docs/protocol.md).
    downstream = [topics.command("+"), topics.acks, topics.desired, BRIDGE_STATUS_FILTER]
    return [
        Acl("publishClientSend", f"{root}/{Channel.STATUS}"),  # birth, clean stop and the Last Will
        Acl("publishClientSend", f"{root}/{Channel.ALARMS}"),  # retained, its conditions now
        Acl("publishClientSend", f"{root}/{Channel.READINGS}/+"),
        Acl("publishClientSend", f"{root}/{Channel.EVENTS}/+"),
        Acl("publishClientSend", f"{root}/{Channel.TELEMETRY}"),
        Acl("publishClientSend", f"{root}/{Channel.COMMAND_RESULTS}/+"),
        Acl("publishClientSend", f"{root}/{Channel.BATCH}"),
        Acl("publishClientSend", f"{root}/{Channel.SUPPORT_BUNDLES}/+"),  # when a technician asks
        *(Acl("publishClientReceive", topic) for topic in downstream),
        *(Acl("subscribeLiteral", topic) for topic in downstream),
    ]


def bridge_acls(name: str, group: str = DEFAULT_SHARE_GROUP) -> list[Acl]:
    """Reads every kiosk, through the group's shared subscriptions and its own one to the kiosks'
    statuses; writes only what goes down, and its own presence."""
    return [
        Acl("publishClientReceive", f"{TOPIC_ROOT}/#"),
        # Every shared subscription of its group under the root (cloud_bridge/ingest.py,
        # subscriptions(): one per upstream channel); kept whole so that a channel added
        # upstream needs no change here. A pattern ACL holds a subscription within it
        # (plugins/dynamic-security/sub_matches_sub.c).
        Acl("subscribePattern", f"$share/{group}/{TOPIC_ROOT}/#"),
        Acl("subscribeLiteral", f"{TOPIC_ROOT}/+/+/{Channel.STATUS}"),
        Acl("subscribeLiteral", f"{TOPIC_ROOT}/+/+/{Channel.ALARMS}"),
        Acl("publishClientSend", f"{TOPIC_ROOT}/+/+/{Channel.COMMANDS}/+"),
        Acl("publishClientSend", f"{TOPIC_ROOT}/+/+/{Channel.ACKS}"),
        Acl("publishClientSend", f"{TOPIC_ROOT}/+/+/{Channel.DESIRED}"),  # retained, each kiosk's desired configuration
        Acl("publishClientSend", bridge_status_topic(name)),  # its retained status and Last Will
    ]


def acls_for(username: str, group: str = DEFAULT_SHARE_GROUP) -> list[Acl]:
    kiosk = split_kiosk_username(username)
    if kiosk is not None:
        return kiosk_acls(*kiosk)
    return bridge_acls(check_bridge_name(username), group)


def describe(username: str) -> str:
    return "kiosk" if split_kiosk_username(username) is not None else "bridge worker"


# --- On the running broker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    kind: str  # "kiosk" or "bridge worker"
    login: str  # PASSWORD_LOGIN or CERTIFICATE_LOGIN
    roles: tuple[str, ...]

    @property
    def has_rights(self) -> bool:
        return self.username in self.roles


def grant(admin: DynsecAdmin, username: str, password: str | None, *, group: str = DEFAULT_SHARE_GROUP) -> None:
    """Give `username` its rules, in a role of its own name, and `password` (None: it logs in with
    its certificate). An existing account is brought to this version's rules and, with a
    password, given the new one: how a newer Doorstep's rules reach every account."""
    _sync_role(admin, username, acls_for(username, group))
    login = PASSWORD_LOGIN if password is not None else CERTIFICATE_LOGIN
    client = admin.one({"command": "getClient", "username": username}, allow=["Client not found"])
    if is_missing(client):
        admin.one({"command": "createClient", "username": username, "textdescription": login,
                   "roles": [{"rolename": username}], **({"password": password} if password is not None else {})})
        return
    commands: list[dict[str, Any]] = []
    if password is not None:
        # setClientPassword disconnects the client: whoever holds the old password is out.
        commands += [{"command": "setClientPassword", "username": username, "password": password},
                     {"command": "modifyClient", "username": username, "textdescription": PASSWORD_LOGIN}]
    # Without a password an account keeps the one it has (the plugin cannot take a password
    # away; `remove` and a new `add-kiosk --no-password` can).
    if username not in {r["rolename"] for r in client["data"]["client"].get("roles", [])}:
        commands.append({"command": "addClientRole", "username": username, "rolename": username})
    admin.run(*commands)


def _sync_role(admin: DynsecAdmin, username: str, acls: list[Acl]) -> bool:
    """The role of `username` holds exactly `acls` afterwards; True if it had to change. (A
    changed role's clients are disconnected by the plugin, and come back under the new rules.)"""
    role = admin.one({"command": "getRole", "rolename": username}, allow=["Role not found"])
    if is_missing(role):
        admin.one({"command": "createRole", "rolename": username, "textname": f"{describe(username)} {username}",
                   "acls": [acl.as_json() for acl in acls]})
        return True
    held = {Acl(a["acltype"], a["topic"]) for a in role["data"]["role"].get("acls", [])}
    wanted = set(acls)
    admin.run(*({"command": "removeRoleACL", "rolename": username, "acltype": acl.acltype, "topic": acl.topic}
                for acl in sorted(held - wanted)),
              *({"command": "addRoleACL", "rolename": username, "allow": True, **acl.as_json()}
                for acl in sorted(wanted - held)))
    return held != wanted


def update_rules(admin: DynsecAdmin, *, group: str = DEFAULT_SHARE_GROUP) -> list[str]:
    """Bring every account's role to this version's rules (a channel added to the contract),
    passwords untouched; the accounts whose rules changed."""
    changed = []
    for account in accounts(admin):
        if _sync_role(admin, account.username, acls_for(account.username, group)):
            changed.append(account.username)
        if not account.has_rights:
            admin.one({"command": "addClientRole", "username": account.username, "rolename": account.username})
    return changed


def revoke(admin: DynsecAdmin, username: str) -> bool:
    """Take the account away (the plugin disconnects it at once); False if there was none."""
    client, role = admin.run({"command": "deleteClient", "username": username},
                             {"command": "deleteRole", "rolename": username},
                             allow=["Client not found", "Role not found"])
    return not (is_missing(client) and is_missing(role))


def accounts(admin: DynsecAdmin) -> list[Account]:
    """Every kiosk and bridge worker the plugin knows: the clients `grant` and `import_legacy` made,
    which say how they log in in their textdescription (not the admin account)."""
    listed = admin.one({"command": "listClients", "verbose": True, "count": -1, "offset": 0})
    found = []
    for client in listed["data"]["clients"]:
        username, login = client["username"], client.get("textdescription")
        if login not in (PASSWORD_LOGIN, CERTIFICATE_LOGIN):
            continue  # not made by grant or import_legacy: the admin account, or one made by hand
        roles = tuple(sorted(r["rolename"] for r in client.get("roles", [])))
        found.append(Account(username, describe(username), login, roles))
    return sorted(found, key=lambda a: a.username)


# --- Upgrading a broker host: the old password file and ACL into the plugin's file --------------


def acl_usernames(text: str) -> set[str]:
    """The accounts of an ACL file `doorstep broker` wrote before the plugin (user blocks of
    topic lines). Their rules are not read: each gets this version's rules. Anything else (a
    pattern, rules for anonymous clients) is refused rather than silently dropped."""
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
            raise BrokerAccessError(f"ACL line {number} ({line!r}) is not one `doorstep broker` wrote: "
                                    "convert that account by hand")
    return names


def password_hashes(text: str) -> dict[str, str]:
    """username -> hash, of a mosquitto_passwd file."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            username, _, hashed = line.partition(":")
            entries[username] = hashed.strip()
    return entries


def import_legacy(dynsec_file: Path, *, passwd: Path, acl: Path, group: str = DEFAULT_SHARE_GROUP) -> list[str]:
    """Add every account of the old password file and ACL to the plugin's file, with the
    password it had (the same PBKDF2-SHA512 hash, broker_admin/dynsec.py) and this version's rules:
    no kiosk needs a new password. The broker must be stopped (the plugin rewrites its file).
    Returns the usernames imported."""
    config = read_config(dynsec_file)
    with_rights = acl_usernames(acl.read_text()) if acl.exists() else set()
    hashes = password_hashes(passwd.read_text()) if passwd.exists() else {}
    unknown = sorted(set(hashes) - with_rights)
    if unknown:
        # Without rules in the old ACL they could do nothing; an account kept must be meant.
        raise BrokerAccessError(f"in {passwd} but not in {acl}: {', '.join(unknown)}; remove them or add them to the ACL")
    clients = {c["username"]: c for c in config["clients"]}
    roles = {r["rolename"]: r for r in config["roles"]}
    for username in sorted(with_rights):
        hashed: PasswordHash | None = hash_from_passwd_line(hashes[username]) if username in hashes else None
        roles[username] = role_json(username, acls_for(username, group))
        login = PASSWORD_LOGIN if hashed is not None else CERTIFICATE_LOGIN
        clients[username] = client_json(username, hashed, [username], description=login)
    config["clients"], config["roles"] = list(clients.values()), list(roles.values())
    write_config(dynsec_file, config, overwrite=True)
    return sorted(with_rights)


def offline_grant(dynsec_file: Path, username: str, password: str | None, *, group: str = DEFAULT_SHARE_GROUP) -> None:
    """`grant`, into the plugin's file of a stopped broker (tests, and an installation before its
    first start)."""
    config = read_config(dynsec_file)
    hashed = hash_password(password) if password is not None else None
    login = PASSWORD_LOGIN if hashed is not None else CERTIFICATE_LOGIN
    config["clients"] = [c for c in config["clients"] if c["username"] != username] + [
        client_json(username, hashed, [username], description=login)]
    config["roles"] = [r for r in config["roles"] if r["rolename"] != username] + [role_json(username, acls_for(username, group))]
    write_config(dynsec_file, config, overwrite=True)
