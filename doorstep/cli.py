"""`doorstep`: the front door for people and scripts."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from doorstep.broker_cli import broker_app
from doorstep.release_cli import release_app
from runtime.config import ConfigError
from runtime.heap import freeze_start_up_objects

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cloud_bridge.settings import BridgeSettings

app = typer.Typer(
    help="Doorstep: neighbourhood health kiosks, laundry rooms and 24-hour relay stations.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; DOORSTEP_* environment variables override it."),
]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")]


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=2)


AgentLogLevel = Annotated[
    str | None, typer.Option("--log-level", help="debug, info, warning or error (default: the file's log.level)")
]


@app.command()
def agent(config: ConfigOption = None, log_level: AgentLogLevel = None) -> None:
    """Run the kiosk agent: read devices, save every reading, send it to the cloud."""
    from edge_agent.agent import Agent
    from edge_agent.logs import LogFileError, configure_logging
    from edge_agent.settings import AgentSettings

    if log_level is not None and log_level.lower() not in ("debug", "info", "warning", "error"):
        raise _fail(f"--log-level {log_level}: one of debug, info, warning, error")
    try:
        settings = AgentSettings.from_file(config)
        configure_logging(settings.log, log_level)
    except (ConfigError, LogFileError) as error:
        raise _fail(str(error)) from None

    async def main() -> None:
        nonlocal settings
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # A remote reload_config ends a run with "reload" once the file has been checked: the
        # agent starts again, in this process, with the file's new settings.
        # A software update ends a run with "restart": the process exits, and systemd starts
        # it again through deploy/doorstep-launch, in the version now current (docs/updates.md).
        while await Agent(settings, config_path=config).run(stop) == "reload":
            log = logging.getLogger("doorstep")
            try:
                settings = AgentSettings.from_file(config)
            except ConfigError as error:  # changed again since it was checked
                log.error("keeping the running configuration: %s", error)
                continue
            try:
                configure_logging(settings.log, log_level)
            except LogFileError as error:  # the old handler was replaced: say so where it is now
                configure_logging(settings.log.model_copy(update={"file": None}), log_level)
                log.error("%s; logging to stderr instead", error)
            log.info("restarting with the configuration in %s", config)

    # Before the loop runs: the collection this starts with stalls whatever runs beside it (in a
    # big process, for longer than a cuff session's idle timeout).
    freeze_start_up_objects()
    asyncio.run(main())


@app.command()
def enrol(
    bridge: Annotated[str, typer.Option("--bridge", help="the bridge's address, e.g. https://bridge.doorstep.example.cn")],
    code: Annotated[str, typer.Option("--code", help="the one-time code the technician created for this kiosk")],
    config: Annotated[Path, typer.Option("--config", "-c", help="the agent's settings to write; agent.env (its "
                                         "password, mode 0600) and broker-ca.crt go beside it")] = Path("/etc/doorstep/agent.yaml"),
    force: Annotated[bool, typer.Option("--force", help="replace those files if they exist")] = False,
    bridge_ca: Annotated[Path | None, typer.Option("--bridge-ca", help="the CA of the bridge's HTTPS certificate, "
                                                   "if not one the system trusts; copied beside --config as bridge-ca.crt, "
                                                   "which the agent then trusts to download updates")] = None,
) -> None:
    """Set up this kiosk with a one-time code: the bridge gives it a broker account, the broker's
    CA and the key readings are sealed for, and the agent's configuration is written.

    Exit codes:

    0: enrolled.

    1: the code was refused (unknown, used, expired, cancelled, or too many tries): ask for a new one.

    2: a file exists (see --force) or cannot be written.

    3: the bridge cannot be reached or cannot enrol now: try again (a code refused then as used was spent: ask for a new one)."""
    from doorstep.enrol import EnrolError, KioskFiles
    from doorstep.enrol import enrol as enrol_kiosk

    files = KioskFiles.beside(config)
    try:
        settings = enrol_kiosk(bridge, code, files, force=force, bridge_ca=bridge_ca)
    except EnrolError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=error.exit_code) from None
    broker = settings.broker
    typer.echo(f"enrolled as kiosk {settings.site}/{settings.kiosk}: broker {broker.host}:{broker.port} as "
               f"{broker.username}{' over TLS' if broker.tls else ''}")
    typer.echo(f"wrote {files.config}, {files.env} (the password, mode 0600)" + (f", {files.ca}" if broker.tls else "")
               + (f", {files.bridge_ca}" if settings.bridge_ca else ""))
    typer.echo("add the site's resident secret to agent.env (DOORSTEP_AGENT_RESIDENT_SECRET=…) and devices to "
               f"{files.config.name}, then: sudo systemctl enable --now doorstep-agent")


@app.command()
def bridge(config: ConfigOption = None, log_level: LogLevel = "info") -> None:
    """Run the cloud bridge: store what kiosks send exactly once, serve the API."""
    from cloud_bridge.service import run_bridge
    from cloud_bridge.settings import BridgeSettings

    _setup_logging(log_level)
    try:
        settings = BridgeSettings.from_file(config)
    except ConfigError as error:
        raise _fail(str(error)) from None
    run_bridge(settings)


users_app = typer.Typer(help="People who use the bridge's API and dashboard (run beside the bridge).", no_args_is_help=True)
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(help="Long-lived API tokens for scripts (shown once, stored hashed).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(broker_app, name="broker")
app.add_typer(release_app, name="release")


@contextmanager
def _bridge_database(config: Path | None) -> Iterator[tuple[BridgeSettings, Engine]]:
    """The bridge's settings and its migrated database, for commands run beside the bridge."""
    from cloud_bridge.settings import BridgeSettings
    from cloud_bridge.store import migrate
    from runtime.db import create_durable_engine

    try:
        settings = BridgeSettings.from_file(config)
    except ConfigError as error:
        raise _fail(str(error)) from None
    engine = create_durable_engine(settings.database_url)
    try:
        migrate(engine)
        yield settings, engine
    finally:
        engine.dispose()


