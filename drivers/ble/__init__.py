"""Bluetooth LE health devices: a pure decoder per characteristic (its module cites the GATT
Specification Supplement section it implements; ``characteristics`` is the table behind
``doorstep decode``), the sessions that connect with bleak and bleak-retry-connector, bond and
collect readings, the errors they raise (``errors``), and a simulated-peripheral backend
(``simulated/``) that lets the production ``BleakClient`` run with no radio."""
