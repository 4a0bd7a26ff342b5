"""docs/configuration.md documents every settings field, and only fields that exist."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from cloud_bridge.settings import BridgeSettings
from edge_agent.settings import AgentSettings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")


def is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def nested_models(annotation: object) -> Iterator[tuple[type[BaseModel], str]]:
    """The settings models inside a field's type, with how their paths join: "." or "[]."."""
    origin = typing.get_origin(annotation)
    if origin is list:
        yield from ((arg, "[].") for arg in typing.get_args(annotation) if is_model(arg))
    elif origin in (typing.Union, types.UnionType):
        yield from ((arg, ".") for arg in typing.get_args(annotation) if is_model(arg))
    elif is_model(annotation):
        yield annotation, "."  # type: ignore[misc]


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        if not is_model(field.annotation):
            yield prefix + name  # a plain group (broker, outbox, poll) is documented by its fields
        for nested, joint in nested_models(field.annotation):
            yield from field_paths(nested, prefix + name + joint)


def documented(section: str) -> set[str]:
    text = DOC.split(section, 1)[1].split("\n## ", 1)[0]
    return {name for cell in re.findall(r"^\| ([^|]+) \|", text, re.MULTILINE) for name in re.findall(r"`([^`]+)`", cell)}


@pytest.mark.parametrize(("model", "section"), [(AgentSettings, "## The agent"), (BridgeSettings, "## The bridge")])
def test_every_field_is_documented_and_every_documented_field_exists(model: type[BaseModel], section: str) -> None:
    fields = set(field_paths(model))
    names = documented(section)
    assert fields - names == set(), "fields missing from docs/configuration.md"
    assert names - fields == set(), "docs/configuration.md documents fields that do not exist"


def test_the_raspberry_pi_example_is_a_configuration_the_agent_accepts(tmp_path: Path) -> None:
    example = DOC.split("### A complete example for a Raspberry Pi kiosk", 1)[1]
    text = example.split("```yaml\n", 1)[1].split("```", 1)[0]
    etc = tmp_path / "etc-doorstep"
    etc.mkdir()
    (etc / "ca.crt").write_text("")  # FilePath: it must exist
    config = tmp_path / "agent.yaml"
    config.write_text(text.replace("/etc/doorstep/", f"{etc}/"))
    settings = AgentSettings.from_file(config)
    assert settings.broker.tls is not None and settings.broker.port == 8883 and settings.broker.username
    assert [d.model for d in settings.devices] == ["omron", "generic-thermometer"]
    assert settings.laundry is not None and len(settings.laundry.machines) == 8
