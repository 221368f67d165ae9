"""Hostile input: packets that once could crash the
broker (topics and filters as deep as 65,535 bytes allow, spec 4.7.3), packets
that ask for a lot at once (thousands of filters, thousands of user
properties, the longest client id, user name and will topic), forbidden
property combinations, and a client that keeps writing after the broker ended
its connection.  After each, a fresh client must still be served.

They go to PETREL_RELEASE_BIN when it is set: the release build, the one users
run, whose stack frames and inlining differ from the debug build's
(`PETREL_TEST_RELEASE=1 scripts/test.sh` builds it and sets it); otherwise to
the PETREL_BIN build."""

from __future__ import annotations

import select
import time

import pytest

import mqtt_raw as raw
from conftest import build_broker, finish, is_petrel, petrel_release_binary

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel only: --max-topic-levels")

# 32,768 levels in 65,535 bytes: the deepest topic and filter the wire can carry.
DEEP_TOPIC = "x" + "/y" * 32_767
DEEP_FILTER = "x" + "/+" * 32_766 + "/#"
assert len(DEEP_TOPIC) == 65_535 and len(DEEP_FILTER) == 65_535

QUOTA_EXCEEDED = 0x97
PROTOCOL_ERROR = 0x82
RECEIVE_MAXIMUM_EXCEEDED = 0x93


@pytest.fixture
def release_broker(tmp_path):
    """Start the binary under test (the release build when PETREL_RELEASE_BIN names one) with options:
    ``release_broker(max_topic_levels=0)``."""
    binary = petrel_release_binary()
    if not binary.exists():
        pytest.fail(f"Petrel binary not found at {binary}")
    started = []

    def factory(extra_args=None, data_dir=None, **options):
        args = list(extra_args or [])
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        b = build_broker(tmp_path / f"broker{len(started)}", options, args, binary_path=binary).start()
        started.append(b)
        return b

    yield factory
    errors = []
    for b in started:
        if b.proc is None or b.returncode is not None and not b.alive():
            continue
        try:
            finish(b)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def assert_serves(broker, version=raw.MQTT5):
    """The broker is alive and a new client gets a message through it."""
    assert broker.alive(), f"petrel died:\n{broker.log_tail()}"
    with raw.RawClient(broker.host, broker.port, version) as sub, \
            raw.RawClient(broker.host, broker.port, version) as pub:
        sub.connect("probe-sub")
        sub.subscribe([("probe/+", 1)])
        pub.connect("probe-pub")
        pub.publish("probe/1", b"still here", qos=1)
        assert sub.receive().payload == b"still here"


# ---------------------------------------------------------------------------
# Deep topics and filters


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5])
def test_deep_filter_refused_by_default(release_broker, version):
    """A 32,768-level filter is above the default --max-topic-levels (1,000):
    SUBACK 0x80 (3.1.1) or 0x97 Quota exceeded (5); the other filters of the
    same SUBSCRIBE are granted [MQTT-3.8.4-6]."""
    broker = release_broker()
    with raw.RawClient(broker.host, broker.port, version) as c:
        c.connect("deep-sub")
        ack = c.subscribe([(DEEP_FILTER, 0), ("ok/#", 1)])
        assert ack.reasons == [0x80 if version == raw.MQTT311 else QUOTA_EXCEEDED, 1]
        c.send(raw.unsubscribe(2, [DEEP_FILTER], version))
        c.expect(raw.UNSUBACK)
    assert "more than 1000 levels" in broker.log_text()
    assert_serves(broker)


@pytest.mark.parametrize("qos", [0, 1])
def test_deep_retained_publish_refused_by_default(release_broker, qos):
    """A retained PUBLISH to a 32,768-level topic: v5 PUBACK 0x97 (QoS 1) or
    dropped (QoS 0); 3.1.1 has no negative PUBACK, so the connection closes."""
    broker = release_broker()
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("deep-pub5")
        ack = c.publish(DEEP_TOPIC, b"r", qos=qos, retain=True)
        if qos == 1:
            assert ack.reason == QUOTA_EXCEEDED
        assert c.is_open()
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.connect("deep-pub4")
        c.send(raw.publish(DEEP_TOPIC, b"r", qos=qos, retain=True, packet_id=1))
        c.expect_closed(allow=())
    assert_serves(broker)


