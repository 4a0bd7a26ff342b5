"""Doorstep's benchmarks: each measures a Doorstep path against the raw stack it is built on
(paho-mqtt, Mosquitto, SQLite, PostgreSQL used directly), in the same run on the same machine,
and reports the ratio. A ratio means something on a noisy, shared machine; a bare figure does not.

One command each, from the repository root: `.venv/bin/python -m benchmarks.drain` (drain,
save, footprint, latency, ingest, fleet, scale_out). Each prints a table and writes its section
of docs/performance.md (plots under docs/performance/). These are measurements, not tests:
tests/test_benchmarks_smoke.py only runs each at a tiny size so they cannot rot.
"""
