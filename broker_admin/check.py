"""Can this client reach the broker, and if not, exactly why: for the log and `doorstep doctor`.

paho retries a failed connection silently; a kiosk with a wrong CA, an expired certificate or a
wrong password must say so in plain words instead. The check connects once, synchronously.

It must leave the session of the account it checks as it was. On a broker that binds the client
id to the username (deploy/mosquitto/doorstep.conf, use_username_as_clientid: issue 16) the
check's own client id is replaced by the account's, so it lands in the agent's session whatever
id it sends: a clean start would throw away the commands and acks queued for the kiosk. So it
resumes the session (clean_start=0) with the agent's expiry, acknowledges nothing that the
broker delivers from it (manual acks: unacknowledged, they are sent again to the agent,
MQTT 5.0, 4.4), subscribes to nothing, and leaves with a normal DISCONNECT. An agent connected
at that moment is disconnected by the broker and reconnects."""

from __future__ import annotations

import queue
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from runtime.mqtt import SESSION_EXPIRY_S, BrokerSettings, TlsSettings, make_client

# MQTT 5.0, 3.2.2.2 CONNACK reason codes.
BAD_CREDENTIALS = 0x86
NOT_AUTHORIZED = 0x87


def _handshake(broker: BrokerSettings, tls: TlsSettings, timeout_s: float) -> None:
    """A TLS handshake as paho will do it (the same CA, client certificate, host-name check)."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    with socket.create_connection((broker.host, broker.port), timeout=timeout_s) as raw:
        with context.wrap_socket(raw, server_hostname=broker.host) as wrapped:
            # TLS 1.3 sends the server's verdict on our certificate after the handshake: read
            # once, briefly, so a refused client certificate shows up here too.
            wrapped.settimeout(0.5)
            try:
                wrapped.recv(1)
            except TimeoutError:
                pass


@dataclass(frozen=True, slots=True)
class BrokerCheck:
    ok: bool
    detail: str


def check_broker(broker: BrokerSettings, client_id: str, *, timeout_s: float = 5.0) -> BrokerCheck:
    where = f"{broker.host}:{broker.port}"
    answers: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
    client = make_client(f"{client_id}-check"[:64], broker)

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        answers.put(reason)

    client.on_connect = on_connect
    client.manual_ack_set(True)  # what the session holds for the agent stays the agent's
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S  # the session's expiry is the last CONNECT's
    try:
        if broker.tls is not None:
            # Our own handshake first: paho leaks the socket of a failed one, and says less.
            try:
                _handshake(broker, broker.tls, timeout_s)
            except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
                # A plaintext listener reads our ClientHello as a broken MQTT packet and hangs up.
                return BrokerCheck(False, f"TLS to {where} failed: the broker hung up during the handshake "
                                          "(does this port speak TLS? broker.tls is set, so plaintext is never tried)")
        client.connect(broker.host, broker.port, keepalive=max(5, int(timeout_s)), clean_start=False,
                       properties=properties)
    except ssl.SSLCertVerificationError as error:
        return BrokerCheck(False, f"TLS to {where}: the broker's certificate is not trusted ({error.verify_message})")
    except ssl.SSLError as error:
        return BrokerCheck(False, f"TLS to {where} failed: {error.reason or error}")
    except ConnectionRefusedError:
        return BrokerCheck(False, f"nothing accepts connections on {where}")
    except TimeoutError:
        return BrokerCheck(False, f"{where} did not answer within {timeout_s:.0f} s")
    except OSError as error:
        return BrokerCheck(False, f"cannot reach {where}: {error.strerror or error}")
    client.loop_start()
    try:
        reason = answers.get(timeout=timeout_s)
    except queue.Empty:
        hint = "" if broker.tls else " (a TLS-only port closes plaintext connections: set broker.tls)"
        return BrokerCheck(False, f"{where} accepted the connection but never answered CONNECT{hint}")
    finally:
        client.disconnect()
        client.loop_stop()
    if reason.is_failure:
        hint = " (check broker.username and broker.password, or the client certificate)" if reason.value in (
            BAD_CREDENTIALS, NOT_AUTHORIZED) else ""
        return BrokerCheck(False, f"{where} refused this client: {reason}{hint}")
    tls = " over TLS" if broker.tls else ""
    return BrokerCheck(True, f"connected to {where}{tls}" + (f" as {broker.username}" if broker.username else ""))