def test_deepest_topics_routed_retained_and_restored_without_limit(release_broker, tmp_path):
    """With --max-topic-levels 0 the deepest filter is granted, a retained
    PUBLISH to the deepest topic is acknowledged and delivered live and on
    subscribe, and the persistent session with that filter is restored when
    the broker starts again, with the default limit, on the same data."""
    data = tmp_path / "data"
    broker = release_broker(max_topic_levels=0, data_dir=data)
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as sub, \
            raw.RawClient(broker.host, broker.port, raw.MQTT5) as pub:
        sub.connect("deep-persistent", clean=False)
        assert sub.subscribe([(DEEP_FILTER, 1)]).reasons == [1]
        pub.connect("deep-pub")
        assert pub.publish(DEEP_TOPIC, b"deep", qos=1, retain=True).reason in (None, 0)
        got = sub.receive()
        assert got.topic == DEEP_TOPIC and got.payload == b"deep"
        sub.send(raw.disconnect())
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as late:
        late.connect("deep-late")
        late.subscribe([("x/#", 0)])
        got = late.receive()
        assert got.topic == DEEP_TOPIC and got.retain
    finish(broker)

    again = release_broker(data_dir=data)
    with raw.RawClient(again.host, again.port, raw.MQTT311) as sub:
        ack = sub.connect("deep-persistent", clean=False)
        assert ack.session_present
        # The restored subscription still matches, and the retained message is back too.
        sub.send(raw.subscribe(2, [("x/#", 0)]))
        sub.expect(raw.SUBACK)
        got = sub.receive()
        assert got.topic == DEEP_TOPIC and got.payload == b"deep"
    assert_serves(again)


# ---------------------------------------------------------------------------
# Much in one packet


def test_ten_thousand_filters_in_one_subscribe(release_broker):
    """10,000 filters in one SUBSCRIBE get 10,000 reason codes in order
    [MQTT-3.8.4-6]; the retained messages they match are bounded by what the
    session can queue."""
    broker = release_broker(max_queued_messages=100)
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as pub:
        pub.connect("retainer")
        for n in range(50):
            pub.publish(f"r/{n}", b"kept", qos=1, retain=True)
    filters = [(f"r/+/{n}/#" if n % 2 else "r/#", 0) for n in range(10_000)]
    with raw.RawClient(broker.host, broker.port, raw.MQTT5, timeout=30) as c:
        c.connect("many-filters")
        c.send(raw.subscribe(1, filters, raw.MQTT5))
        ack = c.expect(raw.SUBACK, skip=(raw.PUBLISH,))
        assert ack.reasons == [0] * 10_000
    assert_serves(broker)


def test_twenty_thousand_user_properties(release_broker):
    """A PUBLISH with 20,000 user properties is forwarded with all of them, in
    order [MQTT-3.3.2-18]."""
    broker = release_broker()
    props = [(raw.USER_PROPERTY, (f"k{n}", "v")) for n in range(20_000)]
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as sub, \
            raw.RawClient(broker.host, broker.port, raw.MQTT5) as pub:
        sub.connect("props-sub")
        sub.subscribe([("props", 0)])
        pub.connect("props-pub")
        pub.send(raw.publish("props", b"p", version=raw.MQTT5, properties=props))
        got = sub.receive()
        assert [name for name, _ in got.props(raw.USER_PROPERTY)] == [f"k{n}" for n in range(20_000)]
    assert_serves(broker)


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5])
def test_longest_client_id_user_name_and_will_topic(release_broker, version):
    """A 65,535-byte client id, user name and will topic are accepted, and the
    will is published when the connection is lost."""
    broker = release_broker()
    will_topic = "w" * 65_535
    with raw.RawClient(broker.host, broker.port, version) as watcher:
        watcher.connect("watcher")
        watcher.subscribe([("#", 0)])
        c = raw.RawClient(broker.host, broker.port, version)
        c.connect("c" * 65_535, username="u" * 65_535,
                  will=raw.Will(will_topic, b"gone"))
        c.abort()
        got = watcher.receive()
        assert got.topic == will_topic and got.payload == b"gone"
    assert_serves(broker)


