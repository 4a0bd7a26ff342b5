"""Simulated advertisements, as a bleak scanner backend (`BleakScanner(backend=...)`), so
discovery runs bleak's production scanner path with no radio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner

from drivers.ble.uuids import full_uuid


@dataclass(frozen=True, slots=True)
class SimulatedAdvertisement:
    address: str
    name: str | None
    services: Sequence[int] = field(default_factory=tuple)  # 16-bit SIG service UUIDs
    rssi: int = -60


def simulated_scanner_backend(advertisements: Sequence[SimulatedAdvertisement]) -> type[BaseBleakScanner]:
    """A scanner backend class that 'hears' exactly these advertisements when started.

    A device out of range is simply one that is not in the list.
    """

    class SimulatedBleakScanner(BaseBleakScanner):
        def __init__(
            self,
            detection_callback: AdvertisementDataCallback | None,
            service_uuids: list[str] | None,
            scanning_mode: Literal["active", "passive"] = "active",
            **_platform_args: Any,
        ) -> None:
            super().__init__(detection_callback, service_uuids)

        async def start(self) -> None:
            self.seen_devices = {}
            for ad in advertisements:
                uuids = [full_uuid(s) for s in ad.services]
                if not self.is_allowed_uuid(uuids):
                    continue
                data = AdvertisementData(
                    local_name=ad.name,
                    manufacturer_data={},
                    service_data={},
                    service_uuids=uuids,
                    tx_power=None,
                    rssi=ad.rssi,
                    platform_data=(),
                )
                device = self.create_or_update_device(ad.address, ad.address, ad.name, None, data)
                self.call_detection_callbacks(device, data)

        async def stop(self) -> None:
            return None

    return SimulatedBleakScanner
