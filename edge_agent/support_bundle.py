"""This kiosk's support bundle (contract/support_bundle.py): its newest logs, doctor's checks and
its configuration with every secret removed, in one tar.gz of at most MAX_BUNDLE_BYTES.

Secrets are kept out twice over. The configuration is written field by field: a value typed
SecretStr, or a text whose field is named as a secret (password, secret, token, key, pin, …), is
replaced by REDACTED, and the manifest lists which fields were. Then every secret value found
that way is scrubbed from every file of the bundle, the logs too: a secret that a log line or a
check's detail happens to hold does not leave the kiosk either.

Logs are cut from their oldest end to fit (the newest lines explain the problem a technician
is looking at); the manifest and the first line of logs.txt say how much was left out.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from contract.support_bundle import (
    CONFIG,
    DOCTOR,
    LOGS,
    MANIFEST,
    MAX_BUNDLE_BYTES,
    REDACTED,
    BundleManifest,
)
from edge_agent.doctor import Check, Verdict, examine
from edge_agent.logs import LogSettings
from edge_agent.settings import AgentSettings

# The shipped unit (deploy/doorstep-agent.service), when the agent's own cannot be found.
JOURNAL_UNIT: Final = "doorstep-agent.service"
# journalctl is asked for this many of the newest lines at most, and given this long.
JOURNAL_LINES: Final = 50_000
JOURNAL_TIMEOUT_S: Final = 10.0
# The newest log text read at most: what fits of it is kept (about 1 MiB compresses into the
# cap), and a bound on what a kiosk holds in memory for a bundle.
LOG_READ_BYTES: Final = 4 * 1024 * 1024
# A field whose name holds one of these words (split at '_') is a secret when it holds text.
SECRET_WORDS: Final = frozenset({"password", "passphrase", "secret", "token", "key", "pin", "private", "credentials"})
# Secret values shorter than this are not scrubbed from free text, where they would shred
# ordinary words; the agent's secrets are all longer (a PIN has 6 digits at least, the
# resident secret 32 characters, broker passwords 43).
MIN_SCRUBBED: Final = 6
# A bundle that is still too big is packed again with this share of the logs that would fit
# in proportion: compression is not linear, and a margin saves a round.
SHRINK_MARGIN: Final = 0.9
PACK_ATTEMPTS: Final = 8


@dataclass(frozen=True, slots=True)
class Logs:
    source: str  # where they came from, or why there are none, in words
    text: bytes  # the newest LOG_READ_BYTES at most, from the start of a line
    omitted: int  # bytes older than `text`, not read


@dataclass(frozen=True, slots=True)
class Bundle:
    body: bytes
    manifest: BundleManifest


def gather(settings: AgentSettings, request_id: str, *, connected: bool, now: datetime | None = None) -> Bundle:
    """The running agent's bundle. Blocking (doctor's checks, the journal): run it in a thread."""
    broker = (Check("broker", Verdict.OK, "the agent is connected: this bundle goes up by that connection "
                                          "(not tried again: a second one with its identity would take its session over)")
              if connected else Check("broker", Verdict.FAILED, "the agent is not connected to the broker"))
    return build(settings, request_id, examine(settings, broker=broker), read_logs(settings.log),
                 now=now or datetime.now(UTC))


# --- The logs -------------------------------------------------------------------------------


def read_logs(settings: LogSettings) -> Logs:
    """From the log file and its rotated ones when the agent writes one (log.file), else from
    the journal (edge_agent/logs.py: without a file the agent logs to stderr, which systemd
    keeps in the journal)."""
    if settings.file is not None:
        return _log_files(settings.file, settings.backups)
    return _journal(_own_unit() or JOURNAL_UNIT)


def _log_files(path: Path, backups: int) -> Logs:
    # Oldest first: agent.log.N … agent.log.1, then agent.log (RotatingFileHandler's names).
    files = [p for p in (*(path.with_name(f"{path.name}.{n}") for n in range(backups, 0, -1)), path) if p.exists()]
    if not files:
        return Logs(f"the log file {path}: not there (yet)", b"", 0)
    total = sum(p.stat().st_size for p in files)
    wanted, parts = LOG_READ_BYTES, []
    for file in reversed(files):
        if wanted <= 0:
            break
        with file.open("rb") as handle:
            size = handle.seek(0, io.SEEK_END)
            handle.seek(max(0, size - wanted))
            part = handle.read(wanted)
        parts.append(part)
        wanted -= len(part)
    text = _from_a_line(b"".join(reversed(parts)), cut=total > LOG_READ_BYTES)
    return Logs(f"the log file {path} and {len(files) - 1} rotated one(s)", text, total - len(text))


def _journal(unit: str) -> Logs:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return Logs(f"the journal (unit {unit}): journalctl is not on this kiosk; set log.file to keep a log "
                    "that bundles can read", b"", 0)
    command = [journalctl, "--unit", unit, "--no-pager", "--output", "short-iso", "--lines", str(JOURNAL_LINES)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=JOURNAL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Logs(f"the journal (unit {unit}): journalctl gave no answer within {JOURNAL_TIMEOUT_S:.0f} s", b"", 0)
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0:
        return Logs(f"the journal (unit {unit}): journalctl failed ({done.returncode}): "
                    f"{said[0] if said else 'no reason given'} (is the agent's user in group systemd-journal?)", b"", 0)
    text = _from_a_line(done.stdout[-LOG_READ_BYTES:], cut=len(done.stdout) > LOG_READ_BYTES)
    note = f"; journalctl said: {said[0]}" if said else ""
    return Logs(f"the journal: journalctl --unit {unit}, its newest {JOURNAL_LINES} lines at most{note}", text,
                len(done.stdout) - len(text))


def _own_unit() -> str | None:
    """The systemd service this process runs in, from its cgroup (None outside one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name = line.rsplit("/", 1)[-1]
        if name.endswith(".service"):
            return name
    return None


def _from_a_line(text: bytes, *, cut: bool) -> bytes:
    """`text` from its first whole line, when its start was cut mid-line (a half line may hold
    the tail of a secret that scrubbing could no longer recognise)."""
    if not cut:
        return text
    newline = text.find(b"\n")
    return text[newline + 1 :] if newline >= 0 else b""


# --- The configuration, without secrets ----------------------------------------------------


def redacted_config(settings: AgentSettings) -> tuple[dict[str, Any], list[str], list[str]]:
    """The settings as JSON with each secret replaced; the dotted names of the fields replaced,
    and the secret values (to be scrubbed from free text)."""
    redacted: list[str] = []
    values: list[str] = []
    config = _redact(settings, "", redacted, values)
    assert isinstance(config, dict)
    return config, redacted, values


def _redact(value: Any, path: str, redacted: list[str], values: list[str]) -> Any:
    if isinstance(value, BaseModel):
        out = {}
        for name in type(value).model_fields:
            field = getattr(value, name)
            where = f"{path}.{name}" if path else name
            if field is not None and _is_secret(name, field):
                redacted.append(where)
                values.append(_secret_text(field))
                out[name] = REDACTED
            else:
                out[name] = _redact(field, where, redacted, values)
        return out
    if isinstance(value, dict):
        return {str(key): _redact(item, f"{path}.{key}", redacted, values) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, f"{path}[{i}]", redacted, values) for i, item in enumerate(value)]
    return to_jsonable_python(value)


