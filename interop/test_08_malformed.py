"""Malformed and hostile input.  After every case the broker must still serve
a well-behaved client (it never crashes)."""

import os
import socket
import time

import pytest

import mqtt_raw as raw
from conftest import is_petrel
from helpers import assert_closed_with, raw_client, topic, uid

VERSIONS = [pytest.param(raw.MQTT311, id="v311"), pytest.param(raw.MQTT5, id="v5")]


@pytest.fixture
def healthy(broker):
    """Checks after the test that the broker still works end to end."""
    yield broker
    t = topic("health")
    with raw_client(broker, raw.MQTT311) as sub, raw_client(broker, raw.MQTT5) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, b"ok", qos=1)
        assert sub.receive().payload == b"ok"


def closes(broker, version, data: bytes, reason=None, connect_first=True, timeout=5.0):
    """Send `data` (after a CONNECT if asked) and expect the server to close
    the connection; MQTT 5 DISCONNECT before the close must carry `reason`."""
    c = raw.RawClient(broker.host, broker.port, version)
    try:
        if connect_first:
            c.connect(uid("bad"))
        c.send(data)
        if reason is None:
            c.expect_closed(timeout, allow=(raw.DISCONNECT, raw.CONNACK))
        else:
            assert_closed_with(c, reason, timeout)
    finally:
        c.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_qos3_closes(healthy, version):
    """PUBLISH with both QoS bits set is malformed [MQTT-3.3.1-4]."""
    pkt = bytearray(raw.publish("a/b", b"x", qos=2, packet_id=1, version=version))
    pkt[0] |= 0x06
    closes(healthy, version, bytes(pkt), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_reserved_flags_closes(healthy, version):
    """SUBSCRIBE fixed-header flags must be 0010 [MQTT-3.8.1-1] [MQTT-2.2.2-2]."""
    closes(healthy, version, raw.subscribe(1, [("a/b", 0)], version, flags=0x00), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_reserved_flags_closes(healthy, version):
    """UNSUBSCRIBE fixed-header flags must be 0010 [MQTT-3.10.1-1]."""
    closes(healthy, version, raw.unsubscribe(1, ["a/b"], version, flags=0x00), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_pubrel_reserved_flags_closes(healthy, version):
    """PUBREL fixed-header flags must be 0010 [MQTT-3.6.1-1]."""
    closes(healthy, version, raw.pubrel(1, version, flags=0x00), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_pingreq_reserved_flags_closes(healthy, version):
    """Reserved flag bits of PINGREQ must be 0 [MQTT-2.2.2-2]."""
    if not is_petrel():
        pytest.skip("Mosquitto 2.0.11 ignores the PINGREQ flag bits")
    closes(healthy, version, bytes([0xC1, 0x00]), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_reserved_packet_type_zero_closes(healthy, version):
    """Packet type 0 is reserved/forbidden (section 2.2.1)."""
    closes(healthy, version, bytes([0x00, 0x00]), (0x81, 0x82))


@pytest.mark.parametrize("version", VERSIONS)
def test_remaining_length_five_bytes_closes(healthy, version):
    """A remaining length longer than four bytes is malformed (section 2.2.3,
    [MQTT-1.5.5-1] in 5.0)."""
    closes(healthy, version, bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), 0x81)


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_utf8_topic_closes(healthy, version):
    """Ill-formed UTF-8 in a topic name closes the connection [MQTT-1.5.3-1]
    (3.1.1: [MQTT-1.5.3-1])."""
    closes(healthy, version, raw.publish(b"a/\xff\xfe", b"x", version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_utf16_surrogate_in_topic_closes(healthy, version):
    """UTF-8 encoded surrogates (U+D800..U+DFFF) are ill-formed [MQTT-1.5.3-1]."""
    closes(healthy, version, raw.publish(b"a/\xed\xa0\x80", b"x", version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_null_character_in_topic_closes(healthy, version):
    """U+0000 in a topic name closes the connection [MQTT-1.5.3-2]."""
    closes(healthy, version, raw.publish(b"a/\x00b", b"x", version=version))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["a/+/b", "a/#", "+", "#"])
def test_wildcard_in_publish_topic_closes(healthy, version, name):
    """A PUBLISH topic name must not contain wildcards [MQTT-3.3.2-2]."""
    closes(healthy, version, raw.publish(name, b"x", version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_topic_without_alias_closes(healthy, version):
    """A zero-length topic name (without a topic alias) is invalid [MQTT-4.7.3-1]."""
    closes(healthy, version, raw.publish("", b"x", version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_qos1_publish_packet_id_zero_closes(healthy, version):
    """QoS > 0 PUBLISH needs a non-zero packet id [MQTT-2.3.1-1] (5.0: [MQTT-2.2.1-3])."""
    closes(healthy, version, raw.publish("a/b", b"x", qos=1, packet_id=0, version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_without_topics_closes(healthy, version):
    """A SUBSCRIBE with no topic filter is a protocol violation [MQTT-3.8.3-3]."""
    closes(healthy, version, raw.subscribe(1, [], version))


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_qos3_closes(healthy, version):
    """Requested QoS 3 in SUBSCRIBE is malformed [MQTT-3.8.3-4]."""
    closes(healthy, version, raw.subscribe(1, [("a/b", 3)], version))


def test_connect_dup_flags_closes(healthy):
    """CONNECT fixed-header flags must be 0 [MQTT-2.2.2-2]."""
    pkt = bytearray(raw.connect(uid()))
    pkt[0] |= 0x01
    closes(healthy, raw.MQTT311, bytes(pkt), connect_first=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_packet_then_close(healthy, version):
    """A packet cut short by the client closing the socket is discarded; the
    message is not delivered (section 4.8)."""
    t = topic("trunc")
    with raw_client(healthy, version) as sub:
        sub.subscribe([(t, 0)])
        c = raw_client(healthy, version)
        pkt = raw.publish(t, b"x" * 100, version=version)
        c.send(pkt[:len(pkt) // 2])
        c.close()
        sub.expect_nothing(0.7)


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_connect_then_close(healthy, version):
    """A half-sent CONNECT followed by close does not disturb the broker."""
    with raw.RawClient(healthy.host, healthy.port, version) as c:
        c.send(raw.connect(uid(), version=version)[:7])


@pytest.mark.parametrize("version", VERSIONS)
def test_inconsistent_lengths_closes(healthy, version):
    """A string length running past the end of the packet is malformed
    (section 1.5.4)."""
    body = raw.u16(200) + b"abc"
    closes(healthy, version, raw.packet(raw.PUBLISH, 0, body), 0x81)


def test_garbage_flood(healthy):
    """Random bytes instead of MQTT close the connection; the broker survives."""
    rnd = os.urandom(64 * 1024)
    for _ in range(3):
        s = socket.create_connection(healthy.address, timeout=5)
        try:
            try:
                s.sendall(rnd)
            except OSError:
                pass
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
        finally:
            s.close()


def test_garbage_after_connect(healthy):
    """Garbage after a valid CONNECT closes that connection only."""
    c = raw_client(healthy)
    try:
        try:
            c.send(b"\xff" * 4096 + os.urandom(4096))
        except OSError:
            pass
        c.expect_closed(5, allow=(raw.DISCONNECT, raw.PUBLISH, raw.SUBACK))
    finally:
        c.close()


def test_many_connections_opened_and_dropped(healthy):
    """100 connections dropped at various points leave the broker healthy."""
    conn = raw.connect(uid())
    for i in range(100):
        s = socket.create_connection(healthy.address, timeout=5)
        try:
            s.sendall(conn[: i % len(conn)])
        finally:
            s.close()


def test_oversized_packet_refused(broker_factory):
    """A packet larger than the server's Maximum Packet Size is refused and the
    connection closed (MQTT 5 section 3.2.2.3.6; DISCONNECT 0x95)."""
    b = broker_factory(max_packet_size=1024)
    with raw.RawClient(b.host, b.port, raw.MQTT5) as c:
        ack = c.connect(uid())
        assert ack.prop(raw.MAXIMUM_PACKET_SIZE) == 1024
        c.send(raw.publish("big/x", b"x" * 4096, qos=1, packet_id=1, version=raw.MQTT5))
        assert_closed_with(c, 0x95)
    with raw.RawClient(b.host, b.port, raw.MQTT311) as c:
        c.connect(uid())
        try:
            c.send(raw.publish("big/x", b"x" * 4096, qos=1, packet_id=1))
        except OSError:
            pass
        c.expect_closed(5, allow=())
    with raw_client(b) as c:
        c.publish("small/x", b"fine", qos=1)


def test_oversized_remaining_length_announced_only(broker_factory):
    """A fixed header announcing a huge remaining length is refused without the
    broker waiting for (or buffering) the body (section 3.2.2.3.6)."""
    b = broker_factory(max_packet_size=1024)
    with raw_client(b, raw.MQTT311) as c:
        c.send(bytes([0x30]) + raw.varint(200_000_000))
        c.expect_closed(5, allow=(raw.DISCONNECT,))
