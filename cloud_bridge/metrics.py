"""The bridge's Prometheus metrics, one registry per worker (no process-global state), served at
/metrics by the API."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "doorstep_bridge_messages", "Upstream messages by channel and outcome (stored, duplicate, refused)",
            ["channel", "outcome"], registry=r,
        )
        self.dead_letters = Counter("doorstep_bridge_dead_letters", "Messages refused for breaking the contract", registry=r)
        self.dead_letters_dropped = Counter(
            "doorstep_bridge_dead_letters_dropped", "Refused messages not kept: a flood past the backlog", registry=r
        )
        self.unopenable = Counter(
            "doorstep_bridge_sealed_without_key", "Readings sealed for a payload key this bridge does not hold", registry=r
        )
        self.acks = Counter("doorstep_bridge_acks", "Ack messages published to kiosks after a commit", registry=r)
        # A gulp: the messages a worker stores in one transaction (a kiosk's batch is another thing).
        self.gulp_failures = Counter("doorstep_bridge_gulp_failures", "Gulps not stored (kiosks re-send them)", registry=r)
        self.gulp_seconds = Histogram(
            "doorstep_bridge_gulp_seconds", "Time to store and commit one gulp (decoded as it was gathered)", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.gulp_size = Histogram(
            "doorstep_bridge_gulp_size", "Messages per gulp", registry=r, buckets=(1, 5, 10, 25, 50, 100, 200, 500, 1000),
        )
        self.alerts = Counter("doorstep_bridge_alerts_opened", "Alerts opened, by kind", ["kind"], registry=r)
        self.webhooks = Counter("doorstep_bridge_webhooks", "Webhook posts by outcome", ["outcome"], registry=r)
        self.disconnects = Counter(
            "doorstep_bridge_broker_disconnects",
            "Unexpected disconnects of this worker from the broker, by reason (a session taken over among them)",
            ["reason"], registry=r,
        )
        self.commands = Counter("doorstep_bridge_commands_published", "Command publishes (first or again)", registry=r)
