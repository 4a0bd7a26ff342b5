"""Load for the bridge: the fleet simulator's own messages (doorstep/simulate.py: the wire
contract's models, readings sealed), minted without connections, in the simulator's mix, then
published as fast as the raw stack can (benchmarks/raw_mqtt.py)."""

from __future__ import annotations

import random

from runtime.mqtt import BrokerSettings
from doorstep.simulate import Fleet, Mix

__all__ = ["Mix", "messages"]

from benchmarks.stack import payload_keys


def messages(count: int, kiosks: int = 200, seed: int = 9, mix: Mix = Mix()) -> list[tuple[str, bytes]]:
    """`count` valid upstream messages from `kiosks` kiosks, in the proportions of `mix`,
    interleaved across kiosks as a district's traffic is."""
    fleet = Fleet(BrokerSettings(), kiosks, site="load", payload_public_key=payload_keys()[1], seed=seed, mix=mix)
    rng = random.Random(seed)
    every = [mix.telemetry_every_s, mix.reading_every_s, mix.machine_event_every_s, mix.vend_every_s]
    names = ["telemetry", "reading", "machine_event", "vend"]
    weights = [1 / s if s > 0 else 0.0 for s in every]  # 0: that kind is not in the mix
    out: list[tuple[str, bytes]] = []
    for _ in range(count):
        kiosk = rng.choice(fleet.kiosks)
        getattr(kiosk, rng.choices(names, weights)[0])()
        message_id = kiosk.waiting.pop()
        owed = kiosk.owed.pop(message_id)
        out.append((owed.topic, owed.body))
    return out
