"""Why a device could not be read, as a stable machine code both sides know.

The kiosk's drivers classify a failure (drivers/ble/errors.py, drivers/laundry/link.py), the
agent counts and reports it per device in telemetry (telemetry.DeviceTelemetry.last_error,
error_counts), the bridge stores it and alerts on some (cloud_bridge/alert_rules.py). A code is
a slug that never changes meaning; a new one may be added, so a reader meeting a code it does
not know keeps it as text (the wire carries any slug, not only these).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from pydantic import StringConstraints


class DeviceErrorCode(StrEnum):
    # Bluetooth, the classes bleak-retry-connector tells apart (bleak_retry_connector/__init__.py:
    # BleakNotFoundError, BleakOutOfConnectionSlotsError, BleakAbortedError) and ours beyond them.
    BLE_NOT_FOUND = "ble_not_found"  # off, out of range, not advertising
    BLE_OUT_OF_SLOTS = "ble_out_of_slots"  # the adapter has no free connection slot
    BLE_ABORTED = "ble_aborted"  # the connection attempt was aborted (interference, range)
    BLE_CONNECT_FAILED = "ble_connect_failed"  # failed after every retry, for no reason the stack named
    BLE_NOT_BONDED = "ble_not_bonded"  # refuses access and the kiosk holds no bond it accepts (never paired)
    BLE_BOND_LOST = "ble_bond_lost"  # the kiosk bonded, the device no longer honours the bond
    BLE_DROPPED = "ble_dropped"  # disconnected while a measurement was under way
    BLE_TIMEOUT = "ble_timeout"  # connected, but no measurement came in time
    BLE_GATT_ERROR = "ble_gatt_error"  # a GATT operation failed for another reason
    BLE_MISSING_SERVICE = "ble_missing_service"  # connected, but it lacks the service its profile names
    BLE_DECODE = "ble_decode"  # it sent bytes that break the spec (its firmware's fault)
    BLE_ADAPTER_UNAVAILABLE = "ble_adapter_unavailable"  # the kiosk's own Bluetooth: no adapter, BlueZ down
    BLE_PROCEDURE_REFUSED = "ble_procedure_refused"  # a glucose meter refused the RACP request (GSS 3.178.4)
    # RS-485 / Modbus RTU (drivers/laundry/link.py ErrorKind).
    MODBUS_TIMEOUT = "modbus_timeout"
    MODBUS_CRC = "modbus_crc"
    MODBUS_EXCEPTION = "modbus_exception"
    MODBUS_NO_SUCH_UNIT = "modbus_no_such_unit"
    MODBUS_BAD_REPLY = "modbus_bad_reply"
    MODBUS_DECODE = "modbus_decode"
    MODBUS_FROZEN = "modbus_frozen"
    MODBUS_NOT_CONFIRMED = "modbus_not_confirmed"  # a command whose echo never came
    MODBUS_DISCONNECTED = "modbus_disconnected"
    # A card or QR reader on a serial port (drivers/readers/session.py ReaderFault).
    READER_GONE = "reader_gone"  # its port cannot be opened or went away (unplugged)
    READER_GARBAGE = "reader_garbage"  # it sent bytes that are no frame of its profile
    # A receipt printer (edge_agent/receipt.py), from its ESC/POS real-time status (DLE EOT n).
    PRINTER_PAPER_OUT = "printer_paper_out"
    PRINTER_OFFLINE = "printer_offline"  # cannot be opened, does not answer, or says it is offline (cover open)
    PRINTER_ERROR = "printer_error"  # it failed while printing, or took longer than its timeout


# What the wire accepts as a code: any slug, so that a kiosk newer than its bridge can name a
# code the bridge does not know yet and still be stored.
ErrorCodeText = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]

# The device refuses the kiosk for want of a bond: a person must pair it again at the kiosk.
BOND_ERRORS: Final = frozenset({DeviceErrorCode.BLE_NOT_BONDED, DeviceErrorCode.BLE_BOND_LOST})
# The kiosk could not reach the device at all (as opposed to reaching it and failing).
UNREACHABLE_ERRORS: Final = frozenset(
    {
        DeviceErrorCode.BLE_NOT_FOUND,
        DeviceErrorCode.BLE_OUT_OF_SLOTS,
        DeviceErrorCode.BLE_ABORTED,
        DeviceErrorCode.BLE_CONNECT_FAILED,
        DeviceErrorCode.MODBUS_TIMEOUT,
        DeviceErrorCode.MODBUS_NO_SUCH_UNIT,
        DeviceErrorCode.MODBUS_DISCONNECTED,
        DeviceErrorCode.READER_GONE,
        DeviceErrorCode.PRINTER_OFFLINE,
    }
)
