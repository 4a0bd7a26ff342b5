"""The floor under the agent's memory: a Python process that imports the third-party libraries
`doorstep agent` runs on, and nothing of Doorstep, then waits (`python -m benchmarks.raw_imports`).

The list is what the agent's process loads besides the standard library and its own packages
(sys.modules of `import doorstep.cli, edge_agent.agent`); tests/test_agent_imports.py pins what it
must not load. FastAPI alone brings pydantic.v1 and OpenTelemetry with it.
"""

from __future__ import annotations

import importlib
import signal

AGENT_LIBRARIES = (
    "apscheduler.schedulers.asyncio", "bleak", "bleak_retry_connector", "fastapi", "nacl.public", "paho.mqtt.client",
    "pydantic_settings", "pymodbus.client", "serial", "sqlalchemy.dialects.sqlite", "sqlmodel", "typer", "uvicorn",
    "yaml",
)


def main() -> None:
    for name in AGENT_LIBRARIES:
        importlib.import_module(name)
    signal.pause()  # measured from outside until terminated, like the agent


if __name__ == "__main__":
    main()
