"""Each party kept to what it may do, against the shipped broker configuration and the rules
that `doorstep broker` gives in the dynamic-security plugin (deploy/mosquitto/doorstep.conf,
broker_admin/access.py), started for real: kiosks on the TLS listeners, a bridge worker on
loopback.

MQTT 5 reason codes asserted here: CONNACK 0x86 Bad User Name or Password and 0x87 Not
authorized (MQTT 5.0, 3.2.2.2), PUBACK 0x87 Not authorized (3.4.2.1), SUBACK 0x87 (3.9.3).
"""

from __future__ import annotations

import queue
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_bridge import ingest
from broker_admin import access
from broker_admin.check import check_broker
from broker_admin.pki import CertificateAuthority
from contract.support_bundle import MAX_BUNDLE_BYTES
from contract.topics import BRIDGE_STATUS_FILTER, UPSTREAM_CHANNELS, KioskTopics, bridge_status_topic
from runtime.mqtt import BrokerSettings, TlsSettings
from tests.shipped_broker import ShippedBroker, shipped_broker

NOT_AUTHORIZED = 0x87  # MQTT 5.0, 3.2.2.2 (CONNACK), 3.4.2.1 (PUBACK), 3.9.3 (SUBACK)
BAD_CREDENTIALS = 0x86  # 3.2.2.2
NO_MATCHING_SUBSCRIBERS = 0x10  # 3.4.2.1: a success

A = KioskTopics("site-a", "kiosk-1")
B = KioskTopics("site-b", "kiosk-2")
A_PASSWORD, B_PASSWORD, BRIDGE_PASSWORD = "a " + "x" * 30, "b " + "y" * 30, "bridge " + "z" * 30
# How long a message the broker would deliver is given to arrive: a delivered one arrives on
# loopback in milliseconds, so silence this long means it was withheld.
QUIET_S = 1.0


