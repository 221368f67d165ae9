"""PUBLISH and the QoS 0/1/2 flows, byte-exact (MQTT 3.1.1 sections 3.3-3.7, 4.3, 4.6)."""

import pytest

import mqtt_raw as raw
from helpers import raw_client, topic, uid
from paho_client import PahoClient

VERSIONS = [pytest.param(raw.MQTT311, id="v311"), pytest.param(raw.MQTT5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_qos1_puback(broker, version):
    """QoS 1 PUBLISH is answered by PUBACK with the same packet id [MQTT-4.3.2-2]
    [MQTT-3.4.0-1]."""
    with raw_client(broker, version) as c:
        c.send(raw.publish(topic(), b"q1", qos=1, packet_id=0x1234, version=version))
        ack = c.expect(raw.PUBACK)
        assert ack.packet_id == 0x1234
        assert ack.flags == 0
        if version == raw.MQTT311:
            assert ack.body == b"\x12\x34", "3.1.1 PUBACK has a 2-byte remaining length"


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_pubrec_pubrel_pubcomp(broker, version):
    """QoS 2: PUBLISH -> PUBREC, PUBREL -> PUBCOMP with matching ids [MQTT-4.3.3-2]
    [MQTT-3.5.0-1] [MQTT-3.7.0-1]."""
    with raw_client(broker, version) as c:
        c.send(raw.publish(topic(), b"q2", qos=2, packet_id=77, version=version))
        rec = c.expect(raw.PUBREC)
        assert rec.packet_id == 77 and rec.flags == 0
        c.send(raw.pubrel(77, version))
        comp = c.expect(raw.PUBCOMP)
        assert comp.packet_id == 77 and comp.flags == 0


def test_qos2_pubrel_unknown_id_gets_pubcomp(broker):
    """A PUBREL for an unknown packet id is still answered by PUBCOMP (MQTT 5.0
    section 3.7.2.1: reason 0x92 Packet Identifier not found) (3.1.1 [MQTT-4.3.3-2])."""
    with raw_client(broker, raw.MQTT5) as c:
        c.send(raw.pubrel(999, raw.MQTT5))
        comp = c.expect(raw.PUBCOMP)
        assert comp.packet_id == 999
        assert comp.reason in (0x00, 0x92)


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_duplicate_publish_not_delivered_twice(broker, version):
    """A QoS 2 PUBLISH resent with DUP=1 and the same id before PUBREL is
    acknowledged again but not delivered twice [MQTT-4.3.3-2] (exactly once)."""
    t = topic()
    with raw_client(broker, version) as sub, raw_client(broker, version) as pub:
        sub.subscribe([(t, 2)])
        pub.send(raw.publish(t, b"once", qos=2, packet_id=5, version=version))
        assert pub.expect(raw.PUBREC).packet_id == 5
        pub.send(raw.publish(t, b"once", qos=2, packet_id=5, dup=True, version=version))
        assert pub.expect(raw.PUBREC).packet_id == 5
        pub.send(raw.pubrel(5, version))
        assert pub.expect(raw.PUBCOMP).packet_id == 5
        m = sub.receive()
        assert m.payload == b"once"
        sub.expect_nothing(0.8)


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_new_publish_after_pubcomp_is_new_message(broker, version):
    """After PUBCOMP the packet id may be reused; a new PUBLISH with it is a new
    message [MQTT-2.2.1-3] (3.1.1 numbering: [MQTT-2.3.1-3])."""
    t = topic()
    with raw_client(broker, version) as sub, raw_client(broker, version) as pub:
        sub.subscribe([(t, 2)])
        pub.publish(t, b"first", qos=2, packet_id=9)
        pub.publish(t, b"second", qos=2, packet_id=9)
        assert sub.receive().payload == b"first"
        assert sub.receive().payload == b"second"


def test_outbound_qos1_flow(broker):
    """The server delivers QoS 1 with a non-zero packet id and DUP=0 on first
    delivery [MQTT-2.3.1-1] [MQTT-3.3.1-1] [MQTT-4.3.2-1]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, b"x", qos=1)
        m = sub.expect(raw.PUBLISH)
        assert m.qos == 1 and m.packet_id != 0 and not m.dup and not m.retain
        sub.send(raw.puback(m.packet_id))
        sub.expect_nothing(0.5)


def test_outbound_qos2_flow(broker):
    """The server's QoS 2 delivery: PUBLISH, (PUBREC) PUBREL with flags 0x2,
    (PUBCOMP) [MQTT-4.3.3-1] [MQTT-3.6.1-1]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 2)])
        pub.publish(t, b"x2", qos=2)
        m = sub.expect(raw.PUBLISH)
        assert m.qos == 2 and m.packet_id != 0 and not m.dup
        sub.send(raw.pubrec(m.packet_id))
        rel = sub.expect(raw.PUBREL)
        assert rel.packet_id == m.packet_id and rel.flags == 0x02
        sub.send(raw.pubcomp(m.packet_id))
        sub.expect_nothing(0.5)


