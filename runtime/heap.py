"""Keeping the garbage collector's full passes short in long-running processes.

A full collection (generation 2) walks every object the collector tracks. After start-up the
agent and the bridge hold hundreds of thousands of them (modules, classes, pydantic and
SQLAlchemy structures) that live as long as the process, so each full pass walked them all for
nothing: 131 ms in the agent's event loop and 94 ms in the bridge's ingest worker, which were
the p99 of a reading's latency at rest (benchmarks/latency.py, timed with gc.callbacks).
Frozen, they are skipped (gc.freeze); what is made afterwards is collected as before.
"""

from __future__ import annotations

import gc


def freeze_start_up_objects() -> None:
    """Call once imported, before the work starts: what is alive now (modules, classes, schemas:
    they live as long as the process) is left out of every later collection."""
    gc.collect()  # garbage of the start-up itself must not be frozen with it
    gc.freeze()


# The young generation is collected every this many allocations (net of what reference counts
# freed), not every 700: with Python's default, the collector ran 2,000 times over 20,000
# ingested messages, 35-44 µs of CPU a message (a fifth of all), to find nearly nothing (a
# message's objects are freed by their reference counts, not by the collector). At 50,000 it
# still ran about once a gulp, and each pass walked the gulps being decoded and stored, a
# hundred thousand objects alive: 0.64-0.78 s of a 7 s ingest of 20,000 messages. At 500,000 a
# backlog of 20,000 runs none, and what it would find, cycles, are not made per message.
YOUNG_OBJECTS_PER_COLLECTION = 500_000


def collect_less_often() -> None:
    """For a process that allocates and frees many objects per unit of work (the bridge's
    ingest): the young generation is collected every YOUNG_OBJECTS_PER_COLLECTION allocations."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, older, oldest)