@dataclass
class Client:
    """A bare paho MQTT 5 client that reports every reason code the broker sends back."""

    client: mqtt.Client
    connack: ReasonCode | None = None
    pubacks: queue.SimpleQueue[tuple[int, ReasonCode]] = field(default_factory=queue.SimpleQueue)
    subacks: queue.SimpleQueue[list[ReasonCode]] = field(default_factory=queue.SimpleQueue)
    received: queue.SimpleQueue[tuple[str, bytes]] = field(default_factory=queue.SimpleQueue)

    def publish(self, topic: str, body: bytes = b"{}", retain: bool = False) -> int:
        """The PUBACK's reason code."""
        info = self.client.publish(topic, body, qos=1, retain=retain)
        while True:
            mid, reason = self.pubacks.get(timeout=5)
            if mid == info.mid:
                return reason.value

    def subscribe(self, *topics: str) -> list[int]:
        self.client.subscribe([(topic, 1) for topic in topics])
        return [reason.value for reason in self.subacks.get(timeout=5)]

    def messages(self, quiet_s: float = QUIET_S) -> list[tuple[str, bytes]]:
        """What arrives until nothing has for `quiet_s`."""
        found = []
        while True:
            try:
                found.append(self.received.get(timeout=quiet_s))
            except queue.Empty:
                return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # Break the cycle through the callbacks (they refer to this object), so that paho's
        # client is freed at once and its own __del__ closes its internal socket pair; left to
        # the cycle collector the sockets may be finalised first, unclosed (ResourceWarning).
        self.client.on_connect = self.client.on_publish = self.client.on_subscribe = None
        self.client.on_message = self.client.on_disconnect = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    shipped = shipped_broker(tmp_path)
    shipped.add_kiosk(A.site, A.kiosk, A_PASSWORD)
    shipped.add_kiosk(B.site, B.kiosk, B_PASSWORD)
    shipped.add_bridge("bridge-1", BRIDGE_PASSWORD)
    shipped.process.start()
    yield shipped
    shipped.process.stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def connect(
    made: list[Client], port: int, *, username: str | None = None, password: str | None = None,
    ca: Path | None = None, cert: tuple[Path, Path] | None = None, client_id: str | None = None,
    clean_start: bool = True,
) -> Client:
    """Connect and wait for the CONNACK (or raise what the TLS handshake raised)."""
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                       protocol=mqtt.MQTTv5)
    if username is not None:
        paho.username_pw_set(username, password)
    if ca is not None:
        paho.tls_set(ca_certs=str(ca), certfile=str(cert[0]) if cert else None, keyfile=str(cert[1]) if cert else None,
                     cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client = Client(paho)
    connacks: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
    paho.on_connect = lambda _c, _u, _f, reason, _p: connacks.put(reason)
    paho.on_publish = lambda _c, _u, mid, reason, _p: client.pubacks.put((mid, reason))
    paho.on_subscribe = lambda _c, _u, _mid, reasons, _p: client.subacks.put(list(reasons))
    paho.on_message = lambda _c, _u, message: client.received.put((message.topic, bytes(message.payload)))
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0 if clean_start else 3600
    paho.connect("127.0.0.1", port, keepalive=10, clean_start=clean_start, properties=properties)
    made.append(client)
    paho.loop_start()
    client.connack = connacks.get(timeout=5)
    return client


def kiosk(made: list[Client], broker: ShippedBroker, topics: KioskTopics, password: str, **options: Any) -> Client:
    """A kiosk on the TLS listener with its password."""
    client = connect(made, broker.config.tls_port, username=access.kiosk_username(topics.site, topics.kiosk),
                     password=password, ca=broker.ca.cert_file, **options)
    assert client.connack is not None and not client.connack.is_failure, client.connack
    return client


def bridge(made: list[Client], broker: ShippedBroker, **options: Any) -> Client:
    """A bridge worker on the loopback listener, subscribed as cloud_bridge/ingest.py does."""
    client = connect(made, broker.config.port, username="bridge-1", password=BRIDGE_PASSWORD, **options)
    assert client.connack is not None and not client.connack.is_failure, client.connack
    topics = ingest.subscriptions("bridge")
    assert client.subscribe(*topics) == [1] * len(topics)
    return client


def test_a_kiosk_publishes_only_its_own_upstream_topics(broker: ShippedBroker, clients: list[Client]) -> None:
    cloud = bridge(clients, broker)
    a = kiosk(clients, broker, A, A_PASSWORD)
    for topic in (A.reading("blood_pressure"), A.event("laundry_machine"), A.telemetry,  # type: ignore[arg-type]
                  A.command_result("r-1"), A.status, A.batch, A.alarms, A.support_bundle("r-1")):
        assert a.publish(topic) in (0, NO_MATCHING_SUBSCRIBERS), topic
    allowed = {topic for topic, _ in cloud.messages()}
    assert len(allowed) == 8
    # As kiosk B, anywhere outside its own tree, or downstream (forging its own acks/commands):
    # MQTT 5 says so in the PUBACK, where 3.1.1 would have acknowledged and dropped it.
    refused = [B.reading("blood_pressure"), B.status, B.alarms, B.telemetry, B.command_result("r-1"), B.batch,  # type: ignore[arg-type]
               B.support_bundle("r-1"), f"{A.root}/support_bundles",
               f"{A.batch}/readings/blood_pressure",
               A.acks, A.command("r-2"), B.acks, B.command("r-3"),
               f"{A.root}/readings/blood_pressure/extra", "doorstep/v1/site-a", "elsewhere/entirely", "$SYS/broker/x"]
    for topic in refused:
        assert a.publish(topic) == NOT_AUTHORIZED, topic
    assert cloud.messages() == []  # and nothing of it reached anyone


def test_a_kiosk_uploads_a_support_bundle_of_the_largest_size_only_as_itself(
    broker: ShippedBroker, clients: list[Client]
) -> None:
    """The bundle topic is the kiosk's own, like its other upstream ones; and a bundle of the
    contract's largest size fits the shipped broker's max_packet_size (128 KiB)."""
    cloud = bridge(clients, broker)
    a = kiosk(clients, broker, A, A_PASSWORD)
    largest = bytes(MAX_BUNDLE_BYTES)
    assert a.publish(A.support_bundle("r-64-characters-" + "x" * 48), largest) in (0, NO_MATCHING_SUBSCRIBERS)
    assert a.publish(B.support_bundle("r-1"), largest) == NOT_AUTHORIZED
    assert [(topic, len(body)) for topic, body in cloud.messages()] == [
        (A.support_bundle("r-64-characters-" + "x" * 48), MAX_BUNDLE_BYTES)]


def test_a_kiosks_rules_name_every_upstream_channel_of_the_contract() -> None:
    """A channel added to the contract (as `batch` was) is one the ACL must let kiosks write."""
    written = {acl.topic.removeprefix(A.root + "/").split("/")[0]
               for acl in access.kiosk_acls(A.site, A.kiosk) if acl.acltype == "publishClientSend"}
    assert written == set(UPSTREAM_CHANNELS)


def test_a_kiosk_reads_only_its_own_commands_and_acks(broker: ShippedBroker, clients: list[Client]) -> None:
    cloud = bridge(clients, broker)
    a = kiosk(clients, broker, A, A_PASSWORD)
    b = kiosk(clients, broker, B, B_PASSWORD)
    assert b.subscribe(B.acks, B.command("+")) == [1, 1]
    # Refused at the SUBSCRIBE (the plugin checks it; Mosquitto's acl_file never did), and each
    # message is checked against the reader's receive rules on delivery as well.
    granted = a.subscribe("#", "doorstep/v1/#", B.command("+"), B.acks, f"{B.root}/#", f"{A.root}/#")
    assert granted == [NOT_AUTHORIZED] * 6, granted
    assert a.subscribe(A.acks, A.command("+")) == [1, 1]
    for target in (B, A):
        assert cloud.publish(target.command("req-1"), b'{"command": "ping"}') in (0, NO_MATCHING_SUBSCRIBERS)
        assert cloud.publish(target.acks, b'{"message_ids": []}') in (0, NO_MATCHING_SUBSCRIBERS)
    b.publish(B.reading("blood_pressure"))  # type: ignore[arg-type]
    b.publish(B.status, b'{"state": "online"}', retain=True)
    assert sorted({topic for topic, _ in a.messages()}) == sorted([A.command("req-1"), A.acks])
    assert sorted({topic for topic, _ in b.messages()}) == sorted([B.command("req-1"), B.acks])
    # Nor can it see another kiosk's retained status by subscribing later.
    late = kiosk(clients, broker, A, A_PASSWORD)
    assert late.subscribe("#") == [NOT_AUTHORIZED]
    assert late.messages() == []


def test_the_bridge_reads_every_kiosk_and_writes_only_commands_and_acks(broker: ShippedBroker, clients: list[Client]) -> None:
    a = kiosk(clients, broker, A, A_PASSWORD)
    a.publish(A.status, b'{"state": "online"}', retain=True)
    cloud = bridge(clients, broker)  # after the status: it comes on the worker's own subscription
    a.publish(A.reading("blood_pressure"))  # type: ignore[arg-type]
    kiosk(clients, broker, B, B_PASSWORD).publish(B.telemetry)
    assert sorted({topic for topic, _ in cloud.messages()}) == sorted([A.status, A.reading("blood_pressure"), B.telemetry])  # type: ignore[arg-type]
    for topic in (A.command("req-1"), B.acks):
        assert cloud.publish(topic) in (0, NO_MATCHING_SUBSCRIBERS), topic
    # A bridge that is broken into still cannot put words in a kiosk's mouth.
    for topic in (A.reading("blood_pressure"), A.status, B.telemetry, B.command_result("r-1"), "doorstep/v1/x"):  # type: ignore[arg-type]
        assert cloud.publish(topic) == NOT_AUTHORIZED, topic


def test_unknown_clients_and_wrong_passwords_are_refused(broker: ShippedBroker, clients: list[Client]) -> None:
    for port, tls in ((broker.config.port, None), (broker.config.tls_port, broker.ca.cert_file)):
        for username, password in ((None, None), ("stranger", "guess"), ("site-a.kiosk-1", B_PASSWORD),
                                   ("site-a.kiosk-1", None), ("bridge-1", A_PASSWORD)):
            refused = connect(clients, port, username=username, password=password, ca=tls)
            assert refused.connack is not None and refused.connack.value in (NOT_AUTHORIZED, BAD_CREDENTIALS), (
                port, username, refused.connack)


def test_plaintext_is_refused_on_the_tls_ports(broker: ShippedBroker, clients: list[Client]) -> None:
    for port in (broker.config.tls_port, broker.config.certificate_port):
        with pytest.raises((TimeoutError, queue.Empty, ConnectionError, OSError)):
            connect(clients, port, username="site-a.kiosk-1", password=A_PASSWORD)
    assert "wrong version number" in (broker.process.log_path.read_text() if broker.process.log_path else "")


def test_a_client_certificate_is_the_kiosk_whatever_username_it_sends(
    tmp_path: Path, broker: ShippedBroker, clients: list[Client]
) -> None:
    """On the certificate listener the Common Name is the username (use_identity_as_username):
    a kiosk's certificate cannot be used to speak as another kiosk, and no password is needed."""
    b_cert = broker.ca.issue_kiosk(B.site, B.kiosk)
    port, ca = broker.config.certificate_port, broker.ca.cert_file
    as_b = connect(clients, port, ca=ca, cert=(b_cert.cert, b_cert.key))
    assert as_b.connack is not None and not as_b.connack.is_failure
    assert as_b.publish(B.telemetry) in (0, NO_MATCHING_SUBSCRIBERS)
    pretending = connect(clients, port, username="site-a.kiosk-1", password=A_PASSWORD, ca=ca, cert=(b_cert.cert, b_cert.key))
    assert pretending.publish(A.telemetry) == NOT_AUTHORIZED
    assert pretending.publish(B.telemetry) in (0, NO_MATCHING_SUBSCRIBERS)
    # No certificate, or one from another CA: refused in the handshake, before MQTT.
    rogue = CertificateAuthority.create(tmp_path / "rogue", "rogue CA").issue_kiosk(A.site, A.kiosk)
    for cert in (None, (rogue.cert, rogue.key)):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, queue.Empty)):
            connect(clients, port, username="site-a.kiosk-1", password=A_PASSWORD, ca=ca, cert=cert)


