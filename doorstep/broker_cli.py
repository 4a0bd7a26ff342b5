"""`doorstep broker …`: the broker's CA and certificates, and its accounts (one per kiosk, one per
bridge worker). What each file is for, and where it goes: docs/security.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from broker_admin import access
from broker_admin.access import ADMIN_USERNAME, BROKER_DAYS, CA_DAYS, DEFAULT_SHARE_GROUP, KIOSK_DAYS, BrokerAccessError
from broker_admin.dynsec import DynsecAdmin, DynsecError

# broker_admin.pki (cryptography) is imported by the commands that issue certificates, not here:
# every `doorstep agent` process loads this module with the CLI (see access.CA_DAYS).

broker_app = typer.Typer(
    help="The broker's certificates and accounts: a CA, the broker's certificate, one account per kiosk and bridge worker.",
    no_args_is_help=True,
)

# Where deploy/mosquitto/doorstep.conf has the plugin keep its file, and where `init` puts the
# admin's password for the other commands (root's, mode 0600).
DEFAULT_DYNSEC = Path("/var/lib/mosquitto/dynamic-security.json")
DEFAULT_ADMIN_PASSWORD_FILE = Path("/etc/broker_admin/-admin.password")

PkiDir = Annotated[Path, typer.Option("--pki", help="the CA's directory (keep ca.key off the broker if you can)")]
DynsecFile = Annotated[Path, typer.Option("--dynsec", help="the dynamic-security plugin's file (plugin_opt_config_file)")]
BrokerHost = Annotated[str, typer.Option("--broker-host", help="the broker's loopback listener")]
BrokerPort = Annotated[int, typer.Option("--broker-port", help="its port")]
AdminName = Annotated[str, typer.Option("--admin", help="the plugin's admin account (made by `doorstep broker init`)")]
AdminPasswordFile = Annotated[Path, typer.Option("--admin-password-file", help="a file holding the admin's password")]
Group = Annotated[str, typer.Option("--group", help="the bridge workers' shared-subscription group (share_group)")]
IN_FORCE = "in force now: no reload needed"


def _admin(host: str, port: int, admin: str, password_file: Path) -> DynsecAdmin:
    from runtime.mqtt import BrokerSettings

    try:
        password = password_file.read_text().strip()
    except OSError as error:
        raise DynsecError(f"cannot read the admin's password from {password_file} ({error.strerror}): made by "
                          "`doorstep broker init`; pass --admin-password-file") from None
    return DynsecAdmin(BrokerSettings(host=host, port=port, username=admin, password=password))  # type: ignore[arg-type]


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


@broker_app.command("new-ca")
def new_ca(
    pki: PkiDir,
    name: Annotated[str, typer.Option(help="the CA's name, e.g. 'Doorstep Pudong'")],
    days: Annotated[int, typer.Option(help="validity")] = CA_DAYS,
) -> None:
    """Create the CA that signs the broker's certificate and every kiosk's (ca.crt, ca.key)."""
    from broker_admin.pki import CertificateAuthority, PkiError

    try:
        ca = CertificateAuthority.create(pki, name, days=days)
    except PkiError as error:
        raise _fail(error) from None
    typer.echo(f"created {ca.cert_file} and {pki / 'ca.key'} (mode 0600: keep it secret, keep a backup offline)")
    typer.echo(f"every kiosk and the broker get {ca.cert_file}")


@broker_app.command("server-cert")
def server_cert(
    pki: PkiDir,
    host: Annotated[list[str], typer.Option(help="a name or address kiosks use to reach the broker; repeat for each")],
    days: Annotated[int, typer.Option(help="validity")] = BROKER_DAYS,
) -> None:
    """Issue the broker's TLS certificate (broker.crt, broker.key) for the names kiosks dial."""
    from broker_admin.pki import CertificateAuthority, PkiError

    try:
        issued = CertificateAuthority.load(pki).issue_server(host, days=days)
    except PkiError as error:
        raise _fail(error) from None
    typer.echo(f"created {issued.cert} and {issued.key} for {', '.join(host)}")
    typer.echo("install them with ca.crt in /etc/mosquitto/certs/ (broker.key owned by the mosquitto user, mode 0600)")


@broker_app.command("kiosk-cert")
def kiosk_cert(
    site: str,
    kiosk: str,
    pki: PkiDir,
    days: Annotated[int, typer.Option(help="validity")] = KIOSK_DAYS,
) -> None:
    """Issue a kiosk's client certificate, named {site}.{kiosk}, for the certificate listener."""
    from broker_admin.pki import CertificateAuthority, PkiError

    try:
        access.kiosk_username(site, kiosk)
        ca = CertificateAuthority.load(pki)
        issued = ca.issue_kiosk(site, kiosk, days=days)
    except (PkiError, BrokerAccessError) as error:
        raise _fail(error) from None
    typer.echo(f"created {issued.cert} and {issued.key}")
    typer.echo("copy them and ca.crt to the kiosk's /etc/doorstep/, and in agent.yaml (port 8884):")
    typer.echo(f"  broker: {{tls: {{ca_file: /etc/doorstep/ca.crt, cert_file: /etc/doorstep/{issued.cert.name}, "
               f"key_file: /etc/doorstep/{issued.key.name}}}}}")
    typer.echo(f"the broker must also know it: doorstep broker add-kiosk {site} {kiosk} --no-password")


