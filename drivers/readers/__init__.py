"""Card and QR readers on a serial port: a pure frame splitter and number extractor
(`framing`), and a session that reads the port through pyserial and reconnects (`session`).

Nothing here logs what a reader read: a card number is a resident's, and becomes a pseudonym
at once in the agent (contract/pseudonym.py)."""