def test_a_removed_kiosk_is_disconnected_and_locked_out_at_once(broker: ShippedBroker, clients: list[Client]) -> None:
    """A stolen kiosk is taken off the broker: its account removed on the running broker, no
    reload; whether it logs in with a password or a certificate, it is disconnected at once."""
    a = kiosk(clients, broker, A, A_PASSWORD)
    b_cert = broker.ca.issue_kiosk(B.site, B.kiosk)
    b = connect(clients, broker.config.certificate_port, ca=broker.ca.cert_file, cert=(b_cert.cert, b_cert.key))
    disconnected: dict[str, queue.SimpleQueue[ReasonCode]] = {"a": queue.SimpleQueue(), "b": queue.SimpleQueue()}
    for name, client in (("a", a), ("b", b)):
        client.client.on_disconnect = lambda _c, _u, _f, reason, _p, name=name: disconnected[name].put(reason)  # type: ignore[misc]
    with broker.admin() as admin:
        for username in ("site-a.kiosk-1", "site-b.kiosk-2"):
            assert access.revoke(admin, username)
        assert not access.revoke(admin, "site-a.kiosk-1")  # nothing left to remove
    disconnected["a"].get(timeout=5)
    disconnected["b"].get(timeout=5)
    for client in (a, b):
        client.client.loop_stop()
    again = connect(clients, broker.config.tls_port, username="site-a.kiosk-1", password=A_PASSWORD, ca=broker.ca.cert_file)
    assert again.connack is not None and again.connack.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    # A certificate cannot be revoked without a CRL: it still connects (the certificate listener
    # asks no password of the plugin), but with its account gone it may do nothing.
    b_again = connect(clients, broker.config.certificate_port, ca=broker.ca.cert_file, cert=(b_cert.cert, b_cert.key))
    assert b_again.publish(B.telemetry) == NOT_AUTHORIZED
    assert b_again.subscribe(B.acks) == [NOT_AUTHORIZED]


