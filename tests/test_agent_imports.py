"""What the kiosk agent's process loads. Every module imported stays resident on the Pi for as long
as the agent runs (benchmarks/footprint.py, docs/performance.md): the agent must not carry the
server side's tools or the simulators that stand for the machines in the demo."""

from __future__ import annotations

import subprocess
import sys

# The CA tooling (cryptography: ~11 MB), the laundry room's simulator (a pymodbus server and a pty
# relay: it stands for the machines, drivers/laundry/simulated_room.py), the bridge and its
# database drivers, and the benchmarks' plotting; python-escpos (its printer database, half a
# second to load) unless the kiosk has a receipt printer.
NOT_IN_THE_AGENT = (
    "cryptography", "broker_admin.pki", "drivers.laundry.simulator", "drivers.laundry.simulated_room",
    "drivers.laundry.pty_link", "pymodbus.server", "cloud_bridge", "alembic", "psycopg", "httpx",
    "prometheus_client", "matplotlib", "escpos",
)


def test_the_agent_process_loads_neither_the_ca_tooling_nor_the_simulators_nor_the_bridge() -> None:
    # As `doorstep agent` starts: the CLI first, then the agent (doorstep/cli.py).
    code = "import sys, doorstep.cli, edge_agent.agent; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    found = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_IN_THE_AGENT))
    assert found == []
