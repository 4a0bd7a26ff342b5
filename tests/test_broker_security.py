"""TLS and passwords against a real Mosquitto: the kiosk connects only as configured, and a
wrong certificate or password is a clear error, never a silent retry or a plaintext fallback."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import re
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func
from sqlmodel import Session, select

from cloud_bridge.store import Telemetry

from broker_admin.check import check_broker
from broker_admin.mosquitto import BrokerTlsFiles, MosquittoProcess
from runtime.mqtt import BrokerSettings, TlsSettings, reconnect_delay_s
from edge_agent.store.outbox import RecordClass, RecordState
from tests.support import agent_settings, running_agent, wait_until
from tests.test_doctor import doctor_json
from tests.test_end_to_end import cuff_backends
from tests.tls_material import CertificateAuthority


@pytest.fixture
def site_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki", "site-ca")


def tls_broker(tmp_path: Path, ca: CertificateAuthority, *, require_certificate: bool = False) -> MosquittoProcess:
    server = ca.issue("broker", "127.0.0.1", server=True)
    files = BrokerTlsFiles(ca.issued.cert, server.cert, server.key, require_certificate=require_certificate)
    return MosquittoProcess.on_free_port(tmp_path / "broker-tls", tls=files)


@pytest.fixture
def started(request: pytest.FixtureRequest) -> Iterator[list[MosquittoProcess]]:
    brokers: list[MosquittoProcess] = []
    yield brokers
    for broker in brokers:
        broker.stop()


def doctor_checks(config: Path) -> dict[str, dict[str, str]]:
    _code, checks = doctor_json(config)
    return checks


def settings_for(broker: MosquittoProcess, **fields: object) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=2, **fields)  # type: ignore[arg-type]


def test_tls_with_the_site_ca_connects_and_anything_else_is_named(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess]
) -> None:
    broker = tls_broker(tmp_path, site_ca)
    broker.start()
    started.append(broker)
    good = check_broker(settings_for(broker, tls=TlsSettings(ca_file=site_ca.issued.cert)), "kiosk-1")
    assert good.ok and "over TLS" in good.detail
    rogue = CertificateAuthority(tmp_path / "rogue", "rogue-ca")
    bad = check_broker(settings_for(broker, tls=TlsSettings(ca_file=rogue.issued.cert)), "kiosk-1")
    assert not bad.ok and "certificate is not trusted" in bad.detail
    plain = check_broker(settings_for(broker), "kiosk-1", timeout_s=2)
    assert not plain.ok and "set broker.tls" in plain.detail


def test_a_broker_certificate_for_another_host_is_refused(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess]
) -> None:
    """Signed by the kiosk's own CA, but not for the host the kiosk dialled (RFC 6125): a broker
    that took another broker's certificate and key, or a name that resolves elsewhere."""
    other = site_ca.authority.issue_server(["mqtt.other-district.example.cn"], stem="other-broker")
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-other", tls=BrokerTlsFiles(site_ca.issued.cert, other.cert, other.key))
    broker.start()
    started.append(broker)
    check = check_broker(settings_for(broker, tls=TlsSettings(ca_file=site_ca.issued.cert)), "kiosk-1")
    assert not check.ok and "certificate is not trusted" in check.detail and "mismatch" in check.detail, check.detail


def test_a_kiosk_certificate_cannot_pose_as_the_broker(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess]
) -> None:
    """A key stolen from a kiosk, even in a certificate naming the broker's host: its extended key
    usage is TLS client only (broker_admin/pki.py), and a kiosk checks the purpose of what it is shown."""
    now = datetime.datetime.now(datetime.UTC)
    authority = site_ca.authority
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(authority.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "posing.crt", tmp_path / "posing.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-posing", tls=BrokerTlsFiles(site_ca.issued.cert, cert_file, key_file))
    broker.start()
    started.append(broker)
    check = check_broker(settings_for(broker, tls=TlsSettings(ca_file=site_ca.issued.cert)), "kiosk-1")
    assert not check.ok and "unsuitable certificate purpose" in check.detail, check.detail


