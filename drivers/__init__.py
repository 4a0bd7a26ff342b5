"""Device protocols, one package per bus: ``ble/`` (Bluetooth SIG health profiles over bleak)
and ``laundry/`` (washers and dryers on RS-485, Modbus RTU over pymodbus). Decoding is pure
code on bytes or registers, tested on the specifications' vectors and fuzzed; sessions do the
I/O. Imports nothing of ours but the wire contract and ``firmware_configs``."""
