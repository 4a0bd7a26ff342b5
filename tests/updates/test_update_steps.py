"""The steps of an update before the install, in process: a download resumes where it stopped;
a bundle with one byte changed or signed by another key is refused and reported before anything
is installed; an update never starts while a resident is measuring."""

from __future__ import annotations

import asyncio
import io
import shutil
import tarfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker_admin.mosquitto import MosquittoProcess
from contract.commands import CommandOutcome
from contract.software import UpdateSoftwareArgs, UpdateState
from edge_agent.agent import Agent
from edge_agent.settings import AgentSettings
from edge_agent.updates.download import DownloadError, download
from releases.keys import keygen, public_key_text
from tests.support import agent_settings, running_agent, wait_until
from tests.tls_material import CertificateAuthority
from tests.updates.conftest import NEW_VERSION, BundleServer, ReleaseKit


def changed_byte(bundle: Path, into: Path) -> Path:
    shutil.copy(bundle, into)
    with tarfile.open(bundle) as tar:
        wheel = next(m for m in tar.getmembers() if m.name.startswith("wheels/doorstep-"))
    with into.open("r+b") as file:
        file.seek(wheel.offset_data + wheel.size // 2)
        byte = file.read(1)
        file.seek(-1, io.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x01]))
    return into


def test_a_download_resumes_from_the_bytes_on_disk(tmp_path: Path, good_bundle: Path, bundles: BundleServer) -> None:
    args = bundles.command(NEW_VERSION, good_bundle)
    half = args["size"] // 2
    dest = tmp_path / "b.bundle"
    (tmp_path / "b.bundle.part").write_bytes(good_bundle.read_bytes()[:half])  # cut off mid-way
    download(args["url"], dest, size=args["size"], sha256=args["sha256"])
    assert bundles.requests == [f"bytes={half}-"]
    assert dest.read_bytes() == good_bundle.read_bytes() and not (tmp_path / "b.bundle.part").exists()


def test_a_download_that_is_not_the_commanded_file_is_thrown_away(tmp_path: Path, good_bundle: Path,
                                                                  bundles: BundleServer) -> None:
    args = bundles.command(NEW_VERSION, good_bundle)
    with pytest.raises(DownloadError, match="SHA-256"):
        download(args["url"], tmp_path / "b.bundle", size=args["size"], sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []  # a resume must not keep the wrong bytes


async def finished(agent: Agent) -> tuple[UpdateState, str | None]:
    def done() -> bool:
        update = agent.updater.report().update if agent.updater else None
        return update is not None and update.state.finished

    await wait_until(done, timeout=30, what="the update to end")
    assert agent.updater is not None
    update = agent.updater.report().update
    assert update is not None
    return update.state, update.reason


@pytest.mark.asyncio
@pytest.mark.parametrize("tamper", ["one_byte", "another_key"])
async def test_a_changed_or_foreign_bundle_is_refused_and_reported_before_anything_is_installed(
    tamper: str, tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path,
    bundles: BundleServer,
) -> None:
    trusted = release_kit.public_key
    if tamper == "another_key":
        trusted = public_key_text(keygen(tmp_path / "other.key"))  # this kiosk trusts only another key
        bundle = good_bundle
    else:
        bundle = changed_byte(good_bundle, tmp_path / "changed.bundle")
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"updates_root": tmp_path / "updates", "release_public_keys": [trusted]})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.updater is not None, what="the agent's updater")
        assert agent.updater is not None
        outcome, _ = agent.updater.begin(UpdateSoftwareArgs(**bundles.command(NEW_VERSION, bundle)))
        assert outcome is CommandOutcome.SUCCEEDED  # queued; the refusal is in the report
        state, reason = await finished(agent)
        software = (await agent.snapshot()).software
    assert state is UpdateState.REFUSED
    assert reason is not None and reason.startswith("hash_mismatch" if tamper == "one_byte" else "unknown_key")
    assert software is not None and software.update is not None and software.update.state is UpdateState.REFUSED
    assert software.version == "0.1.0"
    assert not (tmp_path / "updates" / "versions").exists() and not (tmp_path / "updates" / "current").exists()


@pytest.mark.asyncio
async def test_an_update_that_fails_in_an_unnamed_way_ends_failed_and_says_why(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path,
    bundles: BundleServer,
) -> None:
    """Its downloads folder is a file: no step names that failure, and the update must still end
    (failed, with the reason) rather than report `downloading` for ever."""
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"updates_root": tmp_path / "updates", "release_public_keys": [release_kit.public_key]})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.updater is not None, what="the agent's updater")
        assert agent.updater is not None
        (tmp_path / "updates").mkdir(exist_ok=True)
        (tmp_path / "updates" / "downloads").write_text("not a folder")
        agent.updater.begin(UpdateSoftwareArgs(**bundles.command(NEW_VERSION, good_bundle)))
        state, reason = await finished(agent)
        software = (await agent.snapshot()).software
    assert state is UpdateState.FAILED
    assert reason is not None and reason.startswith("the kiosk failed: ") and "downloads" in reason
    assert software is not None and software.update is not None and software.update.state is UpdateState.FAILED
    assert software.version == "0.1.0"