def test_a_kiosk_using_another_kiosks_client_id_does_not_take_over_its_session(
    broker: ShippedBroker, clients: list[Client]
) -> None:
    """Issue 16, finding 2 for kiosks: the client id is the account's (use_username_as_clientid),
    so kiosk A sending B's client id gets a session of its own. B, connected, stays connected;
    what was queued for B while it was away is still there for B. (Before, A took B's session
    over: B was disconnected and lost its queued commands and acks.)"""
    b_id = "doorstep-agent-site-b-kiosk-2"
    b = kiosk(clients, broker, B, B_PASSWORD, client_id=b_id, clean_start=False)
    assert b.subscribe(B.acks, B.command("+")) == [1, 1]
    b.close()
    cloud = bridge(clients, broker)
    cloud.publish(B.command("req-1"), b'{"command": "ping"}')
    cloud.publish(B.acks, b'{"message_ids": []}')
    # With a password, and with B's id under A's certificate too.
    thief = kiosk(clients, broker, A, A_PASSWORD, client_id=b_id, clean_start=False)
    assert thief.connack is not None and not thief.connack.is_failure
    a_cert = broker.ca.issue_kiosk(A.site, A.kiosk)
    by_certificate = connect(clients, broker.config.certificate_port, ca=broker.ca.cert_file,
                             cert=(a_cert.cert, a_cert.key), client_id=b_id, clean_start=False)
    assert by_certificate.connack is not None and not by_certificate.connack.is_failure
    assert thief.messages() == [] and by_certificate.messages(quiet_s=0.1) == []
    back = kiosk(clients, broker, B, B_PASSWORD, client_id=b_id, clean_start=False)
    assert sorted(topic for topic, _ in back.messages()) == sorted([B.command("req-1"), B.acks])
    # And B, connected, is not disconnected by A presenting its client id again.
    dropped: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
    back.client.on_disconnect = lambda _c, _u, _f, reason, _p: dropped.put(reason)
    kiosk(clients, broker, A, A_PASSWORD, client_id=b_id, clean_start=False)
    connect(clients, broker.config.certificate_port, ca=broker.ca.cert_file, cert=(a_cert.cert, a_cert.key),
            client_id=b_id, clean_start=True)
    time.sleep(QUIET_S)
    assert dropped.empty()
    assert back.publish(B.telemetry) in (0, NO_MATCHING_SUBSCRIBERS)  # still connected, still itself


