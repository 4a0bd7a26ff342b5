"""Support bundles through real parts: a technician asks through the bridge's API, the running
agent gathers its logs, doctor's checks and its configuration without secrets, uploads them
over a real Mosquitto, the bridge (SQLite and PostgreSQL) stores them, the technician downloads
them; the request and the download are audited. docs/protocol.md, Support bundles."""

from __future__ import annotations

import asyncio
import io
import json
import random
import string
import tarfile
from pathlib import Path
from typing import Any

import pytest

from broker_admin import access
from broker_admin.mosquitto import MosquittoProcess
from contract.errors import ContractError
from contract.support_bundle import MAX_BUNDLE_BYTES, REDACTED, read_manifest
from contract.topics import QOS_RELIABLE, KioskTopics
from edge_agent.logs import LogSettings
from edge_agent.settings import AgentSettings
from edge_agent.support_bundle import gather
from runtime.mqtt import BrokerSettings, make_client
from tests.shipped_broker import shipped_broker
from tests.support import KIOSK, SITE, Bridge, ServedApp, agent_settings, broker_settings, running_agent, wait_until

BROKER_PASSWORD = "broker-password-Zq81vX"
RESIDENT_SECRET = "resident-secret-" + "7f3a" * 8
TECHNICIAN_PIN = "80553172"
SECRETS = (BROKER_PASSWORD, RESIDENT_SECRET, TECHNICIAN_PIN)
OLDEST_LINE = "2026-12-01 00:00:00,000 INFO    edge_agent.agent: OLDEST LINE OF THE LOGS"
NEWEST_LINE = "2026-12-07 13:59:59,000 INFO    edge_agent.agent: NEWEST LINE OF THE LOGS"


def secret_settings(tmp_path: Path, broker: MosquittoProcess) -> AgentSettings:
    """The test kiosk with a secret in every kind of place: a broker password, the residents'
    pseudonym key, the screen's PIN; logging to a file that rotates."""
    settings = agent_settings(tmp_path, broker, with_cuff=False)
    raw = settings.model_dump(mode="json")
    raw["broker"] |= {"username": "kiosk-user", "password": BROKER_PASSWORD}
    raw["screen"] |= {"technician_pin": TECHNICIAN_PIN}
    raw |= {"resident_secret": RESIDENT_SECRET, "log": {"file": str(tmp_path / "log" / "agent.log"), "backups": 2}}
    return AgentSettings.model_validate(raw)


def write_logs(log: LogSettings, megabytes: float) -> None:
    """A rotated log of `megabytes` of lines that hardly compress, a secret written into some
    (as a careless log line might), the oldest and newest lines marked."""
    assert log.file is not None
    log.file.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(19)
    lines = [OLDEST_LINE]
    size = 0
    while size < megabytes * 1024 * 1024:
        noise = "".join(rng.choices(string.ascii_letters + string.digits, k=100))
        line = f"2026-12-0{rng.randint(1, 7)} 10:00:00,000 INFO    edge_agent.uplink: {noise}"
        if rng.random() < 0.01:
            line += f" (retrying with {rng.choice(SECRETS)})"
        lines.append(line)
        size += len(line) + 1
    lines.append(f"2026-12-07 13:59:58,000 WARNING edge_agent.uplink: login as kiosk-user:{BROKER_PASSWORD} refused")
    lines.append(NEWEST_LINE)
    half = len(lines) // 2
    log.file.with_name(f"{log.file.name}.1").write_text("\n".join(lines[:half]) + "\n")
    log.file.write_text("\n".join(lines[half:]) + "\n")


def unpacked(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {member.name: archive.extractfile(member).read() for member in archive.getmembers()}  # type: ignore[union-attr]


def assert_no_secret(body: bytes) -> None:
    """Nowhere: not in any file of the archive, nor in the archive's own bytes."""
    files = unpacked(body)
    for secret in SECRETS:
        assert secret.encode() not in body
        for name, data in files.items():
            assert secret.encode() not in data, f"{name} holds a secret"


async def kiosk_known(api: ServedApp) -> None:
    await wait_until(lambda: api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").status == 200, what="the kiosk known to the bridge")


async def requested(api: ServedApp) -> str:
    created = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "upload_support_bundle"})
    assert created.status == 201, created.body
    request_id: str = created.body["request_id"]

    def done() -> bool:
        return api.get(f"/api/v1/commands/{request_id}").body["status"] not in ("pending", "delivered")

    await wait_until(done, timeout=30, what="the kiosk's answer")
    return request_id


def bundles(api: ServedApp) -> list[dict[str, Any]]:
    listed = api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}/support-bundles")
    assert listed.status == 200, listed.body
    items: list[dict[str, Any]] = listed.body["items"]
    return items