def test_a_broker_that_requires_client_certificates(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess]
) -> None:
    broker = tls_broker(tmp_path, site_ca, require_certificate=True)
    broker.start()
    started.append(broker)
    kiosk = site_ca.issue("kiosk-1", "pudong-lujiazui-kiosk-07", server=False)
    with_cert = TlsSettings(ca_file=site_ca.issued.cert, cert_file=kiosk.cert, key_file=kiosk.key)
    assert check_broker(settings_for(broker, tls=with_cert), "kiosk-1").ok
    without = check_broker(settings_for(broker, tls=TlsSettings(ca_file=site_ca.issued.cert)), "kiosk-1", timeout_s=2)
    assert not without.ok


def test_a_wrong_password_is_refused_by_name(tmp_path: Path, started: list[MosquittoProcess]) -> None:
    password_file = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(password_file), "kiosk-07", "right horse"], check=True)
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-pw", password_file=password_file)
    broker.start()
    started.append(broker)
    assert check_broker(settings_for(broker, username="kiosk-07", password="right horse"), "kiosk-1").ok
    wrong = check_broker(settings_for(broker, username="kiosk-07", password="battery staple"), "kiosk-1")
    # Mosquitto 2 answers a wrong password with "Not authorized" under MQTT 5.
    assert not wrong.ok and "refused this client" in wrong.detail and "broker.password" in wrong.detail
    anonymous = check_broker(settings_for(broker), "kiosk-1")
    assert not anonymous.ok and "refused" in anonymous.detail


@pytest.mark.asyncio
# paho 2.1 does not close the socket of a failed TLS handshake before retrying (its
# _create_socket): the leak is paho's, once per attempt, and not what this test is about.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_agent_delivers_over_tls_and_says_why_it_cannot_with_the_wrong_ca(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess], bridge_factory: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = tls_broker(tmp_path, site_ca)
    broker.start()
    started.append(broker)
    tls = TlsSettings(ca_file=site_ca.issued.cert)
    bridge = bridge_factory(broker, broker_settings=settings_for(broker, tls=tls))  # type: ignore[operator]
    good = agent_settings(tmp_path / "good", broker).model_copy(update={"broker": settings_for(broker, tls=tls)})
    async with running_agent(good, cuff_backends()):
        await wait_until(lambda: bridge.reading_count() == 1, what="a reading over TLS")
    rogue = CertificateAuthority(tmp_path / "rogue", "rogue-ca")
    bad = agent_settings(tmp_path / "bad", broker).model_copy(
        update={"broker": settings_for(broker, tls=TlsSettings(ca_file=rogue.issued.cert))}
    )
    with caplog.at_level(logging.ERROR, logger="edge_agent.uplink"):
        async with running_agent(bad, cuff_backends()) as agent:
            await wait_until(lambda: "certificate is not trusted" in caplog.text, what="a clear TLS error in the log")
            assert agent.uplink is not None and not agent.uplink.connected
    assert bridge.reading_count() == 1  # nothing arrived by any other way


@pytest.mark.asyncio
# paho 2.1 leaks the socket of each failed TLS handshake (see above).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_agent_refuses_a_broker_certificate_for_another_host(
    tmp_path: Path, site_ca: CertificateAuthority, started: list[MosquittoProcess], caplog: pytest.LogCaptureFixture,
) -> None:
    other = site_ca.authority.issue_server(["mqtt.other-district.example.cn"], stem="other-broker")
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-other", tls=BrokerTlsFiles(site_ca.issued.cert, other.cert, other.key))
    broker.start()
    started.append(broker)
    settings = agent_settings(tmp_path, broker).model_copy(
        update={"broker": settings_for(broker, tls=TlsSettings(ca_file=site_ca.issued.cert))}
    )
    with caplog.at_level(logging.ERROR, logger="edge_agent.uplink"):
        async with running_agent(settings, cuff_backends()) as agent:
            await wait_until(lambda: "certificate is not trusted" in caplog.text and "mismatch" in caplog.text,
                             what="the host-name mismatch in the log")
            assert agent.uplink is not None and not agent.uplink.connected
            assert agent.outbox is not None
            await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the reading kept")  # type: ignore[union-attr]