def test_bridge_workers_announce_themselves_to_kiosks_and_only_they_may(broker: ShippedBroker, clients: list[Client]) -> None:
    cloud = bridge(clients, broker)
    a = kiosk(clients, broker, A, A_PASSWORD)
    assert a.subscribe(BRIDGE_STATUS_FILTER) == [1]
    online = b'{"state": "online", "at": null}'
    assert cloud.publish(bridge_status_topic("bridge-1"), online, retain=True) in (0, NO_MATCHING_SUBSCRIBERS)
    assert a.messages() == [(bridge_status_topic("bridge-1"), online)]
    # A kiosk cannot pretend a bridge worker is up (its backlog would go to nobody).
    assert a.publish(bridge_status_topic("bridge-9"), online) == NOT_AUTHORIZED


# --- Issue 16: a kiosk against the bridge's shared subscription and its session ----------------

READINGS = 40


def test_a_kiosk_cannot_join_the_bridges_shared_subscription(broker: ShippedBroker, clients: list[Client]) -> None:
    """Finding 1. Kiosk A, with its own password, opens three connections, each subscribing every
    shared filter of the bridge's group (and of another group). Each SUBSCRIBE is refused (SUBACK
    0x87), and the bridge gets all of B's readings on first delivery. Before, Mosquitto granted
    them, gave A its turn of every message and dropped the ones A may not read: the bridge got
    10-11 of 40."""
    cloud = bridge(clients, broker)
    shared = ingest.subscriptions("bridge")
    for _ in range(3):
        hostile = kiosk(clients, broker, A, A_PASSWORD)
        assert hostile.subscribe(*shared) == [NOT_AUTHORIZED] * len(shared)
        assert hostile.subscribe(*ingest.subscriptions("kiosks")) == [NOT_AUTHORIZED] * len(shared)
    b = kiosk(clients, broker, B, B_PASSWORD)
    for index in range(READINGS):
        assert b.publish(B.reading("blood_pressure"), f'{{"n": {index}}}'.encode()) == 0  # type: ignore[arg-type]
    received = [body for topic, body in cloud.messages() if topic == B.reading("blood_pressure")]  # type: ignore[arg-type]
    assert sorted(received) == sorted(f'{{"n": {index}}}'.encode() for index in range(READINGS))
    assert all(client.messages(quiet_s=0.1) == [] for client in clients if client not in (cloud, b))


