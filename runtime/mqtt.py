"""The one way Doorstep builds a paho-mqtt client: MQTT 5, callback API v2, persistent session.

MQTT 5 throughout: under 3.1.1 a publish the broker's ACL refuses is still acknowledged as a
success and silently dropped; under 5 the PUBACK carries "not authorized".
"""

from __future__ import annotations

import random
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, Field, FilePath, SecretStr, model_validator

# The broker keeps a session (subscriptions, queued QoS 1 messages) this long after a client
# goes away, so a reconnecting kiosk or bridge gets what was sent to it meanwhile.
SESSION_EXPIRY_S: Final = 7 * 24 * 3600


class TlsSettings(BaseModel):
    """TLS to the broker. There is no fallback: a kiosk configured for TLS never speaks plaintext."""

    ca_file: FilePath = Field(description="the CA that signed the broker's certificate (PEM)")
    cert_file: FilePath | None = Field(default=None, description="this client's certificate (PEM), if the broker asks for one")
    key_file: FilePath | None = Field(default=None, description="its private key (PEM)")

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class BrokerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1)
    reconnect_max_s: int = Field(default=60, ge=1)


def reconnect_delay_s(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the capped delay, plus a random half, so a
    district's kiosks coming back after a broker restart do not all knock at the same second."""
    cap = min(max_s, min_s * 2 ** min(attempt, 32))
    return cap / 2 + rng.uniform(0, cap / 2)


def no_delay(sock: Any) -> None:
    """Send small packets at once (TCP_NODELAY): paho does not, and Nagle's algorithm holding a
    small publish until the previous one's TCP ACK, which the other side delays by 40 ms, cost
    every ack round trip ~90 ms on loopback (measured, benchmarks/drain.py: a backlog drained at
    ~200 records/s with a window of 20)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (a test's socket pair, a websocket wrapper)


def make_client(client_id: str, broker: BrokerSettings) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    client.on_socket_open = lambda _client, _userdata, sock: no_delay(sock)
    if broker.username is not None:
        client.username_pw_set(
            broker.username, broker.password.get_secret_value() if broker.password else None
        )
    if broker.tls is not None:
        tls = broker.tls
        client.tls_set(
            ca_certs=str(tls.ca_file),
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,  # and paho checks the host name against the certificate
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)
    return client


def use_jittered_backoff(client: mqtt.Client, broker: BrokerSettings, rng: random.Random | None = None) -> None:
    """paho doubles its reconnect delay without jitter. Before each of its waits (after a lost
    connection or a failed attempt) set the next delay ourselves; a good connection resets it.
    Wraps the client's on_connect/on_disconnect, so call it after assigning those."""
    rng = rng or random.Random()
    attempts = 0
    inner_connect: Any = client.on_connect  # callback API v2 signatures, set by our callers
    inner_disconnect: Any = client.on_disconnect
    inner_connect_fail: Any = client.on_connect_fail

    def schedule() -> None:
        nonlocal attempts
        delay = reconnect_delay_s(attempts, broker.reconnect_min_s, broker.reconnect_max_s, rng)
        attempts += 1
        # min = max: paho waits exactly this long. (Typed int; paho only sleeps on it.)
        client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        nonlocal attempts
        if not reason.is_failure:  # a refusal is followed by on_disconnect, which schedules
            attempts = 0
        if inner_connect is not None:
            inner_connect(c, userdata, flags, reason, properties)

    def on_disconnect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        schedule()
        if inner_disconnect is not None:
            inner_disconnect(c, userdata, flags, reason, properties)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    def on_connect_fail(c: mqtt.Client, userdata: Any) -> None:
        schedule()
        if inner_connect_fail is not None:
            inner_connect_fail(c, userdata)

    client.on_connect_fail = on_connect_fail
    schedule()


def release(client: mqtt.Client) -> None:
    """After disconnect and loop_stop: close the client's sockets now, its connection (left open
    when stopped while its network thread was still connecting) and its internal socket pair,
    as its __del__ would (paho 2.2, Client._reset_sockets), and break the cycles through the
    callbacks (bound methods of their owner, the backoff's closures over the client). Left to
    the cycle collector, the sockets were finalised unclosed now and then: a ResourceWarning,
    one per client a process replaces (an uplink moved to a new broker, a stopped worker)."""
    client._reset_sockets()  # noqa: SLF001 - paho's own clean-up, which has no public name
    client.on_connect = client.on_disconnect = client.on_connect_fail = None
    client.on_publish = client.on_message = client.on_subscribe = client.on_unsubscribe = None


def connect_in_background(client: mqtt.Client, broker: BrokerSettings) -> None:
    """Connect with a persistent session and keep reconnecting, with jittered backoff, from
    paho's network thread."""
    use_jittered_backoff(client, broker)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect_async(
        broker.host,
        broker.port,
        keepalive=broker.keepalive_s,
        clean_start=False,
        properties=properties,
    )
    client.loop_start()


@dataclass(frozen=True, slots=True)
class PubAck:
    """The broker's PUBACK of one QoS 1 publish, as paho's network thread hands it over to the
    thread that sent it (through a queue: plain values, no paho object)."""

    mid: int
    reason: str
    failed: bool

    @classmethod
    def of(cls, mid: int, reason: ReasonCode) -> PubAck:
        return cls(mid, str(reason), reason.is_failure)


def publish_properties(user: dict[str, str]) -> Properties:
    """A PUBLISH's properties carrying `user` as MQTT 5 user properties (section 3.3.2.3.7):
    what a client of before ignores, and the broker forwards and retains unchanged."""
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = list(user.items())
    return properties


def user_properties(properties: Properties | None) -> dict[str, str]:
    """A received message's MQTT 5 user properties (none from an MQTT 3 publisher)."""
    pairs = getattr(properties, "UserProperty", None) or []
    return {str(name): str(value) for name, value in pairs}