@broker_app.command("init")
def init(
    dynsec: DynsecFile = DEFAULT_DYNSEC,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """Before the broker's first start: the plugin's file, holding only an admin account (which
    may administer the plugin and read nothing else), and the admin's password for the other
    commands."""
    from broker_admin import dynsec as plugin

    if admin_password_file.exists():
        raise _fail(DynsecError(f"{admin_password_file} exists: refusing to replace the admin's password"))
    password = access.new_password()
    try:
        plugin.write_config(dynsec, plugin.new_config(admin, password), overwrite=False)
        admin_password_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(admin_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(password + "\n")
    except (DynsecError, OSError) as error:
        raise _fail(error) from None
    typer.echo(f"created {dynsec} (admin account {admin}) and {admin_password_file} (mode 0600)")
    typer.echo("the broker must own the plugin's file: sudo chown mosquitto: " + str(dynsec))
    typer.echo("then start the broker: sudo systemctl restart mosquitto")


@broker_app.command("import-legacy")
def import_legacy(
    dynsec: DynsecFile = DEFAULT_DYNSEC,
    passwd: Annotated[Path, typer.Option("--passwd", help="the old password_file")] = Path("/etc/mosquitto/doorstep.passwd"),
    acl: Annotated[Path, typer.Option("--acl", help="the old acl_file")] = Path("/etc/mosquitto/doorstep.acl"),
    group: Group = DEFAULT_SHARE_GROUP,
) -> None:
    """Upgrading a broker host, with the broker stopped: every account of the password file and
    ACL that `doorstep broker` wrote before, into the plugin's file, with its password (the same
    hash) and this version's rules. No kiosk needs a new password."""
    try:
        imported = access.import_legacy(dynsec, passwd=passwd, acl=acl, group=group)
    except (BrokerAccessError, DynsecError, OSError, KeyError) as error:
        raise _fail(error) from None
    typer.echo(f"imported {len(imported)} account(s) into {dynsec}: " + ", ".join(imported))
    typer.echo("now remove password_file and acl_file from the broker's configuration, add the plugin "
               "(deploy/mosquitto/doorstep.conf), and start it")


@broker_app.command("add-kiosk")
def add_kiosk(
    site: str,
    kiosk: str,
    password: Annotated[bool, typer.Option(help="give it a password (--no-password: it logs in with its certificate)")] = True,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = 1883,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """Let a kiosk onto the running broker: its own topics, and a new random password."""
    try:
        username = access.kiosk_username(site, kiosk)
        secret = access.new_password() if password else None
        with _admin(broker_host, broker_port, admin, admin_password_file) as plugin:
            access.grant(plugin, username, secret)
    except (BrokerAccessError, DynsecError) as error:
        raise _fail(error) from None
    typer.echo(f"kiosk {username}: may publish under doorstep/v1/{site}/{kiosk}/ and read its own commands and acks")
    if secret is not None:
        typer.echo(f"broker.username: {username}")
        typer.echo(f"password (shown once, kept nowhere else): {secret}")
        typer.echo("put it in the kiosk's /etc/doorstep/agent.env as DOORSTEP_AGENT_BROKER__PASSWORD=…")
    typer.echo(IN_FORCE)


@broker_app.command("add-bridge")
def add_bridge(
    name: str,
    group: Group = DEFAULT_SHARE_GROUP,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = 1883,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """Let a bridge worker (one account per worker: its client id is its name) read every kiosk
    through its group's shared subscriptions, and write only commands and acks."""
    try:
        access.check_bridge_name(name)
        secret = access.new_password()
        with _admin(broker_host, broker_port, admin, admin_password_file) as plugin:
            access.grant(plugin, name, secret, group=group)
    except (BrokerAccessError, DynsecError) as error:
        raise _fail(error) from None
    typer.echo(f"bridge worker {name}: broker.username {name} (its client id, too)")
    typer.echo(f"password (shown once, kept nowhere else): {secret}")
    typer.echo("put it in the bridge's environment as DOORSTEP_BRIDGE_BROKER__PASSWORD=…")
    typer.echo(IN_FORCE)


@broker_app.command("update-rules")
def update_rules(
    group: Group = DEFAULT_SHARE_GROUP,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = 1883,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """After upgrading Doorstep: give every account this version's rules (a new channel in the
    contract), keeping every password. Clients whose rules change are reconnected by the broker."""
    try:
        with _admin(broker_host, broker_port, admin, admin_password_file) as plugin:
            changed = access.update_rules(plugin, group=group)
    except DynsecError as error:
        raise _fail(error) from None
    typer.echo(f"{len(changed)} account(s) given new rules" + (": " + ", ".join(changed) if changed else ""))


@broker_app.command("remove")
def remove(
    username: str,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = 1883,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """Take an account (a stolen or retired kiosk: {site}.{kiosk}) off the broker, password and
    rights. A client connected with it is disconnected at once, certificate or password."""
    try:
        if split := access.split_kiosk_username(username):
            access.kiosk_username(*split)
        else:
            access.check_bridge_name(username)
        with _admin(broker_host, broker_port, admin, admin_password_file) as plugin:
            removed = access.revoke(plugin, username)
    except (BrokerAccessError, DynsecError) as error:
        raise _fail(error) from None
    if not removed:
        raise _fail(BrokerAccessError(f"no account {username!r} on the broker"))
    typer.echo(f"removed {username}: its password and its rights; {IN_FORCE}")


@broker_app.command("list")
def list_accounts(
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = 1883,
    admin: AdminName = ADMIN_USERNAME,
    admin_password_file: AdminPasswordFile = DEFAULT_ADMIN_PASSWORD_FILE,
) -> None:
    """Every account: kiosk or bridge worker, with a password or a certificate only."""
    try:
        with _admin(broker_host, broker_port, admin, admin_password_file) as plugin:
            found = access.accounts(plugin)
    except DynsecError as error:
        raise _fail(error) from None
    for account in found:
        rights = "" if account.has_rights else " (no rights: its role is missing)"
        typer.echo(f"{account.username}\t{account.kind}\t{account.login}{rights}")
