"""Remote commands through real parts: a technician's command published to a real Mosquitto,
the in-process agent acting on it once, its result through the outbox to the bridge's table."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from cloud_bridge.store import CommandResult
from broker_admin.mosquitto import MosquittoProcess
from contract.topics import QOS_RELIABLE, KioskTopics
from runtime.mqtt import make_client
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from edge_agent.agent import Agent
from edge_agent.settings import AgentSettings
from edge_agent.store.command_audit import CommandAudit
from firmware_configs.laundry import MachineState
from tests.laundry.test_laundry_room import LINE_BAUD, RESIDENT, settings_for
from tests.support import KIOSK, SITE, Bridge, agent_settings, broker_settings, running_agent, wait_until

TOPICS = KioskTopics(SITE, KIOSK)


class Technician:
    """Publishes commands as the bridge will (issue 6), on the kiosk's command topic."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self.client = make_client("technician-test", broker_settings(broker))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, command: str, request_id: str | None = None, **fields: Any) -> str:
        request_id = request_id or uuid.uuid4().hex
        body = {"command": command, "issued_by": "tech-li", "issued_at": datetime.now(UTC).isoformat()} | fields
        self.send_raw(request_id, json.dumps(body, default=str).encode())
        return request_id

    def send_raw(self, request_id: str, body: bytes) -> None:
        self.client.publish(TOPICS.command(request_id), body, qos=QOS_RELIABLE).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def results(bridge: Bridge, request_id: str) -> list[CommandResult]:
    with Session(bridge.engine) as session:
        return list(session.exec(select(CommandResult).where(CommandResult.request_id == request_id)))


async def answered(bridge: Bridge, request_id: str, timeout: float = 10) -> CommandResult:
    await wait_until(lambda: len(results(bridge, request_id)) >= 1, timeout=timeout, what=f"the result of {request_id}")
    [result] = results(bridge, request_id)
    return result


async def pinged(bridge: Bridge, technician: Technician, attempts: int = 6) -> None:
    """A ping answered: sent again while none is, as a command sent before the agent's session
    exists at the broker is not kept for it."""
    for _ in range(attempts):
        request_id = technician.send("ping")
        try:
            result = await answered(bridge, request_id, timeout=4)
        except AssertionError:  # timed out
            continue
        assert result.outcome == "succeeded"
        return
    raise AssertionError(f"no ping answered in {attempts} attempts")


def audit(agent: Agent) -> list[CommandAudit]:
    assert agent.remote is not None
    return agent.remote.audit()


@pytest.mark.asyncio
async def test_commands_are_done_once_audited_and_answered(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    technician = Technician(running_broker)
    try:
        async with running_agent(agent_settings(tmp_path, running_broker)) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
            await asyncio.sleep(0.3)  # its command subscription is in place
            ping = technician.send("ping", request_id="ping-1")
            result = await answered(bridge, ping)
            assert (result.command, result.outcome, result.payload["detail"]) == ("ping", "succeeded", "pong")
            # Delivered again (QoS 1 may; a broker keeps it for a kiosk that was away): not done again.
            technician.send("ping", request_id="ping-1")
            status = await answered(bridge, technician.send("status"))
            assert status.payload["data"]["outbox"]["health"]["records"] >= 0
            await asyncio.sleep(0.5)
            assert len(results(bridge, ping)) == 1
            assert [a.request_id for a in audit(agent)].count("ping-1") == 1
            # Refused, each with its reason: expired, malformed, unknown device, unknown command.
            late = technician.send("ping", expires_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
            assert (await answered(bridge, late)).outcome == "refused"
            technician.send_raw("broken-1", b'{"command": "ping"')
            broken = await answered(bridge, "broken-1")
            assert broken.outcome == "refused" and "malformed" in broken.payload["detail"]
            nobody = await answered(bridge, technician.send("reconnect_device", args={"address": "AA:BB"}))
            assert nobody.outcome == "refused" and "no device 'AA:BB'" in nobody.payload["detail"]
            unknown = technician.send_raw("what-1", json.dumps({"command": "dance", "issued_by": "x",
                                                                "issued_at": datetime.now(UTC).isoformat()}).encode())
            assert unknown is None and (await answered(bridge, "what-1")).outcome == "refused"
            cuff = agent.settings.devices[0].address
            assert (await answered(bridge, technician.send("reconnect_device", args={"address": cuff}))).outcome == "succeeded"
            flushed = await answered(bridge, technician.send("flush_outbox"))
            assert flushed.outcome == "succeeded" and "undelivered" in flushed.payload["data"]
            diagnostics = (await answered(bridge, technician.send("export_diagnostics"))).payload["data"]
            assert {"outbox-prune", "telemetry", "time-sanity"} <= {job["id"] for job in diagnostics["jobs"]}
            assert any(c["request_id"] == "ping-1" and c["issued_by"] == "tech-li" for c in diagnostics["recent_commands"])
            no_laundry = await answered(bridge, technician.send("laundry_stop", args={"unit": 1}))
            assert no_laundry.outcome == "refused"
        rows = {a.request_id: a for a in audit(agent)}
        assert rows["ping-1"].outcome == "succeeded" and rows["ping-1"].issued_by == "tech-li"
        assert rows[late].outcome == "refused" and rows["broken-1"].command == "unknown"
    finally:
        technician.close()


@pytest.mark.asyncio
async def test_laundry_commands_from_afar(tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any) -> None:
    bridge = bridge_factory(running_broker)
    technician = Technician(running_broker)
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, seconds_per_tick=0)
        await sim.start()
        try:
            settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
                update={"laundry": settings_for(link.driver_path), "command_timeout_s": 5}
            )
            async with running_agent(settings) as agent:
                await wait_until(lambda: agent.laundry is not None and all(m.status for m in agent.laundry.machines()))
                assert agent.laundry is not None
                agent.laundry.ledger.open_account(RESIDENT, balance=10, birth_year=1970)
                await wait_until(lambda: agent.uplink is not None and agent.uplink.connected)
                await asyncio.sleep(0.3)
                start = await answered(bridge, technician.send(
                    "laundry_start", args={"unit": 3, "program": 1, "subject": RESIDENT}))
                assert start.outcome == "succeeded" and start.payload["data"]["points_charged"] == 5
                assert sim.machines[3].state is MachineState.RUNNING
                bad = await answered(bridge, technician.send("laundry_start", args={"unit": 3, "program": 1, "subject": "Li"}))
                assert bad.outcome == "refused" and bad.payload["detail"].startswith("args.subject: ")
                stop = await answered(bridge, technician.send("laundry_stop", args={"unit": 3}))
                assert stop.outcome == "succeeded" and sim.machines[3].state is MachineState.IDLE
                sim.drain_error(5)
                await wait_until(lambda: agent.laundry.bus.status(5).state is MachineState.FAULT)  # type: ignore[union-attr]
                cleared = await answered(bridge, technician.send("laundry_clear_fault", args={"unit": 5}))
                assert cleared.outcome == "succeeded" and sim.machines[5].state is MachineState.IDLE
                # Expired: a start a technician asked for an hour ago is not done now.
                stale = await answered(bridge, technician.send(
                    "laundry_start", args={"unit": 4, "program": 1, "subject": RESIDENT},
                    expires_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()))
                assert stale.outcome == "refused" and sim.machines[4].executed == []
        finally:
            await sim.stop()
            technician.close()