def test_qos0_publish_has_no_packet_id(broker):
    """A QoS 0 PUBLISH is delivered without packet identifier and DUP=0
    [MQTT-2.3.1-5] [MQTT-3.3.1-2]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 0)])
        pub.publish(t, b"zero", qos=0)
        m = sub.expect(raw.PUBLISH)
        assert m.qos == 0 and m.packet_id is None and not m.dup
        assert m.body == raw.utf8(t) + b"zero"


def test_message_order_single_publisher(broker):
    """Messages from one publisher on one topic arrive in order (ordered topic)
    [MQTT-4.6.0-5] [MQTT-4.6.0-6]."""
    t = topic("order")
    n = 500
    sub = PahoClient(broker, protocol="v311").connect()
    pub = PahoClient(broker, protocol="v311").connect()
    try:
        sub.subscribe(t, qos=1)
        infos = [pub.client.publish(t, str(i).encode(), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(10)
        got = [int(m.payload) for m in sub.get_many(n, timeout=30)]
        assert got == list(range(n))
    finally:
        pub.disconnect()
        sub.disconnect()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_message_order_raw_mixed(broker, qos):
    """Ordering holds per QoS level with the raw client too [MQTT-4.6.0-6]."""
    t = topic("order")
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 2)])
        for i in range(50):
            pub.publish(t, b"%d" % i, qos=qos, packet_id=i + 1)
        got = [int(sub.receive().payload) for _ in range(50)]
        assert got == list(range(50))


def test_large_payload_roundtrip(broker):
    """A 256 KiB payload (4-byte remaining length) is forwarded intact [MQTT-2.2.3]."""
    t = topic()
    payload = bytes(range(256)) * 1024
    with raw_client(broker, timeout=10) as sub, raw_client(broker, timeout=10) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, payload, qos=1)
        assert sub.receive().payload == payload


def test_zero_length_payload_delivered(broker):
    """A zero-length payload is valid and delivered [MQTT-3.3.3]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 0)])
        pub.publish(t, b"", qos=1)
        assert sub.receive().payload == b""


def test_many_subscribers_fan_out(broker):
    """Every matching subscription receives the message (section 3.3.4) [MQTT-3.3.5-1]."""
    t = topic("fan")
    subs = [raw_client(broker) for _ in range(10)]
    try:
        for s in subs:
            s.subscribe([(t, 1)])
        with raw_client(broker) as pub:
            pub.publish(t, b"all", qos=1)
        for s in subs:
            assert s.receive().payload == b"all"
    finally:
        for s in subs:
            s.close()


def test_publisher_receives_own_message(broker):
    """Without No Local (3.1.1) a client subscribed to its own topic receives its
    own publications [MQTT-3.3.5-1]."""
    t = topic()
    with raw_client(broker) as c:
        c.subscribe([(t, 0)])
        c.publish(t, b"self")
        assert c.receive().payload == b"self"