def _is_secret(name: str, value: Any) -> bool:
    if isinstance(value, SecretStr | SecretBytes):
        return True
    # Text only: `pin_attempts` is a count, `key_file` a path to a key (kept out all the same).
    return isinstance(value, str | bytes | Path) and not SECRET_WORDS.isdisjoint(name.lower().split("_"))


def _secret_text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode("utf-8", "replace")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # a secret holding another goes first
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, REDACTED)
    return text


# --- The archive ----------------------------------------------------------------------------


def build(settings: AgentSettings, request_id: str, checks: list[Check], logs: Logs, *, now: datetime) -> Bundle:
    """The bundle, with as many of the newest log lines as fit in MAX_BUNDLE_BYTES."""
    config, redacted, secrets = redacted_config(settings)
    files = {
        DOCTOR: scrub(json.dumps([check.as_json() for check in checks], indent=2, ensure_ascii=False), secrets),
        CONFIG: scrub(json.dumps(config, indent=2, ensure_ascii=False), secrets),
    }
    log_text = scrub(logs.text.decode("utf-8", "replace"), secrets).encode()
    keep = len(log_text)
    for attempt in range(PACK_ATTEMPTS):
        tail = _from_a_line(log_text[len(log_text) - keep :], cut=keep < len(log_text))
        omitted = logs.omitted + len(log_text) - len(tail)
        manifest = BundleManifest(
            site=settings.site, kiosk=settings.kiosk, request_id=request_id, created_at=now,
            agent_version=version("doorstep"), files=[MANIFEST, LOGS, DOCTOR, CONFIG], logs_source=logs.source[:500],
            logs_bytes=len(tail), logs_truncated=omitted > 0, logs_omitted_bytes=omitted, redacted=redacted,
        )
        note = (f"[{omitted} bytes of older log left out: a support bundle holds at most "
                f"{MAX_BUNDLE_BYTES // 1024} KiB compressed]\n" if omitted else "")
        body = _pack(manifest, {LOGS: note.encode() + tail, **{n: t.encode() for n, t in files.items()}}, now)
        if len(body) <= MAX_BUNDLE_BYTES:
            return Bundle(body, manifest)
        if keep == 0:
            break
        last_try = attempt == PACK_ATTEMPTS - 2 or keep <= 1024
        keep = 0 if last_try else int(keep * MAX_BUNDLE_BYTES / len(body) * SHRINK_MARGIN)
    raise ValueError(f"the support bundle is {len(body)} bytes without logs, over {MAX_BUNDLE_BYTES}")


def _pack(manifest: BundleManifest, files: dict[str, bytes], now: datetime) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=9) as archive:
        for name, data in {MANIFEST: manifest.model_dump_json(indent=2).encode(), **files}.items():
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.mode = len(data), int(now.timestamp()), 0o644
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()
