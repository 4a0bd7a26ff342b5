"""`doorstep broker`, as a technician sets up a broker: its CA, certificates and accounts, then the
shipped broker configuration started with exactly those files, and real agents delivering
through it (one with a password, one with a certificate) to a bridge worker on loopback."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from doorstep import broker_access
from doorstep.broker_access import BrokerAccessError
from doorstep.cli import app
from doorstep.mqtt import BrokerSettings, TlsSettings
from edge_agent.outbox import RecordClass
from tests.shipped_broker import shipped_broker
from tests.support import KIOSK, SITE, agent_settings, running_agent, wait_until
from tests.test_end_to_end import cuff_backends

runner = CliRunner()


def doorstep(*args: str | Path) -> str:
    result = runner.invoke(app, ["broker", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def shown_password(output: str) -> str:
    [password] = re.findall(r"password \(shown once, kept nowhere else\): (\S+)", output)
    return password


@pytest.mark.asyncio
async def test_what_doorstep_broker_makes_is_what_the_shipped_broker_and_the_agent_use(
    tmp_path: Path, bridge_factory: Any
) -> None:
    pki, passwd, acl = tmp_path / "pki", tmp_path / "doorstep.passwd", tmp_path / "doorstep.acl"
    doorstep("new-ca", "--pki", pki, "--name", "Doorstep test")
    doorstep("server-cert", "--pki", pki, "--host", "localhost", "--host", "127.0.0.1")
    accounts = ("--passwd", passwd, "--acl", acl)
    kiosk_password = shown_password(doorstep("add-kiosk", SITE, KIOSK, *accounts))
    doorstep("kiosk-cert", SITE, "kiosk-2", "--pki", pki)
    doorstep("add-kiosk", SITE, "kiosk-2", "--no-password", *accounts)
    bridge_password = shown_password(doorstep("add-bridge", "bridge-1", *accounts))
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o640 and stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600

    broker = shipped_broker(tmp_path, pki=pki, passwd=passwd, acl=acl)
    broker.process.start()
    try:
        config = broker.config
        bridge = bridge_factory(broker.process, broker_settings=BrokerSettings(
            host="127.0.0.1", port=config.port, username="bridge-1", password=bridge_password,  # type: ignore[arg-type]
            reconnect_min_s=1, reconnect_max_s=1))
        tls = TlsSettings(ca_file=pki / "ca.crt")
        with_password = BrokerSettings(host="127.0.0.1", port=config.tls_port, username=f"{SITE}.{KIOSK}",
                                       password=kiosk_password, tls=tls, reconnect_min_s=1, reconnect_max_s=1)  # type: ignore[arg-type]
        kiosks = pki / "kiosks"
        with_certificate = BrokerSettings(
            host="127.0.0.1", port=config.certificate_port, reconnect_min_s=1, reconnect_max_s=1,
            tls=TlsSettings(ca_file=pki / "ca.crt", cert_file=kiosks / f"{SITE}.kiosk-2.crt",
                            key_file=kiosks / f"{SITE}.kiosk-2.key"))
        first = agent_settings(tmp_path / "a", broker.process).model_copy(update={"broker": with_password})
        second = agent_settings(tmp_path / "b", broker.process).model_copy(update={"broker": with_certificate, "kiosk": "kiosk-2"})
        async with running_agent(first, cuff_backends()) as one, running_agent(second, cuff_backends()) as two:
            await wait_until(lambda: bridge.reading_count() == 2, what="a reading from each kiosk")
            for agent in (one, two):  # the bridge's acks reached each, through its read rules
                await wait_until(lambda: agent.outbox.depth()[RecordClass.HEALTH][0] == 0, what="the ack")  # type: ignore[union-attr]
        assert {reading.kiosk for reading in bridge.readings()} == {KIOSK, "kiosk-2"}
    finally:
        broker.process.stop()


def test_a_password_file_from_mosquitto_passwd_is_kept_and_ours_is_read_by_it(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "legacy", "old secret"], check=True)
    legacy_line = passwd.read_text()
    broker_access.set_password(passwd, "site-a.kiosk-1", "new secret")
    assert legacy_line in passwd.read_text()
    # mosquitto_passwd rewrites the file it reads: it parses our hashes as its own.
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "legacy", "newer secret"], check=True)
    assert broker_access.password_usernames(passwd) == {"legacy", "site-a.kiosk-1"}
    assert broker_access.remove_password(passwd, "legacy") and not broker_access.remove_password(passwd, "legacy")


def test_a_hand_written_acl_is_not_rewritten(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("pattern write doorstep/v1/%u/#\n")
    with pytest.raises(BrokerAccessError, match="line 1"):
        broker_access.allow(acl, "site-a.kiosk-1")
    acl.write_text("topic read doorstep/v1/#\n")  # rules for anonymous clients
    with pytest.raises(BrokerAccessError, match="line 1"):
        broker_access.allow(acl, "site-a.kiosk-1")
    assert acl.read_text() == "topic read doorstep/v1/#\n"


def test_names_that_cannot_be_accounts_are_refused_by_name(tmp_path: Path) -> None:
    accounts = ("--passwd", str(tmp_path / "p"), "--acl", str(tmp_path / "a"))
    for args, problem in (
        (["add-kiosk", "Pudong", "k1", *accounts], "site id 'Pudong' is not a slug"),
        (["add-kiosk", "pudong", "kiosk.7", *accounts], "kiosk id 'kiosk.7' is not a slug"),
        (["add-bridge", "site.kiosk", *accounts], "no '.'"),
        (["remove", "nobody", *accounts], "no account 'nobody'"),
        (["kiosk-cert", "pudong", "k1", "--pki", str(tmp_path / "none")], "no CA in"),
    ):
        result = runner.invoke(app, ["broker", *args])
        assert result.exit_code == 1 and problem in result.output, (args, result.output)
    assert not (tmp_path / "p").exists() and not (tmp_path / "a").exists()


def test_a_ca_is_never_replaced(tmp_path: Path) -> None:
    doorstep("new-ca", "--pki", tmp_path, "--name", "first")
    before = (tmp_path / "ca.key").read_bytes()
    result = runner.invoke(app, ["broker", "new-ca", "--pki", str(tmp_path), "--name", "second"])
    assert result.exit_code == 1 and "refusing to replace it" in result.output
    assert (tmp_path / "ca.key").read_bytes() == before
