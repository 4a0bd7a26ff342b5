"""The agent's log: to stderr (the journal, under systemd), or to a file that rotates.

An SD card is small and wears out: a log must never grow without bound. Under systemd the
journal rotates it (journald.conf's SystemMaxUse); on a kiosk without journald, or to keep a
log beside the outbox, `log.file` writes one that rotates at `log.max_mb`, keeping
`log.backups` old files.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LogLevel = Literal["debug", "info", "warning", "error"]


class LogSettings(BaseModel):
    level: LogLevel = Field(default="info", description="debug, info, warning or error; --log-level overrides it")
    file: Path | None = Field(default=None, description="a log file that rotates; none: stderr (the journal under systemd)")
    max_mb: float = Field(default=10, gt=0, description="rotate the file when it reaches this size")
    backups: int = Field(default=5, ge=1, le=100, description="old files kept: agent.log.1 … agent.log.N")


class LogFileError(Exception):
    """The log file cannot be opened: named, with why."""


def configure_logging(settings: LogSettings, level: str | None = None) -> None:
    """Replace any earlier configuration (a reload may change the file)."""
    handler: logging.Handler
    if settings.file is None:
        handler = logging.StreamHandler()
    else:
        try:
            settings.file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                settings.file,
                maxBytes=int(settings.max_mb * 1024 * 1024),
                backupCount=settings.backups,
                encoding="utf-8",
            )
        except OSError as error:
            raise LogFileError(f"log.file: cannot write {settings.file}: {error.strerror or error}") from None
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=(level or settings.level).upper(), handlers=[handler], force=True)
    # apscheduler logs two INFO lines for every run of every job: the 0.5 s outbox-flush alone
    # would write 14,000 lines an hour. Its warnings (missed runs) and errors still show.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
