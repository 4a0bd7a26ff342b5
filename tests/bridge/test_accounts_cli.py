"""`doorstep users add`, `doorstep tokens create|revoke` and `doorstep keys create`, against the
bridge's real database (SQLite and PostgreSQL) and its real API."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from cloud_bridge.accounts import AuditEntry, User, password_matches
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.settings import DEVELOPMENT_SECRET
from doorstep.cli import app
from tests.support import ServedApp

runner = CliRunner()


def config_for(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({"database_url": database, "environment": "development"}))
    return path


def test_people_and_their_tokens_from_the_command_line(tmp_path: Path, bridge_database: str, bridge_engine: Engine) -> None:
    config = config_for(tmp_path, bridge_database)
    added = runner.invoke(app, ["users", "add", "li-tech", "--role", "technician", "--config", str(config),
                                "--password-stdin"], input="a long enough password\n")
    assert added.exit_code == 0, added.output
    refused = runner.invoke(app, ["users", "add", "wang", "--role", "doctor", "--config", str(config), "--password-stdin"],
                            input="a long enough password\n")
    assert refused.exit_code == 2 and "give --site" in refused.output
    short = runner.invoke(app, ["users", "add", "zhao", "--role", "read_only", "--config", str(config), "--password-stdin"],
                          input="short\n")
    assert short.exit_code == 2 and "at least 10" in short.output
    created = runner.invoke(app, ["tokens", "create", "li-tech", "--label", "prometheus", "--config", str(config)])
    assert created.exit_code == 0
    token = created.stdout.strip()
    with Session(bridge_engine) as session:
        user = session.get(User, "li-tech")
        assert user is not None and user.password_hash and password_matches("a long enough password", user.password_hash)
        assert token not in str(session.exec(select(AuditEntry)).all())  # shown once, stored nowhere
    with ServedApp(create_app(bridge_engine, BridgeContext(bridge_engine, secret_key=DEVELOPMENT_SECRET)), token=token) as api:
        assert api.get("/api/v1/me").body["username"] == "li-tech"
        revoked = runner.invoke(app, ["tokens", "revoke", "li-tech", "--config", str(config)])
        assert revoked.exit_code == 0 and "revoked 1 token(s)" in revoked.stdout
        assert api.get("/api/v1/me").status == 401
    with Session(bridge_engine) as session:
        actions = [(e.action, e.target) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == [("user_add", "li-tech"), ("token_create", "li-tech"), ("token_revoke", "li-tech")]


def test_keys_create_writes_the_private_key_once_and_prints_the_public_one(tmp_path: Path) -> None:
    made = runner.invoke(app, ["keys", "create", "--out", str(tmp_path / "keys")])
    assert made.exit_code == 0 and len(made.stdout.strip()) == 44
    assert (tmp_path / "keys" / "payload.key").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(app, ["keys", "create", "--out", str(tmp_path / "keys")])
    assert again.exit_code == 2 and "not overwritten" in again.output
