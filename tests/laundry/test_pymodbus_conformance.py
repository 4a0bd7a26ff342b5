"""Pins the pymodbus names, signatures and behaviours drivers/laundry/bus.py and simulator.py use.

pymodbus changes its API between minor versions (device_id= replaced slave= in 3.10, the
datastore was reworked in 3.11); if an upgrade moves any of these, this file fails first.
"""

from __future__ import annotations

import inspect

import pymodbus
import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import ConnectionException, ModbusIOException, NoSuchIdException
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, WriteMultipleRegistersResponse
from pymodbus.server import ModbusSerialServer
from pymodbus.transaction import TransactionManager
from pymodbus.transport import ModbusProtocol

from drivers.laundry.simulator import LaundryRoomSimulator, _RoomContext


def params(func: object) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_the_pinned_minor() -> None:
    assert pymodbus.__version__.startswith("3.16."), pymodbus.__version__


def test_client_constructor_and_calls() -> None:
    p = params(AsyncModbusSerialClient.__init__)
    for name in ("framer", "baudrate", "timeout", "retries", "reconnect_delay", "reconnect_delay_max", "trace_packet"):
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert list(p)[1] == "port"
    read = params(AsyncModbusSerialClient.read_holding_registers)
    assert list(read)[:2] == ["self", "address"]
    assert read["count"].kind is read["device_id"].kind is inspect.Parameter.KEYWORD_ONLY
    write = params(AsyncModbusSerialClient.write_registers)
    assert list(write)[:3] == ["self", "address", "values"]
    assert write["device_id"].kind is inspect.Parameter.KEYWORD_ONLY
    assert callable(AsyncModbusSerialClient.connect) and callable(AsyncModbusSerialClient.close)
    assert issubclass(ModbusIOException, Exception) and issubclass(ConnectionException, Exception)


def test_reply_objects() -> None:
    for name in ("isError", "dev_id", "function_code", "registers"):
        assert hasattr(ReadHoldingRegistersResponse(registers=[1]), name)
    exc = ExceptionResponse(3, ExcCodes.ILLEGAL_ADDRESS)
    assert exc.isError() and exc.exception_code == 2 and exc.function_code == 0x83
    assert issubclass(ReadHoldingRegistersResponse, ModbusPDU)
    assert (ExcCodes.ILLEGAL_FUNCTION, ExcCodes.ILLEGAL_ADDRESS, ExcCodes.GATEWAY_NO_RESPONSE) == (1, 2, 0x0B)
    assert ExcCodes.DEVICE_BUSY == 6
    # bus.py checks a write's reply echoes the address and quantity written (Application Protocol 6.12).
    written = WriteMultipleRegistersResponse()
    written.decode(bytes([0, 32, 0, 3]))
    assert (written.address, written.count) == (32, 3)
    assert {"address", "count"} <= set(params(ModbusPDU.__init__))  # on every reply the bus may get
    # A read reply's length comes from its byte count, not from the request: a short reply
    # decodes as fewer registers, so bus.py must count them itself.
    short = ReadHoldingRegistersResponse()
    short.decode(bytes([2, 0, 7]))
    assert list(short.registers) == [7]


def test_the_serial_port_is_opened_exclusively_through_pyserial() -> None:
    """One owner per port: pymodbus opens it with pyserial's exclusive=True (flock)."""
    import serial
    from pymodbus.transport.serialtransport import SerialTransport

    source = inspect.getsource(SerialTransport.__init__)
    assert "serial.serial_for_url(" in source and "exclusive=True" in source
    assert "exclusive" in params(serial.Serial.__init__)


def test_trace_packet_sees_the_whole_receive_buffer() -> None:
    """bus.py classifies CRC errors by watching received bytes through trace_packet."""
    source = inspect.getsource(TransactionManager.callback_data)
    assert "self.trace_packet(False, data)" in source
    assert "self.recv_buffer = b\"\"" in inspect.getsource(TransactionManager.execute)
    assert "self.trace_packet(True, packet)" in inspect.getsource(TransactionManager.pdu_send)


def rtu(frame: bytes) -> bytes:
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def test_rtu_framer_behaviour_the_bus_relies_on() -> None:
    framer = FramerRTU(DecodePDU(False))
    good = rtu(bytes([3, 3, 2, 0, 7]))
    used, pdu = framer.handleFrame(good, 3, 0)
    assert pdu is not None and pdu.dev_id == 3 and list(pdu.registers) == [7]
    # A frame from another unit is skipped (so late replies from *other* units are harmless)...
    assert framer.handleFrame(good, 4, 0)[1] is None
    # ...and a CRC failure is swallowed silently: it surfaces only as a timeout.
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    used, pdu = framer.handleFrame(bad, 3, 0)
    assert pdu is None and used == len(bad)
    # The function code is NOT checked against the request: bus.py does that itself.
    assert "function_code" not in inspect.getsource(TransactionManager.execute)


@pytest.mark.asyncio
async def test_server_hooks_the_simulator_uses() -> None:
    p = params(ModbusSerialServer.__init__)
    for name in ("framer", "port", "baudrate", "ignore_missing_devices", "trace_packet"):
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert list(params(ModbusServerContext.async_getValues)) == ["self", "device_id", "func_code", "address", "count"]
    assert list(params(ModbusServerContext.async_setValues)) == ["self", "device_id", "func_code", "address", "values"]
    assert callable(ModbusSerialServer.callback_new_connection) and callable(ModbusProtocol.send)
    assert issubclass(NoSuchIdException, Exception)
    # A ModbusServerContext flagged old_simulator is used as the datastore as-is.
    context = _RoomContext(LaundryRoomSimulator("/dev/null"))
    server = ModbusSerialServer(context, framer=FramerType.RTU, port="/dev/null", ignore_missing_devices=True)
    assert server.context is context
    # NoSuchIdException + ignore_missing_devices = no reply at all (a silent unit).
    from pymodbus.server.requesthandler import ServerRequestHandler

    source = inspect.getsource(ServerRequestHandler.handle_request)
    assert "except NoSuchIdException" in source and "ignore_missing_devices" in source
    # ...and without ignore_missing_devices, a gateway's answer: exception 0x0B.
    assert "ExcCodes.GATEWAY_NO_RESPONSE" in source


@pytest.mark.parametrize("name", ["serve_forever", "shutdown"])
def test_server_life_cycle(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(ModbusSerialServer, name))