# ---------------------------------------------------------------------------
# Forbidden property combinations


def test_authentication_data_without_method(release_broker):
    """Authentication Data without Authentication Method is a Protocol Error
    (spec 3.1.2.11.10): CONNACK 0x82 and close."""
    broker = release_broker()
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("auth-data", expect_reason=PROTOCOL_ERROR,
                  properties={raw.AUTHENTICATION_DATA: b"\x01\x02"})
        c.expect_closed(allow=())
    assert_serves(broker)


@pytest.mark.parametrize("response_topic", ["reply/+", "reply/#"])
def test_wildcard_response_topic(release_broker, response_topic):
    """A Response Topic must not contain wildcards [MQTT-3.3.2-14]: DISCONNECT
    0x82 for a PUBLISH (not acknowledged), CONNACK 0x82 for a will's."""
    broker = release_broker()
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("response")
        c.send(raw.publish("req", b"q", qos=1, packet_id=1, version=raw.MQTT5,
                           properties={raw.RESPONSE_TOPIC: response_topic}))
        seen = c.expect_closed()
        assert [(p.type, p.reason) for p in seen] == [(raw.DISCONNECT, PROTOCOL_ERROR)]
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("will-response", expect_reason=PROTOCOL_ERROR,
                  will=raw.Will("w", b"x", properties={raw.RESPONSE_TOPIC: response_topic}))
        c.expect_closed(allow=())
    assert_serves(broker)


# ---------------------------------------------------------------------------
# Ending a connection whose client is still writing


def test_client_still_writing_reads_disconnect(release_broker):
    """A client that goes on writing after it exceeded Receive Maximum (QoS 2
    PUBLISHes the broker never sees PUBREL for) reads DISCONNECT 0x93 and then
    an orderly end of stream: its writes never fail with a reset, because the
    broker shuts its write side and reads what still comes before closing."""
    broker = release_broker(receive_maximum=10)
    burst = b"".join(raw.publish("t", b"x" * 100, qos=2, packet_id=n + 1, version=raw.MQTT5)
                     for n in range(2_000))
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("flooder")
        for _ in range(10):
            c.sock.sendall(burst)  # about 2.5 MB in all; raises on a reset
        decoder = raw.StreamDecoder(raw.MQTT5)
        packets = []
        c.sock.settimeout(5)
        while True:
            data = c.sock.recv(65536)  # raises ConnectionResetError on a reset
            if not data:
                break
            packets.extend(decoder.feed(data))
        assert [(p.type, p.reason) for p in packets if p.type != raw.PUBREC] == \
            [(raw.DISCONNECT, RECEIVE_MAXIMUM_EXCEEDED)]
    assert "Receive Maximum exceeded" in broker.log_text()
    assert_serves(broker)


def test_lingering_close_is_bounded(release_broker):
    """A client that never stops writing cannot hold its connection: the
    broker closes it within a few seconds."""
    broker = release_broker(receive_maximum=10)
    burst = b"".join(raw.publish("t", b"x" * 100, qos=2, packet_id=n + 1, version=raw.MQTT5)
                     for n in range(200))
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        c.connect("endless")
        c.sock.setblocking(False)
        start = time.monotonic()
        ended = None
        while time.monotonic() - start < 15:
            try:
                c.sock.send(burst)
            except BlockingIOError:
                select.select([], [c.sock], [], 0.05)
            except OSError:
                ended = time.monotonic() - start
                break
        assert ended is not None and ended < 8, f"connection still open after {time.monotonic() - start:.1f}s"
    assert_serves(broker)
