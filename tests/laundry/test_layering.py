"""The layering docs/laundry.md and ARCHITECTURE promise, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("drivers", "edge_agent", "cloud_bridge", "doorstep", "firmware_configs")
# Drivers parse bytes and do device I/O; MQTT and SQL belong to the agent and the bridge.
FORBIDDEN_IN_DRIVERS = {"edge_agent", "cloud_bridge", "paho", "sqlmodel", "sqlalchemy"}
# The bus speaks Modbus for the product; the simulator plays the machines' side of the line.
PYMODBUS_IMPORTERS = {"drivers/laundry/bus.py", "drivers/laundry/simulator.py"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def test_drivers_never_import_the_agent_the_bridge_mqtt_or_sql() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN_IN_DRIVERS) for p in sources("drivers")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_only_the_bus_and_the_simulator_import_pymodbus() -> None:
    importers = {str(p.relative_to(ROOT)) for p in sources(*PRODUCT) if "pymodbus" in imported_roots(p)}
    assert importers == PYMODBUS_IMPORTERS
