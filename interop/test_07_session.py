"""Sessions: clean session / clean start, session present, queuing while
offline, expiry, redelivery (MQTT 3.1.1 sections 3.1.2.4, 4.1, 4.4;
MQTT 5.0 sections 3.1.2.4, 3.1.2.11.2, 4.1, 4.4)."""

import time

import pytest

import mqtt_raw as raw
from conftest import is_petrel
from helpers import raw_client, topic, uid
from paho_client import PahoClient

V5_PERSIST = {raw.SESSION_EXPIRY_INTERVAL: 300}


def persistent(broker, version, cid, **kw):
    """Connect with a session that survives the connection."""
    props = V5_PERSIST if version == raw.MQTT5 else None
    return raw.RawClient(broker.host, broker.port, version), dict(
        client_id=cid, clean=False, properties=props, **kw)


def connect_persistent(broker, version, cid, expect_present=None, **kw):
    c, args = persistent(broker, version, cid, **kw)
    ack = c.connect(**args)
    if expect_present is not None:
        assert ack.session_present is expect_present, f"session present {ack.session_present}"
    return c


VERSIONS = [pytest.param(raw.MQTT311, id="v311"), pytest.param(raw.MQTT5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_session_present_flag(broker, version):
    """Session present is 0 for a new session and 1 when resuming
    [MQTT-3.2.2-2] [MQTT-3.2.2-3]; clean start discards it [MQTT-3.2.2-1]."""
    cid = uid("sp")
    c = connect_persistent(broker, version, cid, expect_present=False)
    c.disconnect()
    c = connect_persistent(broker, version, cid, expect_present=True)
    c.disconnect()
    with raw_client(broker, version, cid, clean=True) as c:
        pass
    with raw.RawClient(broker.host, broker.port, version) as c:
        ack = c.connect(cid, clean=True)
        assert ack.session_present is False
        c.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_keeps_subscriptions_and_queues(broker, version):
    """A persistent session keeps its subscriptions and queues QoS 1 and 2
    messages while the client is away, delivered on reconnect [MQTT-3.1.2-4]
    [MQTT-3.1.2-5] [MQTT-4.4.0-1]."""
    cid, t = uid("q"), topic("sess")
    c = connect_persistent(broker, version, cid)
    c.subscribe([(t, 2)])
    c.disconnect()
    with raw_client(broker, version) as pub:
        pub.publish(t, b"one", qos=1, packet_id=1)
        pub.publish(t, b"two", qos=2, packet_id=2)
        pub.publish(t, b"zero", qos=0)
        pub.ping()
    c = connect_persistent(broker, version, cid, expect_present=True)
    try:
        m1 = c.receive()
        m2 = c.receive()
        assert (m1.payload, m1.qos) == (b"one", 1)
        assert (m2.payload, m2.qos) == (b"two", 2)
        c.expect_nothing(0.7)  # QoS 0 not queued by default
        # subscription still active
        with raw_client(broker, version) as pub:
            pub.publish(t, b"live", qos=1)
        assert c.receive().payload == b"live"
    finally:
        c.disconnect()
    with raw_client(broker, version, cid, clean=True):
        pass


def test_qos0_queued_with_option(broker_factory):
    """With --queue-qos0 QoS 0 messages are queued for offline persistent
    sessions (optional server behaviour, section 3.1.2.4 non-normative)."""
    b = broker_factory(queue_qos0=True)
    cid, t = uid("q0"), topic("sess")
    c = connect_persistent(b, raw.MQTT311, cid)
    c.subscribe([(t, 1)])
    c.disconnect()
    with raw_client(b) as pub:
        pub.publish(t, b"zero", qos=0)
        pub.ping()
    c = connect_persistent(b, raw.MQTT311, cid, expect_present=True)
    try:
        m = c.receive()
        assert m.payload == b"zero" and m.qos == 0
    finally:
        c.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_session_discards_state(broker, version):
    """A clean connection discards the previous session and its queue
    [MQTT-3.1.2-6] [MQTT-3.1.4-3]."""
    cid, t = uid("cs"), topic("sess")
    c = connect_persistent(broker, version, cid)
    c.subscribe([(t, 1)])
    c.disconnect()
    with raw_client(broker, version) as pub:
        pub.publish(t, b"queued", qos=1)
    with raw.RawClient(broker.host, broker.port, version) as c:
        ack = c.connect(cid, clean=True,
                        properties={raw.SESSION_EXPIRY_INTERVAL: 300} if version == raw.MQTT5 else None)
        assert ack.session_present is False
        c.expect_nothing(0.7)
        with raw_client(broker, version) as pub:
            pub.publish(t, b"after", qos=1)
        c.expect_nothing(0.5)
        c.disconnect()
    with raw_client(broker, version, cid, clean=True):
        pass


def test_v311_clean_session_ends_at_disconnect(broker):
    """3.1.1 CleanSession=1: the session lasts as long as the connection
    [MQTT-3.1.2-6]."""
    cid, t = uid("c1"), topic("sess")
    with raw_client(broker, raw.MQTT311, cid, clean=True) as c:
        c.subscribe([(t, 1)])
        c.disconnect()
    with raw.RawClient(broker.host, broker.port) as c:
        assert c.connect(cid, clean=False).session_present is False
        c.disconnect()
    with raw_client(broker, raw.MQTT311, cid, clean=True):
        pass


def test_v5_session_expiry_zero_ends_at_close(broker):
    """MQTT 5: Session Expiry Interval absent/0 ends the session with the
    connection [MQTT-3.1.2-23]."""
    cid = uid("e0")
    with raw_client(broker, raw.MQTT5, cid, clean=True) as c:
        c.subscribe([("e0/x", 1)])
        c.disconnect()
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        assert c.connect(cid, clean=False).session_present is False
        c.disconnect()


def test_v5_session_expiry(broker):
    """MQTT 5: the session is kept for Session Expiry Interval seconds, then
    discarded [MQTT-3.1.2-23] (section 4.1)."""
    cid, t = uid("exp"), topic("sess")
    c = raw_client(broker, raw.MQTT5, cid, clean=True, properties={raw.SESSION_EXPIRY_INTERVAL: 1})
    c.subscribe([(t, 1)])
    c.disconnect()
    time.sleep(3.0)
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        ack = c.connect(cid, clean=False, properties={raw.SESSION_EXPIRY_INTERVAL: 0})
        assert ack.session_present is False
        c.disconnect()


def test_v5_session_survives_within_expiry(broker):
    """MQTT 5: reconnecting before expiry resumes the session [MQTT-3.2.2-2]."""
    cid = uid("exp")
    c = raw_client(broker, raw.MQTT5, cid, clean=True, properties={raw.SESSION_EXPIRY_INTERVAL: 5})
    c.subscribe([("exp/y", 1)])
    c.disconnect()
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        ack = c.connect(cid, clean=False, properties={raw.SESSION_EXPIRY_INTERVAL: 0})
        assert ack.session_present is True
        c.disconnect()


def test_v5_session_expiry_set_on_disconnect(broker):
    """MQTT 5: the Session Expiry Interval can be changed on DISCONNECT
    (section 3.14.2.2.2); setting it to 0 ends the session."""
    cid = uid("dexp")
    c = raw_client(broker, raw.MQTT5, cid, clean=True, properties={raw.SESSION_EXPIRY_INTERVAL: 300})
    c.subscribe([("dexp/x", 1)])
    c.disconnect(properties={raw.SESSION_EXPIRY_INTERVAL: 0})
    time.sleep(0.3)
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        assert c.connect(cid, clean=False).session_present is False
        c.disconnect()


def test_v5_session_expiry_zero_to_nonzero_on_disconnect_is_error(broker):
    """MQTT 5: DISCONNECT may not set a non-zero expiry when CONNECT had 0
    [MQTT-3.14.2-2]: the server treats it as a protocol error (0x82)."""
    cid = uid("dexp")
    c = raw_client(broker, raw.MQTT5, cid, clean=True)
    try:
        c.send(raw.disconnect(raw.MQTT5, 0, {raw.SESSION_EXPIRY_INTERVAL: 60}))
        seen = c.expect_closed(5)
        for p in seen:
            assert p.reason == 0x82
    finally:
        c.close()
    time.sleep(0.3)
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c2:
        assert c2.connect(cid, clean=False).session_present is False
        c2.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_unacked_qos1_resent_with_dup(broker, version):
    """Unacknowledged outbound QoS 1 PUBLISH packets are resent on reconnect
    with DUP=1 and their original packet ids, in order [MQTT-4.4.0-1]
    [MQTT-3.3.1-1] [MQTT-4.6.0-1]."""
    cid, t = uid("re"), topic("sess")
    c = connect_persistent(broker, version, cid)
    c.subscribe([(t, 1)])
    with raw_client(broker, version) as pub:
        for i in range(3):
            pub.publish(t, b"m%d" % i, qos=1, packet_id=i + 1)
    first = [c.receive(ack=False) for _ in range(3)]
    assert [m.payload for m in first] == [b"m0", b"m1", b"m2"]
    assert not any(m.dup for m in first)
    c.close()
    time.sleep(0.3)
    c = connect_persistent(broker, version, cid, expect_present=True)
    try:
        again = [c.expect(raw.PUBLISH) for _ in range(3)]
        assert [m.payload for m in again] == [b"m0", b"m1", b"m2"]
        assert [m.packet_id for m in again] == [m.packet_id for m in first]
        assert all(m.dup for m in again)
        for m in again:
            c.send(raw.puback(m.packet_id, version))
        c.expect_nothing(0.7)
    finally:
        c.disconnect()
    with raw_client(broker, version, cid, clean=True):
        pass


@pytest.mark.parametrize("version", VERSIONS)
def test_unacked_qos2_publish_and_pubrel_resent(broker, version):
    """On reconnect the server resends the unacknowledged QoS 2 PUBLISH (DUP=1)
    and the PUBREL for a PUBREC'd message, with original ids [MQTT-4.4.0-1]
    [MQTT-4.3.3-1]."""
    cid, t = uid("re2"), topic("sess")
    c = connect_persistent(broker, version, cid)
    c.subscribe([(t, 2)])
    with raw_client(broker, version) as pub:
        pub.publish(t, b"a", qos=2, packet_id=1)
        pub.publish(t, b"b", qos=2, packet_id=2)
    a = c.expect(raw.PUBLISH)
    b = c.expect(raw.PUBLISH)
    assert (a.payload, b.payload) == (b"a", b"b")
    c.send(raw.pubrec(a.packet_id, version))
    rel = c.expect(raw.PUBREL)
    assert rel.packet_id == a.packet_id
    c.close()  # neither PUBCOMP for a nor PUBREC for b
    time.sleep(0.3)
    c = connect_persistent(broker, version, cid, expect_present=True)
    try:
        p1 = c.read()
        p2 = c.read()
        kinds = {(p.type, p.packet_id) for p in (p1, p2)}
        assert kinds == {(raw.PUBREL, a.packet_id), (raw.PUBLISH, b.packet_id)}, (p1, p2)
        for p in (p1, p2):
            if p.type == raw.PUBLISH:
                assert p.dup and p.payload == b"b"
            else:
                assert p.flags == 0x02
        c.send(raw.pubcomp(a.packet_id, version))
        c.send(raw.pubrec(b.packet_id, version))
        assert c.expect(raw.PUBREL).packet_id == b.packet_id
        c.send(raw.pubcomp(b.packet_id, version))
        c.expect_nothing(0.7)
    finally:
        c.disconnect()
    with raw_client(broker, version, cid, clean=True):
        pass


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_persistent_session(broker, protocol):
    """paho: a persistent session receives QoS 1 messages published while it
    was offline [MQTT-3.1.2-5]."""
    cid, t = uid("pp"), topic("sess")
    kw = dict(client_id=cid, protocol=protocol, clean=False)
    if protocol == "v5":
        kw["session_expiry"] = 300
    c = PahoClient(broker, **kw).connect()
    c.subscribe(t, qos=1)
    c.disconnect()
    pub = PahoClient(broker, protocol=protocol).connect()
    for i in range(5):
        pub.publish(t, b"%d" % i, qos=1)
    pub.disconnect()
    c = PahoClient(broker, **kw).connect()
    try:
        assert c.session_present
        assert [m.payload for m in c.get_many(5)] == [b"%d" % i for i in range(5)]
    finally:
        c.disconnect()
    PahoClient(broker, client_id=cid, protocol=protocol, clean=True).connect().disconnect()


def test_queue_bound_max_queued_messages(broker_factory):
    """With --max-queued-messages 5 an offline persistent session gets at most
    5 of 20 queued messages (section 4.1 allows the server to limit storage)."""
    b = broker_factory(max_queued_messages=5)
    cid, t = uid("qb"), topic("sess")
    c = connect_persistent(b, raw.MQTT311, cid)
    c.subscribe([(t, 1)])
    c.disconnect()
    with raw_client(b) as pub:
        for i in range(20):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
    c = connect_persistent(b, raw.MQTT311, cid, expect_present=True)
    try:
        got = []
        try:
            while True:
                got.append(c.receive(timeout=1.0).payload)
        except AssertionError:
            pass
        assert 1 <= len(got) <= 5, f"received {len(got)} messages"
        assert got == sorted(got, key=int), "queued messages keep their order"
    finally:
        c.disconnect()


def test_max_inflight_limits_outstanding(broker_factory):
    """--max-inflight 2: at most 2 unacknowledged QoS 1 PUBLISH packets are
    outstanding; the rest follow as acks arrive, in order [MQTT-4.6.0-6]."""
    b = broker_factory(max_inflight=2)
    t = topic("infl")
    with raw_client(b) as sub, raw_client(b) as pub:
        sub.subscribe([(t, 1)])
        for i in range(6):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        first = [sub.expect(raw.PUBLISH) for _ in range(2)]
        sub.expect_nothing(0.7)
        got = [m.payload for m in first]
        pending = list(first)
        while len(got) < 6:
            m = pending.pop(0)
            sub.send(raw.puback(m.packet_id))
            nxt = sub.expect(raw.PUBLISH)
            pending.append(nxt)
            got.append(nxt.payload)
        assert got == [b"%d" % i for i in range(6)]
