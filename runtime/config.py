"""Settings loaded from one YAML file, every field overridable by environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file, field and problem."""


class FileSettings(BaseSettings):
    """Base for the agent's and the bridge's settings.

    The file's contents arrive as init arguments; the environment is consulted first so that
    `DOORSTEP_AGENT_BROKER__HOST=…` overrides `broker: {host: …}` in the file.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings, file_secret_settings)

    @classmethod
    def from_file(cls, path: Path | None) -> Self:
        data: dict[str, Any] = {}
        source = str(path) if path else "environment"
        if path is not None:
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as error:
                raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
            except yaml.YAMLError as error:
                raise ConfigError(f"{path}: not valid YAML: {error}") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
            data = loaded or {}
        try:
            return cls(**data)
        except ValidationError as error:
            problems = [
                f"{source}: {'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
                for item in error.errors(include_url=False)
            ]
            raise ConfigError("\n".join(problems)) from None
