"""The kiosk's database: one SQLite file holding everything the kiosk keeps, so that a reading,
a laundry charge or a check-in commits together with the record that tells the cloud about it.

Its layers, each importing only those above it in this list:

- the file: integrity.py (a corrupt file is set aside at start, never written to),
  migrations.py (every kiosk table created and upgraded by one numbered list of steps, the
  version in `PRAGMA user_version`), database.py (the file opened: checked, WAL and
  synchronous=FULL, migrated, one writer at a time), prepared.py (statements compiled once for
  the hot path);
- what the outbox keeps beside its records: running_clock.py (the running time records age
  by), readings_seen.py (replay fingerprints);
- outbox.py: the records themselves, saved before anyone is told "saved", sent until the
  bridge confirms them;
- the ledgers, which write through the outbox's unit of work or the database: laundry_ledger.py,
  relay_station.py, command_audit.py (remote commands), local_audit.py (the technician on the
  spot), cursors.py (how far a glucose meter's memory has been read).

The rest of the agent imports this package; it imports nothing of the agent outside it.
"""