def test_reconnect_delays_grow_are_capped_and_spread() -> None:
    rng = random.Random(7)
    delays = [reconnect_delay_s(attempt, 1, 60, rng) for attempt in range(12)]
    assert all(min(60, 2**a) / 2 <= d <= min(60, 2**a) for a, d in enumerate(delays))
    assert max(delays) <= 60
    spread = {round(reconnect_delay_s(5, 1, 60, random.Random(seed)), 1) for seed in range(50)}
    assert len(spread) > 20  # a district's kiosks do not all come back at the same second


KIOSK_ACL_DENYING_READINGS = """user kiosk-07
topic write doorstep/v1/test-site/kiosk-1/status
topic write doorstep/v1/test-site/kiosk-1/telemetry
topic read doorstep/v1/test-site/kiosk-1/acks
topic read doorstep/v1/test-site/kiosk-1/commands/+

user bridge
topic readwrite doorstep/#
"""
KIOSK_ACL = KIOSK_ACL_DENYING_READINGS.replace("/status\n", "/status\ntopic write doorstep/v1/test-site/kiosk-1/readings/+\n")


def telemetry_count(bridge: Any) -> int:
    with Session(bridge.engine) as session:
        return int(session.exec(select(func.count()).select_from(Telemetry)).one())


@pytest.mark.asyncio
async def test_a_publish_the_acl_refuses_is_not_taken_as_sent(
    tmp_path: Path, bridge_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT 5's PUBACK says "Not authorized" (3.1.1 would PUBACK success and drop it): the
    record stays pending, and is delivered once the ACL allows it. Meanwhile the streams the
    ACL allows go on: with a window of one, a refused reading must not hold telemetry back."""
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk-07", "kiosk pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bridge", "bridge pass"], check=True)
    acl.write_text(KIOSK_ACL_DENYING_READINGS)
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-acl", password_file=passwords, acl_file=acl)
    broker.start()
    try:
        bridge = bridge_factory(broker, broker_settings=settings_for(broker, username="bridge", password="bridge pass"))  # type: ignore[operator]
        settings = agent_settings(tmp_path, broker).model_copy(
            update={"broker": settings_for(broker, username="kiosk-07", password="kiosk pass"),
                    "inflight_window": 1, "telemetry_every_s": 0.3}
        )
        with caplog.at_level(logging.ERROR, logger="edge_agent.uplink"):
            async with running_agent(settings, cuff_backends()) as agent:
                await wait_until(lambda: "Not authorized" in caplog.text, what="the refusal in the log")
                assert agent.outbox is not None
                await wait_until(lambda: telemetry_count(bridge) >= 3, what="telemetry past the refused reading")
                assert agent.outbox.depth()[RecordClass.HEALTH][0] == 1 and bridge.reading_count() == 0
                acl.write_text(KIOSK_ACL)
                broker.kill()
                broker.start()
                await wait_until(lambda: bridge.reading_count() == 1, timeout=30, what="the reading, once allowed")
                await wait_until(lambda: agent.outbox.depth()[RecordClass.HEALTH][0] == 0, what="its ack")  # type: ignore[union-attr]
        assert re.search(r"broker refused record seq \d+ on doorstep/v1/test-site/kiosk-1/readings/blood_pressure: "
                         r"Not authorized", caplog.text)
    finally:
        broker.stop()


@pytest.mark.asyncio
async def test_the_agent_logs_a_wrong_password_by_name(
    tmp_path: Path, started: list[MosquittoProcess], caplog: pytest.LogCaptureFixture
) -> None:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk-07", "right horse"], check=True)
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-pw", password_file=passwords)
    broker.start()
    started.append(broker)
    settings = agent_settings(tmp_path, broker, with_cuff=False).model_copy(
        update={"broker": settings_for(broker, username="kiosk-07", password="battery staple")}
    )
    with caplog.at_level(logging.ERROR, logger="edge_agent.uplink"):
        async with running_agent(settings):
            await wait_until(lambda: "broker refused the connection: Not authorized" in caplog.text)


@pytest.mark.asyncio
# paho 2.1 leaks the socket of each failed TLS handshake (see above).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_kiosk_configured_for_tls_never_falls_back_to_plaintext(
    tmp_path: Path, site_ca: CertificateAuthority, running_broker: MosquittoProcess, bridge_factory: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plaintext broker (a misconfigured port, or someone in the middle offering no TLS): the
    agent fails the handshake, says so, and sends nothing; doctor says the same."""
    bridge = bridge_factory(running_broker)  # type: ignore[operator]
    tls = TlsSettings(ca_file=site_ca.issued.cert)
    settings = agent_settings(tmp_path, running_broker).model_copy(
        update={"broker": settings_for(running_broker, tls=tls)}
    )
    with caplog.at_level(logging.ERROR, logger="edge_agent.uplink"):
        async with running_agent(settings, cuff_backends()) as agent:
            assert agent.outbox is not None
            await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the reading saved")  # type: ignore[union-attr]
            await wait_until(lambda: "cannot connect to the broker: TLS to" in caplog.text, what="the TLS failure logged")
            await asyncio.sleep(1.5)
            assert agent.uplink is not None and not agent.uplink.connected
    assert bridge.reading_count() == 0  # nothing went in plaintext
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    checks = doctor_checks(config)
    assert checks["broker"]["verdict"] == "failed" and "TLS to" in checks["broker"]["detail"]


def test_doctor_names_a_wrong_password(tmp_path: Path, started: list[MosquittoProcess]) -> None:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk-07", "right horse"], check=True)
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-pw", password_file=passwords)
    broker.start()
    started.append(broker)
    settings = agent_settings(tmp_path, broker, with_cuff=False).model_copy(
        update={"broker": settings_for(broker, username="kiosk-07", password="battery staple")}
    )
    config = tmp_path / "agent.yaml"
    data = settings.model_dump(mode="json", exclude_none=True)
    data["broker"]["password"] = "battery staple"  # model_dump masks secrets
    config.write_text(yaml.safe_dump(data))
    checks = doctor_checks(config)
    assert checks["broker"]["verdict"] == "failed"
    assert "refused this client" in checks["broker"]["detail"] and "broker.password" in checks["broker"]["detail"]


def test_paho_waits_the_jittered_backoff_between_attempts() -> None:
    """The delays of reconnect_delay_s are the ones paho really waits (use_jittered_backoff
    wires them into its reconnect loop): nothing listens on the port, attempts are timed."""
    from broker_admin.mosquitto import free_port
    from runtime.mqtt import connect_in_background, make_client

    broker = BrokerSettings(host="127.0.0.1", port=free_port(), reconnect_min_s=1, reconnect_max_s=4)
    failures: list[float] = []
    client = make_client("backoff-test", broker)
    client.on_connect_fail = lambda _c, _u: failures.append(time.monotonic())
    connect_in_background(client, broker)
    try:
        deadline = time.monotonic() + 20
        while len(failures) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    waits = [later - earlier for earlier, later in zip(failures, failures[1:])]
    assert len(waits) == 3, failures
    # Attempt n waits between half and all of min(max, min * 2**n): 1-2 s, 2-4 s, then capped at
    # 2-4 s. paho 2.x waits the first delay twice after the very first failure (once in its
    # first-connection path, once in its main loop), so the first wait is 2-4 s as well.
    slack = 0.3
    assert all(2 - slack <= wait <= 4 + slack for wait in waits), waits
    # Jittered: paho's own backoff would wait exactly 2, 2 and 4 s. (All three of ours within
    # 50 ms of those: a chance of about 1 in 8,000.)
    assert any(min(abs(wait - 2), abs(wait - 4)) > 0.05 for wait in waits), waits