@pytest.mark.asyncio
async def test_reload_config_refuses_a_bad_file_and_restarts_with_a_good_one(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    technician = Technician(running_broker)
    config = tmp_path / "agent.yaml"
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    config.write_text(json.dumps(settings.model_dump(mode="json") | {"broker": {"host": running_broker.host,
                                                                               "port": running_broker.port}}))
    try:
        agent = Agent(settings, config_path=config)
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        await wait_until(lambda: agent.uplink is not None and agent.uplink.connected)
        await asyncio.sleep(0.3)
        good = config.read_text()
        config.write_text("site: Not A Slug\nkiosk: k\n")
        rid = technician.send("reload_config")
        refused = await answered(bridge, rid)
        assert refused.outcome == "refused" and "site" in refused.payload["detail"]
        assert not run.done()  # the running configuration is kept
        config.write_text(good)
        accepted_id = technician.send("reload_config")
        assert await asyncio.wait_for(run, 10) == "reload"
        # As `doorstep agent` does: a new agent from the file; it sends the answer saved before.
        async with running_agent(AgentSettings.from_file(config)):
            accepted = await answered(bridge, accepted_id)
        assert accepted.outcome == "succeeded"
    finally:
        technician.close()


@pytest.mark.asyncio
async def test_reload_config_through_doorstep_agent_restarts_it_and_it_keeps_running(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """The real command path: `doorstep agent` in its own process, reload_config from the
    broker. The agent restarts with the file and goes on answering (it used to exit 0: the
    reload set the stop event the command's loop hands every run)."""
    bridge = bridge_factory(running_broker)
    technician = Technician(running_broker)
    config = tmp_path / "agent.yaml"
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    config.write_text(json.dumps(settings.model_dump(mode="json") | {"broker": {"host": running_broker.host,
                                                                               "port": running_broker.port}}))
    agent = subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                             stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(agent.stderr.readline, "")), daemon=True)
    reader.start()

    def restarted() -> bool:
        restarts = [i for i, line in enumerate(log) if "restarting with the configuration in" in line]
        return bool(restarts) and any("running with" in line for line in log[restarts[0]:])

    try:
        await pinged(bridge, technician)
        reload_id = technician.send("reload_config")
        assert (await answered(bridge, reload_id)).outcome == "succeeded"
        await wait_until(restarted, what="the agent restarted with the file")
        await pinged(bridge, technician)
        await asyncio.sleep(1)
        assert agent.poll() is None, "the agent stopped after reloading:\n" + "".join(log)
    finally:
        technician.close()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)
        reader.join(timeout=5)
        agent.stderr.close()
    assert agent.returncode == 0, "".join(log)


@pytest.mark.asyncio
async def test_a_command_cut_short_by_a_restart_is_answered_failed(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    async with running_agent(settings) as agent:
        assert agent.outbox is not None
        with agent.outbox.unit_of_work() as session:  # as if the kiosk died mid-command
            session.add(CommandAudit(request_id="cut-1", command="laundry_start", issued_by="tech-li",
                                     received_at=datetime.now(UTC)))
            session.commit()
    async with running_agent(settings):
        result = await answered(bridge, "cut-1")
    assert result.outcome == "failed" and "restart" in result.payload["detail"]


@pytest.mark.asyncio
async def test_a_command_sent_while_the_kiosk_is_away_is_answered_when_it_returns(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """The agent's MQTT 5 session outlives its connection (clean_start=False, a session expiry):
    the broker keeps what arrives for it meanwhile, QoS 1, and hands it over on reconnect."""
    bridge = bridge_factory(running_broker)
    technician = Technician(running_broker)
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    try:
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected)
            await asyncio.sleep(0.3)  # subscribed
        away = technician.send("ping", request_id="while-away-1")  # nobody is connected as the kiosk
        async with running_agent(settings):
            result = await answered(bridge, away)
        assert result.outcome == "succeeded" and result.payload["detail"] == "pong"
    finally:
        technician.close()
