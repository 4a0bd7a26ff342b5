"""Washers and dryers on one RS-485 line (Modbus RTU): pure rules for a status block
(``status``), for what a line error does to a machine's link (``link``) and for a paid start
as one table (``vend``); the bus that owns the line (``bus``); and a simulated room on a
pseudo-terminal (``simulator``, ``simulated_room``, ``pty_link``) for tests and the demo."""
