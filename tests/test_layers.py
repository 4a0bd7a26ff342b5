"""Dependencies run one way (docs: ARCHITECTURE "Layers"; the packages' own docstrings):

    the apps (doorstep/cli.py, demo.py, simulate.py, config_validate.py, __main__.py), benchmarks
      -> edge_agent, cloud_bridge
        -> broker_admin/ (broker operations) -> runtime/ (what every process runs on)
          -> contract/ (imports nothing of ours)
        -> kiosk_config/ (what an operator configures: the agent loads it, the bridge validates
           a desired configuration with it) -> runtime, firmware_configs, contract
    drivers and firmware_configs stand apart: nothing of ours but each other and the contract.

Read from the source (ast), nothing imported or run. Every import counts, wherever it stands:
at the top, in a function, under `if TYPE_CHECKING:` (a cycle there is a design cycle)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each layer may import of ours, itself included.
ALLOWED: dict[str, frozenset[str]] = {
    "contract": frozenset({"contract"}),
    "runtime": frozenset({"contract", "runtime"}),
    "broker_admin": frozenset({"contract", "runtime", "broker_admin"}),
    "firmware_configs": frozenset({"contract", "firmware_configs"}),
    "drivers": frozenset({"contract", "firmware_configs", "drivers"}),
    "kiosk_config": frozenset({"contract", "runtime", "firmware_configs", "kiosk_config"}),
    # Release bundles (issue 20): the kiosk verifies them, the bridge stores them.
    "releases": frozenset({"contract", "releases"}),
    "edge_agent": frozenset({"contract", "runtime", "broker_admin", "firmware_configs", "drivers", "kiosk_config",
                             "releases", "edge_agent"}),
    # The bridge reads the kiosk's configuration models, never firmware_configs itself, and grants
    # and revokes kiosks' broker accounts at enrolment (cloud_bridge/enrolment.py).
    "cloud_bridge": frozenset({"contract", "runtime", "broker_admin", "kiosk_config", "releases", "cloud_bridge"}),
}
# The packages whose face (__init__.py) must import nothing: importing the contract must not
# pull in the apps, nor broker operations the runtime.
IMPORT_FREE = ("doorstep", "contract", "runtime", "broker_admin")


def modules(root: Path) -> dict[str, Path]:
    """Every module of our packages (each top-level folder with an __init__.py but tests)."""
    found = {}
    for package in sorted(d for d in root.iterdir() if (d / "__init__.py").exists() and d.name != "tests"):
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    for candidate in candidates:
        parts = candidate.split(".")
        for end in range(len(parts), 0, -1):  # the module itself, or the package it is in
            if ".".join(parts[:end]) in known:
                yield ".".join(parts[:end])
                break


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of ours it imports."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        nodes = ast.walk(ast.parse(path.read_text(), str(path)))
        graph[name] = {
            target
            for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in _imported(name, path, node, known) if target != name
        }
    return graph


def layer(module: str) -> str:
    top = module.split(".")[0]
    return "apps" if top == "doorstep" else top


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Each import a layer may not make, as "importer -> imported"."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items() if layer(module) in ALLOWED
        for target in targets if layer(target) not in ALLOWED[layer(module)]
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


GRAPH = import_graph(ROOT)


def test_the_graph_is_read_whole() -> None:
    # Imports of every kind are seen: top level, relative, in a function, under TYPE_CHECKING.
    assert "contract.topics" in GRAPH["contract.envelope"]
    assert "edge_agent.agent" in GRAPH["doorstep.cli"]  # inside a function
    assert "edge_agent.kiosk_commands" in GRAPH["edge_agent.agent"]
    assert set(ALLOWED) | {"apps", "benchmarks"} == {layer(module) for module in GRAPH}


def test_the_contract_imports_nothing_of_ours() -> None:
    assert [f"{m} -> {t}" for m, ts in sorted(GRAPH.items()) if layer(m) == "contract"
            for t in sorted(ts) if layer(t) != "contract"] == []


def test_each_layer_imports_only_what_is_below_it() -> None:
    assert wrong_way(GRAPH) == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(GRAPH) == []


def test_the_kiosk_store_imports_nothing_of_the_agent_above_it() -> None:
    # edge_agent/store/ is the kiosk's database, a layer the rest of the agent stands on.
    assert [f"{m} -> {t}" for m, ts in sorted(GRAPH.items()) if m.startswith("edge_agent.store")
            for t in sorted(ts) if t.startswith("edge_agent.") and not t.startswith("edge_agent.store")] == []


def test_the_package_faces_import_nothing() -> None:
    known = modules(ROOT)
    assert {name: GRAPH[name] for name in IMPORT_FREE} == {name: set() for name in IMPORT_FREE}
    for name in IMPORT_FREE:  # not even a library
        tree = ast.parse(known[name].read_text())
        assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))], name


def test_the_checks_find_a_cycle_and_an_import_the_wrong_way(tmp_path: Path) -> None:
    for path, text in {
        "contract/__init__.py": "",
        "contract/topics.py": "from runtime import mqtt\n",
        "runtime/__init__.py": "",
        "runtime/mqtt.py": "def f():\n    from contract.topics import X\n",
        "drivers/ble/__init__.py": "",
        "drivers/ble/link.py": "from ..bus import Y\n",
        "drivers/__init__.py": "",
        "drivers/bus.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edge_agent.agent\n",
        "edge_agent/__init__.py": "",
        "edge_agent/agent.py": "from drivers import bus\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["drivers.ble.link"] == {"drivers.bus"}  # a relative import, resolved
    assert wrong_way(graph) == ["contract.topics -> runtime.mqtt", "drivers.bus -> edge_agent.agent"]
    assert cycles(graph) == [["contract.topics", "runtime.mqtt"], ["drivers.bus", "edge_agent.agent"]]
