"""Simulated BLE peripherals (cuff, glucose meter, thermometer, scale, oximeter,
Omron cuff speaking Omron's own protocol) as a bleak backend.

Production code keeps calling ``bleak.BleakClient(address, backend=...)``; only
the backend class differs, so the real BleakClient (characteristic lookup,
callback wrapping, disconnect callback plumbing) is exercised in tests.

bleak 3.1.0 contract (bleak/__init__.py BleakClient.__init__, bleak/backends/client.py):
``backend`` is a *class*, a subclass of ``BaseBleakClient``; BleakClient
instantiates it as ``backend(address, disconnected_callback=<no-arg callable or
None>, services=..., timeout=..., bluez=..., winrt=...)`` and delegates to it.
After ``connect`` the backend must have set ``self.services`` to a
``BleakGATTServiceCollection``; characteristic lookups by UUID go through it.

Layout: a :class:`SimulatedPeripheral` describes a GATT table (``gatt()``) and a
per-connection script (``run(link)``); the single backend class
(:class:`SimulatedBleakClient`) serves any peripheral and is the :class:`Link`
the script talks through. Misbehaviours every peripheral supports:
``drop_mid_transfer``, ``garbage``, memory replayed on every connection,
``requires_bonding`` and ``forgets_bond``; the Current Time Service (CTS 1.1) is
added with ``has_current_time``.
"""

from drivers.ble.simulated.backend import SimulatedBleakClient, simulated_backend
from drivers.ble.simulated.cuff import ButtonCuff, SimulatedCuff, cuff_at_a_persons_pace, plausible_reading
from drivers.ble.simulated.glucose_meter import SimulatedGlucoseMeter
from drivers.ble.simulated.indicating import (
    SimulatedIndicatingDevice,
    SimulatedPulseOximeter,
    SimulatedScale,
    SimulatedThermometer,
)
from drivers.ble.simulated.omron_cuff import SimulatedOmronCuff
from drivers.ble.simulated.peripheral import (
    TYPICAL_DRIFT,
    Link,
    SimCharacteristic,
    SimService,
    SimulatedPeripheral,
)

__all__ = [
    "TYPICAL_DRIFT",
    "ButtonCuff",
    "Link",
    "SimCharacteristic",
    "SimService",
    "SimulatedBleakClient",
    "SimulatedCuff",
    "SimulatedGlucoseMeter",
    "SimulatedIndicatingDevice",
    "SimulatedOmronCuff",
    "SimulatedPeripheral",
    "SimulatedPulseOximeter",
    "SimulatedScale",
    "SimulatedThermometer",
    "cuff_at_a_persons_pace",
    "plausible_reading",
    "simulated_backend",
]