keys_app = typer.Typer(help="The key pair that seals residents' readings from kiosk to bridge.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@tokens_app.command("revoke")
def tokens_revoke(
    username: Annotated[str, typer.Argument(help="every token of this user stops working (sessions and scripts')")],
    config: ConfigOption = None,
) -> None:
    """Revoke every token of USERNAME now, e.g. after one leaked. The user can log in again."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from cloud_bridge.accounts import User, audit, revoke_all

    now = datetime.now(UTC)
    with _bridge_database(config) as (_settings, engine), Session(engine) as session:
        if session.get(User, username) is None:
            raise _fail(f"no user {username!r}")
        count = revoke_all(session, username, now)
        audit(session, actor="cli", action="token_revoke", target=username, result="ok", now=now, revoked=count)
        session.commit()
    typer.echo(f"revoked {count} token(s) of {username}")


@keys_app.command("create")
def keys_create(
    out: Annotated[Path, typer.Option(help="directory for the private key (payload.key, mode 0600)")] = Path("."),
) -> None:
    """Write a new private key for the bridge (its `payload_keys`) and print the public key for
    every kiosk's `payload_public_key`. Keep the private key on the bridge's machines only."""
    from contract.sealing import write_key_pair

    try:
        path, public = write_key_pair(out)
    except FileExistsError:
        raise _fail(f"{out / 'payload.key'} exists: not overwritten (rotating? create the new one elsewhere)") from None
    typer.echo(f"private key (bridge, payload_keys): {path}", err=True)
    typer.echo(public)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="lowercase letters, digits, '.', '_', '-'")],
    role: Annotated[str, typer.Option(help="technician, station_staff, doctor or read_only")],
    site: Annotated[str | None, typer.Option(help="the site of a station_staff or doctor")] = None,
    config: ConfigOption = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")] = False,
) -> None:
    """Add a person who logs in with a password (asked for twice, or read from stdin)."""
    import sys
    from datetime import UTC, datetime

    from pydantic import ValidationError
    from sqlmodel import Session

    from cloud_bridge.access import Role
    from cloud_bridge.accounts import AccountError, add_user, audit

    try:
        chosen = Role(role)
    except ValueError:
        raise _fail(f"--role: one of {', '.join(r.value for r in Role)}") from None
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True,
                                                                                    confirmation_prompt=True)
    if len(password) < 10:
        raise _fail("a password of at least 10 characters, please")
    now = datetime.now(UTC)
    with _bridge_database(config) as (_settings, engine), Session(engine) as session:
        try:
            add_user(session, username=username, role=chosen, site=site, password=password, now=now)
        except (AccountError, ValidationError) as error:
            raise _fail(f"{username}: {error}") from None
        audit(session, actor="cli", action="user_add", target=username, result="ok", now=now, role=chosen.value, site=site)
        session.commit()
    typer.echo(f"added {username} ({chosen.value}{' of ' + site if site else ''})")


@tokens_app.command("create")
def tokens_create(
    username: Annotated[str, typer.Argument(help="the user the token acts as (see `doorstep users add`)")],
    label: Annotated[str | None, typer.Option(help="what it is for, e.g. 'prometheus'")] = None,
    days: Annotated[float | None, typer.Option(help="expires after this many days (default: never)")] = None,
    config: ConfigOption = None,
) -> None:
    """Print a new API token for USERNAME. It is shown once: only its hash is kept."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from cloud_bridge.accounts import User, audit, issue_token

    now = datetime.now(UTC)
    with _bridge_database(config) as (settings, engine), Session(engine) as session:
        if session.get(User, username) is None:
            raise _fail(f"no user {username!r}: add one with `doorstep users add`")
        token, _row = issue_token(session, settings.secret_key.get_secret_value(), username=username, purpose="api",
                                  now=now, lifetime=timedelta(days=days) if days else None, label=label)
        audit(session, actor="cli", action="token_create", target=username, result="ok", now=now, label=label)
        session.commit()
    typer.echo(token)


@app.command()
def decode(
    characteristic: Annotated[str, typer.Argument(
        help="16-bit UUID such as 2a35, or the full 128-bit UUID; or omron-record, omron-adv")],
    hex_bytes: Annotated[str, typer.Argument(metavar="HEX", help="the value's bytes in hex, e.g. '1e7800520061000000'")],
    model: Annotated[str | None, typer.Option(help="omron-record: the cuff's profile, e.g. hem-7142t2")] = None,
) -> None:
    """Decode one Bluetooth characteristic value to JSON (exit 0), or print a one-line error (exit 1).

    Field names are the Bluetooth SIG's in snake_case; an absent optional field is null; a
    special value (NaN, NRes, ...) is null and named under "special_values". An Omron record
    (omron-record --model M) prints with the same blood-pressure fields; omron-adv takes Omron's
    manufacturer data (company 0x020E) without the company id.
    """
    from drivers.ble.characteristics import parse_hex
    from drivers.ble.errors import DecodeError

    try:
        decoded = _decode_value(characteristic, parse_hex(hex_bytes), model)
    except (ValueError, DecodeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(decoded, ensure_ascii=False))


def _decode_value(kind: str, data: bytes, model: str | None) -> dict[str, object]:
    from drivers.ble.characteristics import codec_for

    if kind == "omron-record":
        from drivers.ble.blood_pressure import to_json_dict
        from drivers.ble.omron.records import decode_record
        from firmware_configs.profiles import load_ble_profiles

        profile = load_ble_profiles().get(model or "")
        if profile is None or profile.omron_memory is None:
            known = sorted(name for name, p in load_ble_profiles().items() if p.omron_memory is not None)
            raise ValueError(f"--model: one of {', '.join(known)}")
        return to_json_dict(decode_record(data, profile.omron_memory.record))
    if kind == "omron-adv":
        from drivers.ble.omron.advertisement import decode_omron_advertisement, to_json_dict as adv_json

        return adv_json(decode_omron_advertisement(data))
    codec = codec_for(kind)
    return codec.to_json(codec.decode(data))


export_app = typer.Typer(help="Readings out of the bridge for other systems (a regional platform's batch upload).",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("fhir")
def export_fhir(
    config: ConfigOption = None,
    site: Annotated[str | None, typer.Option(help="one site (default: every site)")] = None,
    since: Annotated[str | None, typer.Option(help="readings from this date or instant on, e.g. 2026-12-01")] = None,
    output: Annotated[Path | None, typer.Option(help="write to this file (default: standard output)")] = None,
) -> None:
    """Write residents' readings as FHIR R4 NDJSON, one resource a line: the Patients (by
    pseudonym), the kiosks and devices, then the Observations, oldest first, then each resident's
    home blood-pressure average (as the doctor's page shows it). Exit 0 when
    written; a one-line error and exit 1 for a bad configuration, site or date."""
    import os
    import sys

    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from zoneinfo import ZoneInfo

    from cloud_bridge.fhir.search import Averaging, SearchError, export, known_sites, start_of
    from cloud_bridge.settings import BridgeSettings
    from contract.clinical import dangerous_line
    from runtime.db import create_durable_engine

    def refuse(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code=1)

    try:
        settings = BridgeSettings.from_file(config)
        start = start_of(since) if since is not None else None
    except (ConfigError, SearchError) as error:
        raise refuse(str(error).replace("\n", "; ").replace("date:", "--since:", 1)) from None
    guideline = settings.blood_pressure_guideline
    # The home averages as the bridge's API computes them (cloud_bridge/service.py builds its context so).
    averaging = Averaging(guideline, dangerous_line(guideline, settings.alerts.dangerous_blood_pressure),
                          ZoneInfo(settings.time_zone))
    engine = create_durable_engine(settings.database_url)
    # Written beside the file and moved into place: a failed export leaves no half file behind.
    partial = None if output is None else output.with_name(output.name + ".partial")
    try:
        with Session(engine) as session:
            if site is not None and site not in known_sites(session):
                raise refuse(f"--site: no site {site!r} at this bridge")
            stream = sys.stdout if partial is None else partial.open("w", encoding="utf-8")
            try:
                for resource in export(session, site, start, averaging):
                    stream.write(resource.model_dump_json() + "\n")
            finally:
                if partial is not None:
                    stream.close()
        if partial is not None and output is not None:
            os.replace(partial, output)
    except SQLAlchemyError as error:
        raise refuse(f"the bridge's database: {str(error).splitlines()[0]}") from None
    except OSError as error:
        raise refuse(f"--output: {error}") from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        engine.dispose()


config_app = typer.Typer(help="Check configuration files before a kiosk or the bridge loads them.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("validate")
def config_validate(
    files: Annotated[list[Path], typer.Argument(help="agent or bridge configurations, device profiles, register maps")],
) -> None:
    """Check each file; print what it is, or every problem as 'file: field: problem'. Exit 1 if any."""
    from doorstep.config_validate import validate_file

    failed = False
    for path in files:
        what, problems = validate_file(path)
        if problems:
            failed = True
            for problem in problems:
                typer.echo(problem, err=True)
        else:
            typer.echo(f"{path}: valid {what}")
    if failed:
        raise typer.Exit(code=1)


@app.command()
def doctor(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per check, for scripts")] = False,
) -> None:
    """Check this kiosk: Bluetooth, the laundry line, the broker (with these credentials), the
    clock, the disk, the outbox and the running agent's scheduled jobs. Exit 1 if any check fails."""
    from edge_agent.doctor import Verdict, examine, exit_code
    from edge_agent.settings import AgentSettings

    try:
        settings = AgentSettings.from_file(config)
    except ConfigError as error:
        raise _fail(str(error)) from None
    checks = examine(settings)
    marks = {Verdict.OK: "ok  ", Verdict.WARNING: "WARN", Verdict.FAILED: "FAIL", Verdict.SKIPPED: "-   "}
    for check in checks:
        if as_json:
            typer.echo(json.dumps(check.as_json(), ensure_ascii=False))
        else:
            typer.echo(f"{marks[check.verdict]} {check.name:<22} {check.detail}")
    raise typer.Exit(code=exit_code(checks))


@app.command()
def scan(timeout: Annotated[float, typer.Option(help="seconds to listen")] = 5.0) -> None:
    """List Bluetooth devices nearby and the model profile each matches (to fill in `devices:`)."""
    from drivers.ble.discovery import ScanFailedError, discover
    from firmware_configs.profiles import load_ble_profiles

    try:
        found = asyncio.run(discover(list(load_ble_profiles().values()), timeout=timeout))
    except ScanFailedError as error:
        typer.echo(f"error: {error} (is this a machine with a Bluetooth adapter and BlueZ running?)", err=True)
        raise typer.Exit(code=1) from None
    for device in found:
        model = device.model or "-"
        typer.echo(f"{device.address}  {device.rssi if device.rssi is not None else '?':>4} dBm  {model:<22} {device.name or ''}")


@app.command()
def simulate(
    kiosks: Annotated[int, typer.Option("--kiosks", "-n", min=1, help="how many kiosks, each its own MQTT connection")] = 10,
    minutes: Annotated[float, typer.Option(min=0, help="how long they send; then what is owed is drained")] = 1.0,
    broker: Annotated[str, typer.Option(help="the broker as host:port")] = "127.0.0.1:1883",
    username: Annotated[str | None, typer.Option(help="broker username, shared by all simulated kiosks: for a test broker "
                                                 "that does not make the client id the username (the shipped "
                                                 "configuration does: they would take each other's session)")] = None,
    password: Annotated[str | None, typer.Option(help="broker password", envvar="DOORSTEP_SIMULATE_PASSWORD")] = None,
    site: Annotated[str, typer.Option(help="site id prefix: kiosks go 50 to a site, SITE-1, SITE-2, ...")] = "sim",
    payload_public_key: Annotated[
        str | None, typer.Option(help="the bridge's payload key (doorstep keys create): readings are sealed for it")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="the same seed, the same fleet and the same random mix")] = None,
) -> None:
    """Simulate a fleet of kiosks against a broker and bridge: telemetry every 30 s, readings,
    laundry events, each message re-sent until the bridge's ack. Exit 1 if any stayed unconfirmed."""
    import time

    from pydantic import SecretStr

    from runtime.mqtt import BrokerSettings
    from doorstep.simulate import Fleet, summary

    _setup_logging("warning")
    host, _, port = broker.rpartition(":")
    if not host or not port.isdigit():
        raise _fail(f"--broker {broker}: host:port, e.g. 127.0.0.1:1883")
    settings = BrokerSettings(host=host, port=int(port), username=username,
                              password=SecretStr(password) if password is not None else None)
    fleet = Fleet(settings, kiosks, site=site, payload_public_key=payload_public_key, seed=seed)
    last = 0.0

    def tick(running: Fleet, elapsed: float) -> None:
        nonlocal last
        if elapsed - last >= 10:
            last = elapsed
            stats = running.stats
            typer.echo(f"{elapsed:5.0f} s  {stats.connected}/{stats.kiosks} connected  sent {stats.minted}  "
                       f"confirmed {stats.confirmed}  owed {stats.unconfirmed}  re-sends {stats.resent}", err=True)

    typer.echo(f"simulating {kiosks} kiosks against {broker} for {minutes:g} min (seed {fleet.seed})", err=True)
    started = time.monotonic()
    stats = fleet.run(minutes * 60, on_tick=tick)
    typer.echo(summary(stats, time.monotonic() - started))
    if stats.unconfirmed:
        raise typer.Exit(code=1)


@app.command()
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="where the demo keeps its broker data and databases (default: a new temp dir)")
    ] = None,
    http_port: Annotated[int, typer.Option(help="the bridge API's port (0: any free port)")] = 8080,
) -> None:
    """Run a broker, a bridge and an agent with a simulated blood-pressure cuff. Ctrl-C stops all."""
    from doorstep.demo import run_demo

    _setup_logging("info")
    run_demo(workdir, http_port)


if __name__ == "__main__":
    app()
