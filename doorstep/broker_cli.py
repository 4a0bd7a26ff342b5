"""`doorstep broker …`: the broker's CA and certificates, and its accounts (one per kiosk, one per
bridge worker). What each file is for, and where it goes: docs/security.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from doorstep import broker_access
from doorstep.broker_access import BROKER_DAYS, CA_DAYS, KIOSK_DAYS, BrokerAccessError

# doorstep.pki (cryptography) is imported by the commands that issue certificates, not here:
# every `doorstep agent` process loads this module with the CLI (see broker_access.CA_DAYS).

broker_app = typer.Typer(
    help="The broker's certificates and accounts: a CA, the broker's certificate, one account per kiosk and bridge worker.",
    no_args_is_help=True,
)

# Where deploy/mosquitto/doorstep.conf reads them.
DEFAULT_PASSWD = Path("/etc/mosquitto/doorstep.passwd")
DEFAULT_ACL = Path("/etc/mosquitto/doorstep.acl")

PkiDir = Annotated[Path, typer.Option("--pki", help="the CA's directory (keep ca.key off the broker if you can)")]
PasswdFile = Annotated[Path, typer.Option("--passwd", help="Mosquitto's password_file")]
AclFile = Annotated[Path, typer.Option("--acl", help="Mosquitto's acl_file")]
RELOAD = "then reload the broker: sudo systemctl reload mosquitto"


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
    from doorstep.pki import CertificateAuthority, PkiError

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
    from doorstep.pki import CertificateAuthority, PkiError

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
    from doorstep.pki import CertificateAuthority, PkiError

    try:
        broker_access.kiosk_username(site, kiosk)
        ca = CertificateAuthority.load(pki)
        issued = ca.issue_kiosk(site, kiosk, days=days)
    except (PkiError, BrokerAccessError) as error:
        raise _fail(error) from None
    typer.echo(f"created {issued.cert} and {issued.key}")
    typer.echo("copy them and ca.crt to the kiosk's /etc/doorstep/, and in agent.yaml (port 8884):")
    typer.echo(f"  broker: {{tls: {{ca_file: /etc/doorstep/ca.crt, cert_file: /etc/doorstep/{issued.cert.name}, "
               f"key_file: /etc/doorstep/{issued.key.name}}}}}")
    typer.echo(f"the broker must also know it: doorstep broker add-kiosk {site} {kiosk} --no-password")


@broker_app.command("add-kiosk")
def add_kiosk(
    site: str,
    kiosk: str,
    passwd: PasswdFile = DEFAULT_PASSWD,
    acl: AclFile = DEFAULT_ACL,
    password: Annotated[bool, typer.Option(help="give it a password (--no-password: it logs in with its certificate)")] = True,
) -> None:
    """Let a kiosk onto the broker: its own topics in the ACL, and a new random password."""
    try:
        username = broker_access.kiosk_username(site, kiosk)
        broker_access.allow(acl, username)
        secret = broker_access.new_password() if password else None
        if secret is not None:
            broker_access.set_password(passwd, username, secret)
    except (BrokerAccessError, OSError) as error:
        raise _fail(error) from None
    typer.echo(f"kiosk {username}: may publish under doorstep/v1/{site}/{kiosk}/ and read its own commands and acks")
    if secret is not None:
        typer.echo(f"broker.username: {username}")
        typer.echo(f"password (shown once, kept nowhere else): {secret}")
        typer.echo("put it in the kiosk's /etc/doorstep/agent.env as DOORSTEP_AGENT_BROKER__PASSWORD=…")
    typer.echo(RELOAD)


@broker_app.command("add-bridge")
def add_bridge(name: str, passwd: PasswdFile = DEFAULT_PASSWD, acl: AclFile = DEFAULT_ACL) -> None:
    """Let a bridge worker (one per client_id) read every kiosk and write only commands and acks."""
    try:
        broker_access.allow(acl, broker_access.check_bridge_name(name))
        secret = broker_access.new_password()
        broker_access.set_password(passwd, name, secret)
    except (BrokerAccessError, OSError) as error:
        raise _fail(error) from None
    typer.echo(f"bridge worker {name}: broker.username {name}")
    typer.echo(f"password (shown once, kept nowhere else): {secret}")
    typer.echo("put it in the bridge's environment as DOORSTEP_BRIDGE_BROKER__PASSWORD=…")
    typer.echo(RELOAD)


@broker_app.command("remove")
def remove(username: str, passwd: PasswdFile = DEFAULT_PASSWD, acl: AclFile = DEFAULT_ACL) -> None:
    """Take an account (a stolen or retired kiosk: {site}.{kiosk}) off the broker, password and rights.

    On reload, a client connected with that password is disconnected."""
    try:
        had_rights = broker_access.revoke(acl, username)
        had_password = broker_access.remove_password(passwd, username)
    except (BrokerAccessError, OSError) as error:
        raise _fail(error) from None
    if not (had_rights or had_password):
        raise _fail(BrokerAccessError(f"no account {username!r} in {acl} or {passwd}"))
    typer.echo(f"removed {username}: " + ", ".join(
        what for what, done in (("its rights", had_rights), ("its password", had_password)) if done))
    typer.echo(RELOAD)


@broker_app.command("list")
def list_accounts(passwd: PasswdFile = DEFAULT_PASSWD, acl: AclFile = DEFAULT_ACL) -> None:
    """Every account: kiosk or bridge worker, with a password or a certificate only."""
    try:
        names = broker_access.acl_usernames(acl.read_text()) if acl.exists() else set()
        with_password = broker_access.password_usernames(passwd)
    except (BrokerAccessError, OSError) as error:
        raise _fail(error) from None
    for name in sorted(names | with_password):
        kind = "bridge worker" if broker_access.split_kiosk_username(name) is None else "kiosk"
        login = "password" if name in with_password else "certificate"
        rights = "" if name in names else " (no rights: not in the ACL)"
        typer.echo(f"{name}\t{kind}\t{login}{rights}")
