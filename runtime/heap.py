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


# A young generation this big is collected about once per gulp of 1,000 messages stored by the
# bridge, not every 700 allocations: with Python's default, the collector ran 2,000 times over
# 20,000 ingested messages, 35-44 µs of CPU a message (a fifth of all), to find nearly nothing
# (a message's objects are freed by their reference counts, not by the collector).
YOUNG_OBJECTS_PER_COLLECTION = 50_000


def collect_less_often() -> None:
    """For a process that allocates and frees many objects per unit of work (the bridge's
    ingest): the young generation is collected every YOUNG_OBJECTS_PER_COLLECTION allocations."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, older, oldest)