def test_a_kiosk_with_the_bridges_client_id_cannot_disconnect_it(broker: ShippedBroker, clients: list[Client]) -> None:
    """Finding 2. Kiosk A connects again and again with the bridge's client id (the documented
    default, and the worker's username), with clean_start=0: it gets its own session each time,
    the bridge is never disconnected and receives every reading meanwhile. Before, the bridge
    was disconnected at every attempt and lost readings, and its Last Will never fired."""
    cloud = bridge(clients, broker, client_id="doorstep-bridge-1", clean_start=False)
    dropped: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
    cloud.client.on_disconnect = lambda _c, _u, _f, reason, _p: dropped.put(reason)
    b = kiosk(clients, broker, B, B_PASSWORD)
    for attempt in range(6):
        thief = kiosk(clients, broker, A, A_PASSWORD, client_id=("doorstep-bridge-1", "bridge-1")[attempt % 2],
                      clean_start=False)
        assert thief.subscribe(*ingest.subscriptions("bridge")) == [NOT_AUTHORIZED] * len(ingest.subscriptions("bridge"))
        for index in range(attempt * READINGS // 6, (attempt + 1) * READINGS // 6):
            assert b.publish(B.reading("blood_pressure"), f'{{"n": {index}}}'.encode()) == 0  # type: ignore[arg-type]
    received = [body for topic, body in cloud.messages() if topic == B.reading("blood_pressure")]  # type: ignore[arg-type]
    assert dropped.empty(), dropped.get()
    assert sorted(received) == sorted(f'{{"n": {index}}}'.encode() for index in range(READINGS))


def test_checking_a_kiosks_credentials_keeps_what_its_session_holds(broker: ShippedBroker, clients: list[Client]) -> None:
    """`doorstep doctor` and the agent's diagnosis (broker_admin/check.py) connect with the
    kiosk's account, so, the client id being the account's, with the agent's session: they must
    not clean it. A command and an ack queued for the kiosk are still delivered afterwards."""
    b = kiosk(clients, broker, B, B_PASSWORD, client_id="doorstep-agent-site-b-kiosk-2", clean_start=False)
    assert b.subscribe(B.acks, B.command("+")) == [1, 1]
    b.close()
    cloud = bridge(clients, broker)
    cloud.publish(B.command("req-1"), b'{"command": "ping"}')
    cloud.publish(B.acks, b'{"message_ids": []}')
    settings = BrokerSettings(host="127.0.0.1", port=broker.config.tls_port, username="site-b.kiosk-2",
                              password=B_PASSWORD, tls=TlsSettings(ca_file=broker.ca.cert_file))  # type: ignore[arg-type]
    for _ in range(2):
        assert check_broker(settings, "doorstep-doctor-site-b-kiosk-2").ok
    back = kiosk(clients, broker, B, B_PASSWORD, client_id="doorstep-agent-site-b-kiosk-2", clean_start=False)
    assert sorted(topic for topic, _ in back.messages()) == sorted([B.command("req-1"), B.acks])



def test_update_rules_gives_an_older_accounts_rules_back_and_keeps_its_password(
    broker: ShippedBroker, clients: list[Client]
) -> None:
    """An account from before batches (its role lacks the batch topic) is refused a batch; after
    `doorstep broker update-rules` the same password publishes one."""
    with broker.admin() as admin:
        admin.one({"command": "removeRoleACL", "rolename": "site-a.kiosk-1", "acltype": "publishClientSend",
                   "topic": A.batch})
    assert kiosk(clients, broker, A, A_PASSWORD).publish(A.batch) == NOT_AUTHORIZED
    with broker.admin() as admin:
        assert access.update_rules(admin) == ["site-a.kiosk-1"]
        assert access.update_rules(admin) == []  # nothing left to change
    assert kiosk(clients, broker, A, A_PASSWORD).publish(A.batch) in (0, NO_MATCHING_SUBSCRIBERS)


def test_update_rules_gives_accounts_from_before_alarms_the_alarms_topic(
    broker: ShippedBroker, clients: list[Client]
) -> None:
    """A broker whose rules predate alarms refuses a kiosk's alarms and the bridge's subscription
    to them; `doorstep broker update-rules` carries both, and the retained alarms reach the bridge."""
    with broker.admin() as admin:
        admin.one({"command": "removeRoleACL", "rolename": "site-a.kiosk-1", "acltype": "publishClientSend",
                   "topic": A.alarms})
        admin.one({"command": "removeRoleACL", "rolename": "bridge-1", "acltype": "subscribeLiteral",
                   "topic": ingest.ALARMS_SUBSCRIPTION})
    assert kiosk(clients, broker, A, A_PASSWORD).publish(A.alarms) == NOT_AUTHORIZED
    old = connect(clients, broker.config.port, username="bridge-1", password=BRIDGE_PASSWORD)
    assert old.subscribe(ingest.ALARMS_SUBSCRIPTION) == [NOT_AUTHORIZED]
    with broker.admin() as admin:
        assert access.update_rules(admin) == ["bridge-1", "site-a.kiosk-1"]
    assert kiosk(clients, broker, A, A_PASSWORD).publish(A.alarms, retain=True) in (0, NO_MATCHING_SUBSCRIBERS)
    cloud = bridge(clients, broker)
    assert A.alarms in {topic for topic, _ in cloud.messages()}  # retained: sent on subscribing


def test_adding_a_kiosk_again_replaces_its_password_at_once(broker: ShippedBroker, clients: list[Client]) -> None:
    """`doorstep broker add-kiosk` for a kiosk the broker knows: a new password, in force now;
    a client still on the old one is disconnected (setClientPassword kicks it)."""
    old = kiosk(clients, broker, A, A_PASSWORD)
    dropped: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
    old.client.on_disconnect = lambda _c, _u, _f, reason, _p: dropped.put(reason)
    with broker.admin() as admin:
        access.grant(admin, "site-a.kiosk-1", "a new " + "n" * 30)
    dropped.get(timeout=5)
    old.client.disconnect()  # no reconnecting with the old password
    refused = connect(clients, broker.config.tls_port, username="site-a.kiosk-1", password=A_PASSWORD, ca=broker.ca.cert_file)
    assert refused.connack is not None and refused.connack.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    assert kiosk(clients, broker, A, "a new " + "n" * 30).publish(A.telemetry) in (0, NO_MATCHING_SUBSCRIBERS)


def test_a_certificate_only_kiosk_cannot_log_in_with_a_password(tmp_path: Path, clients: list[Client]) -> None:
    """An account made with --no-password has no hash in the plugin: on the password listeners
    no password, however guessed, lets anyone in as that kiosk."""
    shipped = shipped_broker(tmp_path)
    shipped.add_kiosk(B.site, B.kiosk, None)
    shipped.process.start()
    try:
        for port, tls in ((shipped.config.port, None), (shipped.config.tls_port, shipped.ca.cert_file)):
            for password in (None, "", "guess", B_PASSWORD):
                refused = connect(clients, port, username="site-b.kiosk-2", password=password, ca=tls)
                assert refused.connack is not None and refused.connack.value in (NOT_AUTHORIZED, BAD_CREDENTIALS), (
                    port, password, refused.connack)
    finally:
        shipped.process.stop()


def test_a_kiosk_reads_only_its_own_desired_configuration_which_only_the_bridge_writes(
    broker: ShippedBroker, clients: list[Client]
) -> None:
    """The retained …/desired (docs/protocol.md, Desired configuration): the bridge writes it,
    each kiosk reads its own, also when it subscribes after it was written."""
    cloud = bridge(clients, broker)
    a = kiosk(clients, broker, A, A_PASSWORD)
    for target in (A, B):
        assert cloud.publish(target.desired, b'{"version": 1}', retain=True) in (0, NO_MATCHING_SUBSCRIBERS)
    assert a.publish(A.desired, b'{"version": 2}', retain=True) == NOT_AUTHORIZED  # no kiosk sets its own
    assert a.publish(B.desired, b'{"version": 2}', retain=True) == NOT_AUTHORIZED
    assert a.subscribe(B.desired) == [NOT_AUTHORIZED]
    assert a.subscribe(A.desired) == [1]
    assert a.messages() == [(A.desired, b'{"version": 1}')]
