"""`doorstep enrol`: a fresh kiosk asks the bridge for its broker identity with a one-time code,
and writes the agent's configuration (docs/deployment.md, "Enrolling a kiosk").

Three files, beside each other, none replaced without --force:
- the agent's settings (`--config`, /etc/doorstep/agent.yaml): site, kiosk, the broker and its
  username, the payload key; no secret, mode 0644;
- its secrets (agent.env beside it, mode 0600): the broker password, as
  DOORSTEP_AGENT_BROKER__PASSWORD, which deploy/doorstep-agent.service reads (EnvironmentFile);
- the broker's CA (broker-ca.crt), when the broker speaks TLS;
- the bridge's CA (bridge-ca.crt), a copy of --bridge-ca when given: the agent's `bridge_ca`
  names it, so that update bundles come from the bridge over the same HTTPS (a copy, because the
  file given may be gone after a reboot, and the agent refuses a bridge_ca that is not there).

The key pair made here is X25519 and lives only in this process: the bridge seals the password
for its public half, so the answer is of use to this process alone (contract/enrolment.py). A
kiosk that logs in with a password needs no lasting key of its own; the site's
`resident_secret` is the site's, not the kiosk's, and is not the bridge's to hand out (it would
let the cloud turn pseudonyms back into phone digits), so the technician adds it to agent.env.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import httpx
import yaml
from nacl.public import PrivateKey
from pydantic import ValidationError

from contract.enrolment import CODE_MAX_CHARS, ENROL_PATH, EnrolmentGrant, EnrolmentRequest, open_secret
from contract.sealing import encode_key
from edge_agent.settings import AgentSettings
from runtime.config import ConfigError

REQUEST_TIMEOUT_S = 30.0


class EnrolExit(IntEnum):
    """`doorstep enrol`'s exit codes (its --help lists them)."""

    ENROLLED = 0
    REFUSED = 1  # the bridge refused the code: unknown, used, expired, cancelled, or too many tries
    LOCAL = 2  # here: a file exists (without --force), or cannot be written
    UNREACHABLE = 3  # the bridge cannot be reached, cannot enrol now (503), or answered nonsense: try again


class EnrolError(Exception):
    def __init__(self, exit_code: EnrolExit, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class KioskFiles:
    config: Path
    env: Path
    ca: Path
    bridge_ca: Path

    @classmethod
    def beside(cls, config: Path) -> KioskFiles:
        return cls(config, config.with_name("agent.env"), config.with_name("broker-ca.crt"),
                   config.with_name("bridge-ca.crt"))

    def all(self) -> tuple[Path, Path, Path, Path]:
        return (self.config, self.env, self.ca, self.bridge_ca)


def enrol(bridge_url: str, code: str, files: KioskFiles, *, force: bool = False, bridge_ca: Path | None = None) -> AgentSettings:
    """Enrol with the bridge and write the files; the agent's settings as it will load them."""
    existing = [str(path) for path in files.all() if path.exists()]
    if existing and not force:
        raise EnrolError(EnrolExit.LOCAL, f"{', '.join(existing)} exist(s): not replaced (this kiosk is set up "
                         "already?); --force replaces them")
    key = PrivateKey.generate()
    try:
        request = EnrolmentRequest(code=code, kiosk_public_key=encode_key(key.public_key))
    except ValidationError:
        raise EnrolError(EnrolExit.LOCAL, f"--code: not an enrolment code (1 to {CODE_MAX_CHARS} characters)") from None
    try:
        bridge_ca_pem = None if bridge_ca is None else bridge_ca.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise EnrolError(EnrolExit.LOCAL, f"--bridge-ca {bridge_ca}: {error}") from None
    grant = _ask(bridge_url, request, bridge_ca)
    try:
        password = open_secret(key, grant.broker.sealed_password)
    except ValueError as error:
        raise EnrolError(EnrolExit.UNREACHABLE, f"the bridge's answer: {error}") from None
    try:
        _write(files, grant, _agent_document(grant, files, bridge_ca_pem is not None), password, bridge_ca_pem)
    except OSError as error:
        raise EnrolError(EnrolExit.LOCAL, f"cannot write {error.filename}: {error.strerror}") from None
    try:  # what the agent will load (its password comes from agent.env)
        return AgentSettings.from_file(files.config)
    except ConfigError as error:  # the bridge handed out what the agent refuses
        raise EnrolError(EnrolExit.UNREACHABLE, f"the bridge's answer does not make a configuration: {error}") from None


def _ask(bridge_url: str, request: EnrolmentRequest, bridge_ca: Path | None) -> EnrolmentGrant:
    url = bridge_url.rstrip("/") + ENROL_PATH
    try:
        response = httpx.post(url, json=request.model_dump(), timeout=REQUEST_TIMEOUT_S,
                              verify=str(bridge_ca) if bridge_ca is not None else True)
    except httpx.HTTPError as error:
        raise EnrolError(EnrolExit.UNREACHABLE, f"cannot reach the bridge at {url}: {error}") from None
    if response.status_code == 200:
        try:
            return EnrolmentGrant.model_validate_json(response.content)
        except ValidationError as error:
            raise EnrolError(EnrolExit.UNREACHABLE, f"{url} answered something that is not an enrolment: {error}") from None
    reason = _reason(response)
    if response.status_code in (403, 429):
        raise EnrolError(EnrolExit.REFUSED, f"the bridge refused: {reason}")
    raise EnrolError(EnrolExit.UNREACHABLE, f"the bridge at {url} cannot enrol this kiosk now ({response.status_code}): {reason}")


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['reason']} ({body['error']})"
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _agent_document(grant: EnrolmentGrant, files: KioskFiles, with_bridge_ca: bool) -> dict[str, Any]:
    broker: dict[str, Any] = {"host": grant.broker.host, "port": grant.broker.port, "username": grant.broker.username}
    if grant.broker.ca_pem is not None:
        broker["tls"] = {"ca_file": str(files.ca.resolve())}
    document: dict[str, Any] = {"site": grant.site, "kiosk": grant.kiosk, "broker": broker}
    if grant.payload_public_key is not None:
        document["payload_public_key"] = grant.payload_public_key
    if with_bridge_ca:
        document["bridge_ca"] = str(files.bridge_ca.resolve())
    return document


def _write(files: KioskFiles, grant: EnrolmentGrant, document: dict[str, Any], password: str,
           bridge_ca_pem: str | None) -> None:
    files.config.parent.mkdir(parents=True, exist_ok=True)
    if grant.broker.ca_pem is not None:
        _replace(files.ca, grant.broker.ca_pem, 0o644)
    if bridge_ca_pem is not None:
        _replace(files.bridge_ca, bridge_ca_pem, 0o644)
    # The secret first: a configuration naming a broker account is never there without its password.
    _replace(files.env, f"# written by `doorstep enrol`: the kiosk's secrets (docs/configuration.md)\n"
             f"DOORSTEP_AGENT_BROKER__PASSWORD={password}\n", 0o600)
    _replace(files.config, "# written by `doorstep enrol`; its password is in agent.env beside it\n"
             + yaml.safe_dump(document, sort_keys=False), 0o644)


def _replace(path: Path, text: str, mode: int) -> None:
    """The whole file at once, with `mode` from its first byte (a secret is never readable by
    others, not even while it is being written)."""
    temporary = path.with_name(f".{path.name}.enrolling")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, mode)  # whatever the umask took away
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