@pytest.mark.asyncio
async def test_an_update_waits_while_a_resident_is_measuring(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path,
    bundles: BundleServer,
) -> None:
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"updates_root": tmp_path / "updates", "release_public_keys": [release_kit.public_key],
                "update_retry_s": 0.2})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.updater is not None, what="the agent's updater")
        assert agent.updater is not None
        agent.desk.begin(None)  # a resident pressed "measure" on the screen
        agent.updater.begin(UpdateSoftwareArgs(**bundles.command(NEW_VERSION, good_bundle)))
        await wait_until(lambda: agent.updater.report().update.state is UpdateState.DEFERRED,  # type: ignore[union-attr]
                         what="the update deferred")
        await asyncio.sleep(1.0)  # retried every 0.2 s meanwhile
        update = agent.updater.report().update
        assert update is not None and update.state is UpdateState.DEFERRED
        assert update.reason == "a blood-pressure measurement is under way"
        assert bundles.requests == []  # not even downloaded
        software = (await agent.snapshot()).software
        assert software is not None and software.update == update


@pytest.mark.asyncio
@pytest.mark.parametrize("trusting", [True, False], ids=["with_bridge_ca", "without"])
async def test_a_bundle_from_a_bridge_with_a_private_ca_is_downloaded_only_with_bridge_ca(
    trusting: bool, tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path,
) -> None:
    authority = CertificateAuthority(tmp_path / "pki", "doorstep bridge CA")
    bridge = BundleServer(tls=authority.issue("bridge", "bridge.example.org", server=True))
    # The kiosk trusts another release key: a bundle that downloads is then refused before any
    # install, which shows the download went through without an install's minute.
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(update={
        "updates_root": tmp_path / "updates", "release_public_keys": [public_key_text(keygen(tmp_path / "other.key"))],
        "bridge_ca": authority.issued.cert if trusting else None})
    with bridge.app:
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.updater is not None, what="the agent's updater")
            assert agent.updater is not None
            args = bridge.command(NEW_VERSION, good_bundle)
            assert args["url"].startswith("https://")
            agent.updater.begin(UpdateSoftwareArgs(**args))
            state, reason = await finished(agent)
    assert reason is not None
    if trusting:
        assert (state, reason.split(":")[0]) == (UpdateState.REFUSED, "unknown_key"), reason
        assert bridge.requests == [None]  # one whole download
    else:
        assert state is UpdateState.FAILED
        assert reason.startswith(f"{args['url']}: the bridge's HTTPS certificate is not trusted by this kiosk ("), reason
        assert reason.endswith("if the bridge uses a private CA, set bridge_ca (doorstep enrol --bridge-ca)"), reason
        assert bridge.requests == []  # refused at the handshake, and not tried again


def test_bridge_ca_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bridge_ca"):
        AgentSettings(site="s", kiosk="k", bridge_ca=tmp_path / "missing.crt")


@pytest.mark.asyncio
async def test_an_accepted_update_waits_for_its_answer_to_be_saved_before_it_starts(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path, bundles: BundleServer,
) -> None:
    """Started before its answer was saved, a power cut while it downloaded answered the command
    "failed: interrupted by a kiosk restart" for an update that then went on and succeeded (the
    fresh-clone CI's killed-at-every-step run, once)."""
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"updates_root": tmp_path / "updates", "release_public_keys": [release_kit.public_key]})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.updater is not None, what="the agent's updater")
        assert agent.updater is not None
        args = UpdateSoftwareArgs(**bundles.command(NEW_VERSION, good_bundle))
        outcome, _, start = agent.updater.accept(args)
        assert outcome is CommandOutcome.SUCCEEDED and start is not None
        await asyncio.sleep(0.5)  # the answer being saved: nothing downloads meanwhile
        update = agent.updater.report().update
        assert update is not None and update.state is UpdateState.QUEUED
        again, reason, _ = agent.updater.accept(args)
        assert again is CommandOutcome.REFUSED and "under way" in reason
        start()

        def under_way() -> bool:
            update = agent.updater.report().update if agent.updater else None
            return update is not None and update.state is not UpdateState.QUEUED

        await wait_until(under_way, timeout=30, what="the update started once told to")
