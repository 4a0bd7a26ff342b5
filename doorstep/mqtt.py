"""The one way Doorstep builds a paho-mqtt client: MQTT 5, callback API v2, persistent session.

MQTT 5 throughout: under 3.1.1 a publish the broker's ACL refuses is still acknowledged as a
success and silently dropped; under 5 the PUBACK carries "not authorized".
"""

from __future__ import annotations

from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, Field, SecretStr

# The broker keeps a session (subscriptions, queued QoS 1 messages) this long after a client
# goes away, so a reconnecting kiosk or bridge gets what was sent to it meanwhile.
SESSION_EXPIRY_S: Final = 7 * 24 * 3600


class BrokerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1)
    reconnect_max_s: int = Field(default=60, ge=1)


def make_client(client_id: str, broker: BrokerSettings) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if broker.username is not None:
        client.username_pw_set(
            broker.username, broker.password.get_secret_value() if broker.password else None
        )
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)
    return client


def connect_in_background(client: mqtt.Client, broker: BrokerSettings) -> None:
    """Connect with a persistent session and keep reconnecting from paho's network thread."""
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
