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

from broker_admin import access
from broker_admin.access import BrokerAccessError
from doorstep.cli import app
from runtime.mqtt import BrokerSettings, TlsSettings
from edge_agent.store.outbox import RecordClass
from tests.shipped_broker import ADMIN_PASSWORD, shipped_broker
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
    pki, dynsec, admin_password = tmp_path / "pki", tmp_path / "dynamic-security.json", tmp_path / "admin.password"
    doorstep("new-ca", "--pki", pki, "--name", "Doorstep test")
    doorstep("server-cert", "--pki", pki, "--host", "localhost", "--host", "127.0.0.1")
    doorstep("init", "--dynsec", dynsec, "--admin-password-file", admin_password)
    for secret in (dynsec, admin_password, pki / "ca.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    doorstep("kiosk-cert", SITE, "kiosk-2", "--pki", pki)

    broker = shipped_broker(tmp_path, pki=pki, dynsec_file=dynsec)
    broker.process.start()
    try:
        config = broker.config
        # Accounts are made on the running broker, in force at once: no reload.
        accounts = ("--broker-port", str(config.port), "--admin-password-file", admin_password)
        kiosk_password = shown_password(doorstep("add-kiosk", SITE, KIOSK, *accounts))
        doorstep("add-kiosk", SITE, "kiosk-2", "--no-password", *accounts)
        bridge_password = shown_password(doorstep("add-bridge", "bridge-1", *accounts))
        assert doorstep("list", *accounts).splitlines() == [
            "bridge-1\tbridge worker\tpassword", f"{SITE}.{KIOSK}\tkiosk\tpassword", f"{SITE}.kiosk-2\tkiosk\tcertificate"]
        assert doorstep("update-rules", *accounts).startswith("0 account(s) given new rules")  # all current
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
        assert f"removed {SITE}.kiosk-2" in doorstep("remove", f"{SITE}.kiosk-2", *accounts)
        assert [line.split("\t")[0] for line in doorstep("list", *accounts).splitlines()] == ["bridge-1", f"{SITE}.{KIOSK}"]
    finally:
        broker.process.stop()


LEGACY_ACL_HEADER = "# Doorstep's broker ACL, written by `doorstep broker add-kiosk` (before the plugin)\n"


@pytest.mark.asyncio
async def test_an_old_password_file_and_acl_are_imported_with_every_password_kept(
    tmp_path: Path, bridge_factory: Any
) -> None:
    """Upgrading a broker host: the password file (here from mosquitto_passwd itself) and the ACL
    of before become plugin accounts with the same passwords and this version's rules."""
    passwd, acl = tmp_path / "doorstep.passwd", tmp_path / "doorstep.acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), f"{SITE}.{KIOSK}", "old kiosk secret"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "bridge-1", "old bridge secret"], check=True)
    acl.write_text(LEGACY_ACL_HEADER + f"\n# bridge worker bridge-1\nuser bridge-1\ntopic read doorstep/v1/#\n"
                   f"\n# kiosk\nuser {SITE}.{KIOSK}\ntopic write doorstep/v1/{SITE}/{KIOSK}/status\n"
                   f"\nuser {SITE}.kiosk-2\ntopic write doorstep/v1/{SITE}/kiosk-2/status\n")
    broker = shipped_broker(tmp_path)
    result = doorstep("import-legacy", "--dynsec", broker.dynsec_file, "--passwd", passwd, "--acl", acl)
    assert f"imported 3 account(s) into {broker.dynsec_file}: bridge-1, {SITE}.{KIOSK}, {SITE}.kiosk-2" in result
    broker.process.start()
    try:
        with broker.admin() as admin:
            assert [(a.username, a.login) for a in access.accounts(admin)] == [
                ("bridge-1", "password"), (f"{SITE}.{KIOSK}", "password"), (f"{SITE}.kiosk-2", "certificate")]
        bridge = bridge_factory(broker.process, broker_settings=BrokerSettings(
            host="127.0.0.1", port=broker.config.port, username="bridge-1", password="old bridge secret",  # type: ignore[arg-type]
            reconnect_min_s=1, reconnect_max_s=1))
        kiosk = BrokerSettings(host="127.0.0.1", port=broker.config.tls_port, username=f"{SITE}.{KIOSK}",
                               password="old kiosk secret", tls=TlsSettings(ca_file=broker.ca.cert_file),  # type: ignore[arg-type]
                               reconnect_min_s=1, reconnect_max_s=1)
        settings = agent_settings(tmp_path / "a", broker.process).model_copy(update={"broker": kiosk})
        async with running_agent(settings, cuff_backends()) as agent:
            # Its reading needs this version's rules (the old ACL gave it only its status).
            await wait_until(lambda: bridge.reading_count() == 1, what="a reading with the old password")
            await wait_until(lambda: agent.outbox.depth()[RecordClass.HEALTH][0] == 0, what="the ack")  # type: ignore[union-attr]
    finally:
        broker.process.stop()


def test_a_hand_written_acl_is_not_imported(tmp_path: Path) -> None:
    broker = shipped_broker(tmp_path)
    before = broker.dynsec_file.read_text()
    acl, passwd = tmp_path / "acl", tmp_path / "passwd"
    passwd.write_text("")
    for text in ("pattern write doorstep/v1/%u/#\n", "topic read doorstep/v1/#\n"):  # a pattern; anonymous rules
        acl.write_text(text)
        with pytest.raises(BrokerAccessError, match="line 1"):
            access.import_legacy(broker.dynsec_file, passwd=passwd, acl=acl)
    assert broker.dynsec_file.read_text() == before


def test_names_that_cannot_be_accounts_are_refused_by_name(tmp_path: Path) -> None:
    broker = shipped_broker(tmp_path)
    secret = tmp_path / "admin.password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    broker.process.start()
    try:
        accounts = ("--broker-port", str(broker.config.port), "--admin-password-file", str(secret))
        for args, problem in (
            (["add-kiosk", "Pudong", "k1", *accounts], "site id 'Pudong' is not a slug"),
            (["add-kiosk", "pudong", "kiosk.7", *accounts], "kiosk id 'kiosk.7' is not a slug"),
            (["add-bridge", "site.kiosk", *accounts], "no '.'"),
            (["remove", "nobody", *accounts], "no account 'nobody'"),
            (["kiosk-cert", "pudong", "k1", "--pki", str(tmp_path / "none")], "no CA in"),
            (["add-kiosk", "pudong", "k1", "--broker-port", str(broker.config.port), "--admin-password-file",
              str(tmp_path / "none")], "cannot read the admin's password"),
        ):
            result = runner.invoke(app, ["broker", *args])
            assert result.exit_code == 1 and problem in result.output, (args, result.output)
        with broker.admin() as admin:
            assert access.accounts(admin) == []
    finally:
        broker.process.stop()


def test_a_ca_is_never_replaced(tmp_path: Path) -> None:
    doorstep("new-ca", "--pki", tmp_path, "--name", "first")
    before = (tmp_path / "ca.key").read_bytes()
    result = runner.invoke(app, ["broker", "new-ca", "--pki", str(tmp_path), "--name", "second"])
    assert result.exit_code == 1 and "refusing to replace it" in result.output
    assert (tmp_path / "ca.key").read_bytes() == before