@pytest.mark.asyncio
async def test_a_technician_asks_for_a_bundle_and_downloads_it(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    settings = secret_settings(tmp_path, running_broker)
    write_logs(settings.log, megabytes=3)
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
        with bridge.api("technician") as api:
            await kiosk_known(api)
            await asyncio.sleep(0.3)  # its command subscription is in place
            request_id = await requested(api)
            command = api.get(f"/api/v1/commands/{request_id}").body
            assert command["status"] == "succeeded", command
            assert command["data"]["logs_truncated"] is True
            await wait_until(lambda: len(bundles(api)) == 1, what="the bundle stored")
            [listed] = bundles(api)
            assert (listed["request_id"], listed["requested_by"], listed["logs_truncated"]) == (request_id, "technician-all", True)
            assert "content" not in listed
            download = api.get(f"/api/v1/support-bundles/{request_id}/download")
            audit = api.get("/api/v1/audit", action="support_bundle_download").body["items"]
            asked = [e for e in api.get("/api/v1/audit", action="command").body["items"]
                     if e["detail"].get("request_id") == request_id]
        with bridge.api("read_only") as wall:
            assert wall.get(f"/api/v1/support-bundles/{request_id}/download").status == 403
            assert wall.get(f"/api/v1/kiosks/{SITE}/{KIOSK}/support-bundles").status == 403

    assert download.status == 200
    body: bytes = download.body
    assert len(body) == listed["size_bytes"] == command["data"]["bytes"] <= MAX_BUNDLE_BYTES
    files = unpacked(body)
    assert list(files) == ["manifest.json", "logs.txt", "doctor.json", "config.json"]
    manifest = read_manifest(body)
    assert (manifest.site, manifest.kiosk, manifest.request_id) == (SITE, KIOSK, request_id)
    # The logs: the newest kept, the oldest cut, and the cut said in the bundle itself.
    logs = files["logs.txt"].decode()
    assert manifest.logs_truncated and manifest.logs_omitted_bytes > 1024 * 1024
    assert logs.startswith(f"[{manifest.logs_omitted_bytes} bytes of older log left out")
    assert logs.rstrip().endswith(NEWEST_LINE) and OLDEST_LINE not in logs
    assert f"login as kiosk-user:{REDACTED} refused" in logs
    assert manifest.logs_source.startswith(f"the log file {settings.log.file}")
    # Doctor's checks, in `doorstep doctor --json`'s form; the broker is the agent's own connection.
    checks = {check["check"]: check for check in json.loads(files["doctor.json"])}
    assert {"broker", "clock", "disk", "outbox", "agent"} <= set(checks)
    assert checks["broker"]["verdict"] == "ok"
    # The configuration, each secret's field there and its value not.
    config = json.loads(files["config.json"])
    assert config["kiosk"] == KIOSK and config["broker"]["port"] == running_broker.port
    assert config["broker"]["password"] == config["resident_secret"] == config["screen"]["technician_pin"] == REDACTED
    assert config["screen"]["pin_attempts"] == 5  # a count, not a secret
    assert {"broker.password", "resident_secret", "screen.technician_pin"} <= set(manifest.redacted)
    assert_no_secret(body)
    # Audited: who asked (the command), who downloaded.
    assert [(e["actor"], e["target"], e["result"]) for e in asked] == [("technician-all", f"{SITE}/{KIOSK}", "ok")]
    assert [(e["actor"], e["target"], e["detail"]["request_id"]) for e in audit] == [
        ("technician-all", f"{SITE}/{KIOSK}", request_id)]


@pytest.mark.asyncio
async def test_the_bridge_keeps_only_bundles_asked_of_that_kiosk_and_the_newest_few(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """A kiosk's upload for another kiosk, or one nobody asked for, is not stored (on a broker
    without the ACL that already refuses it, tests/test_broker_acl.py); past `kept`, the oldest go."""
    bridge: Bridge = bridge_factory(running_broker, support_bundles_kept=2)
    settings = secret_settings(tmp_path, running_broker)
    write_logs(settings.log, megabytes=0.1)
    forger = make_client("forger", broker_settings(running_broker))
    forger.connect(running_broker.host, running_broker.port)
    forger.loop_start()
    refused = bridge.ingest.metrics.messages.labels("support_bundles", "refused")
    try:
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
            with bridge.api("technician") as api:
                await kiosk_known(api)
                await asyncio.sleep(0.3)
                asked = [await requested(api) for _ in range(3)]
                await wait_until(lambda: [b["request_id"] for b in bundles(api)] == asked[:0:-1], what="the newest two kept")
                # Another kiosk's bundle sent as this one's answer, and one nobody asked for.
                other = gather(settings.model_copy(update={"kiosk": "kiosk-2"}), asked[-1], connected=True)
                unasked = gather(settings, "nobody-asked", connected=True)
                for topic, body in ((KioskTopics(SITE, "kiosk-2").support_bundle(asked[-1]), other.body),
                                    (KioskTopics(SITE, KIOSK).support_bundle("nobody-asked"), unasked.body),
                                    (KioskTopics(SITE, KIOSK).support_bundle(asked[-1]), other.body)):
                    forger.publish(topic, body, qos=QOS_RELIABLE).wait_for_publish(5)
                await wait_until(lambda: refused._value.get() >= 2, what="the forged bundles refused")  # noqa: SLF001
                await asyncio.sleep(0.3)
                kept = bundles(api)
                assert [b["request_id"] for b in kept] == asked[:0:-1]
                # The last one came again under the real request id: the stored one is unchanged.
                stored = api.get(f"/api/v1/support-bundles/{asked[-1]}/download").body
                assert read_manifest(stored).kiosk == KIOSK and stored != other.body
    finally:
        forger.disconnect()
        forger.loop_stop()


def test_without_a_log_file_the_bundle_says_where_the_logs_went(tmp_path: Path, broker: MosquittoProcess) -> None:
    """To stderr, so the journal under systemd: read with journalctl where it can be, and said
    in words where it cannot (no journalctl, no such unit, not allowed)."""
    settings = agent_settings(tmp_path, broker, with_cuff=False)
    bundle = gather(settings, "r-1", connected=False)
    assert bundle.manifest.logs_source.startswith("the journal")
    files = unpacked(bundle.body)
    checks = {check["check"]: check for check in json.loads(files["doctor.json"])}
    assert checks["broker"] == {"check": "broker", "verdict": "failed", "detail": "the agent is not connected to the broker"}


@pytest.mark.asyncio
async def test_a_kiosk_whose_broker_rules_predate_bundles_answers_failed_until_update_rules(
    tmp_path: Path, bridge_factory: Any
) -> None:
    """On the shipped broker with real accounts: a kiosk's role from before this channel is
    refused the upload (PUBACK 0x87), which the technician reads in the command's answer;
    `doorstep broker update-rules` gives the role the topic, and the next request goes through."""
    broker = shipped_broker(tmp_path / "shipped")
    broker.add_bridge("bridge-1", "bridge " + "z" * 30)
    username = broker.add_kiosk(SITE, KIOSK, "kiosk " + "k" * 30)
    broker.process.start()
    try:
        with broker.admin() as admin:  # the kiosk's role as it was before support bundles
            admin.one({"command": "removeRoleACL", "rolename": username, "acltype": "publishClientSend",
                       "topic": KioskTopics(SITE, KIOSK).support_bundle("+")})
        on_loopback = {"host": broker.process.host, "port": broker.process.port}
        bridge: Bridge = bridge_factory(broker.process, broker_settings=BrokerSettings(
            **on_loopback, username="bridge-1", password="bridge " + "z" * 30))  # type: ignore[arg-type]
        settings = agent_settings(tmp_path, broker.process, with_cuff=False).model_copy(update={
            "broker": BrokerSettings(**on_loopback, username=username, password="kiosk " + "k" * 30)})  # type: ignore[arg-type]
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
            with bridge.api("technician") as api:
                await kiosk_known(api)
                await asyncio.sleep(0.3)
                refused = api.get(f"/api/v1/commands/{await requested(api)}").body
                assert refused["status"] == "failed"
                assert refused["detail"] == "the support bundle was not uploaded: the broker refused it: Not authorized"
                with broker.admin() as admin:
                    assert username in access.update_rules(admin)  # the agent is disconnected, and comes back
                await asyncio.sleep(0.5)  # its socket closed by the broker before update_rules returned
                await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent back")
                await asyncio.sleep(0.5)
                accepted = await requested(api)
                assert api.get(f"/api/v1/commands/{accepted}").body["status"] == "succeeded"
                await wait_until(lambda: [b["request_id"] for b in bundles(api)] == [accepted], what="the bundle stored")
    finally:
        broker.process.stop()


def gzip_tar(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in members:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(("body", "reason"), [
    (b"not an archive at all", "not a gzip-compressed tar archive"),
    (gzip_tar(("logs.txt", b"x")), "first member must be manifest.json"),
    # 16 MiB of zeros, 16 KiB compressed: refused by its header's size, never inflated.
    (gzip_tar(("manifest.json", bytes(16 * 1024 * 1024))), "manifest.json of 16777216 bytes exceeds 16384"),
    (gzip_tar(("manifest.json", b'{"site": "x"}')), "manifest.json: "),
    (bytes(MAX_BUNDLE_BYTES + 1), f"support bundle of {MAX_BUNDLE_BYTES + 1} bytes exceeds {MAX_BUNDLE_BYTES}"),
], ids=["not-an-archive", "logs-first", "manifest-bomb", "manifest-invalid", "too-big"])  # a gzip header holds the time
def test_what_is_not_a_bundle_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as refused:
        read_manifest(body)
    assert reason in refused.value.reason
