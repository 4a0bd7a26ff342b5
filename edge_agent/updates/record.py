"""The newest update tried, kept on disk across restarts and versions: the command that asked
for it and where it stands. Both the version that installs and the one on trial read it, so
its format changes only by adding optional fields."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from contract.software import UpdateReport, UpdateSoftwareArgs, UpdateState
from edge_agent.updates.layout import UpdateLayout


class UpdateRecord(BaseModel):
    args: UpdateSoftwareArgs
    report: UpdateReport
    from_version: str  # the version that started it: the one a failed trial goes back to

    def moved(self, state: UpdateState, reason: str | None = None) -> UpdateRecord:
        report = UpdateReport(version=self.args.version, state=state, reason=reason, rollout_id=self.args.rollout_id,
                              at=datetime.now(UTC))
        return self.model_copy(update={"report": report})


def load(layout: UpdateLayout) -> UpdateRecord | None:
    try:
        return UpdateRecord.model_validate_json(layout.state.read_bytes())
    except (OSError, ValidationError):
        return None  # none yet, or torn by a crash before the rename (then the old one is there)


def save(layout: UpdateLayout, record: UpdateRecord) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.write(layout.state, record.model_dump_json())
