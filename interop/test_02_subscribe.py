"""SUBSCRIBE / UNSUBSCRIBE and topic matching (MQTT 3.1.1 sections 3.8-3.11, 4.7)."""

import pytest

import mqtt_raw as raw
from conftest import is_petrel
from helpers import raw_client, topic, uid
from paho_client import PahoClient

PROTOCOLS = ["v31", "v311", "v5"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_subscribe_publish_roundtrip(broker, protocol, qos):
    """A subscriber receives a message it is subscribed to at the published QoS
    when the subscription allows it [MQTT-3.3.5-1] [MQTT-3.8.4-1]."""
    t = topic()
    sub = PahoClient(broker, protocol=protocol).connect()
    pub = PahoClient(broker, protocol=protocol).connect()
    try:
        codes = sub.subscribe(t, qos=2)
        assert [c.value for c in codes] == [2], "granted QoS [MQTT-3.9.3-1]"
        pub.publish(t, b"payload-%d" % qos, qos=qos)
        msg = sub.get()
        assert msg.topic == t and msg.payload == b"payload-%d" % qos
        assert msg.qos == qos
        assert msg.retain is False
    finally:
        pub.disconnect()
        sub.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 0), (2, 1), (1, 0), (0, 2), (1, 2)])
def test_delivered_qos_is_minimum(broker, protocol, pub_qos, sub_qos):
    """Delivered QoS = min(published QoS, granted QoS) [MQTT-3.3.5-1]."""
    t = topic()
    sub = PahoClient(broker, protocol=protocol).connect()
    pub = PahoClient(broker, protocol=protocol).connect()
    try:
        sub.subscribe(t, qos=sub_qos)
        pub.publish(t, b"m", qos=pub_qos)
        msg = sub.get()
        assert msg.qos == min(pub_qos, sub_qos)
    finally:
        pub.disconnect()
        sub.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wildcards(broker, protocol):
    """'+' matches exactly one level, '#' matches the parent and any number of
    levels [MQTT-4.7.1-2] [MQTT-4.7.1-3]."""
    base = topic("wc")
    sub_plus = PahoClient(broker, protocol=protocol).connect()
    sub_hash = PahoClient(broker, protocol=protocol).connect()
    pub = PahoClient(broker, protocol=protocol).connect()
    try:
        sub_plus.subscribe(f"{base}/+/x", qos=1)
        sub_hash.subscribe(f"{base}/#", qos=1)
        for t in (f"{base}/a/x", f"{base}/b/x", f"{base}/a/y", f"{base}/a/b/x", base, f"{base}/"):
            pub.publish(t, t.encode(), qos=1)
        got_plus = [m.topic for m in sub_plus.get_many(2)]
        assert got_plus == [f"{base}/a/x", f"{base}/b/x"]
        sub_plus.expect_none(0.5)
        got_hash = [m.topic for m in sub_hash.get_many(6)]
        assert got_hash == [f"{base}/a/x", f"{base}/b/x", f"{base}/a/y", f"{base}/a/b/x", base, f"{base}/"]
        sub_hash.expect_none(0.3)
    finally:
        for c in (pub, sub_plus, sub_hash):
            c.disconnect()


def test_plus_matches_empty_level(broker):
    """'+' matches an empty level: 'a/+/c' matches 'a//c' [MQTT-4.7.1-3]."""
    base = topic("empty")
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(f"{base}/+/c", 0)])
        pub.publish(f"{base}//c", b"e")
        assert sub.receive().topic == f"{base}//c"


def test_overlapping_subscriptions_single_delivery_v311(broker):
    """Overlapping subscriptions: the message is delivered with the maximum QoS
    of the matching subscriptions (3.1.1 allows one copy per match; at least one
    copy must carry the maximum QoS) [MQTT-3.3.5-1]."""
    base = topic("ovl")
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(f"{base}/#", 0), (f"{base}/+", 2)])
        pub.publish(f"{base}/x", b"o", qos=2)
        msgs = [sub.receive()]
        try:
            while True:
                msgs.append(sub.receive(timeout=0.5))
        except AssertionError:
            pass
        assert max(m.qos for m in msgs) == 2
        assert all(m.payload == b"o" for m in msgs)


def test_resubscribe_replaces(broker):
    """A SUBSCRIBE for an existing filter replaces it (new QoS) [MQTT-3.8.4-3]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 0)])
        sub.subscribe([(t, 1)], packet_id=2)
        pub.publish(t, b"r", qos=1)
        m = sub.receive()
        assert m.qos == 1
        sub.expect_nothing(0.5)


def test_suback_order_and_packet_id(broker):
    """SUBACK has the same packet id and one return code per filter in order
    [MQTT-3.8.4-1] [MQTT-3.8.4-5] [MQTT-3.9.3-1]."""
    with raw_client(broker) as c:
        ack = c.subscribe([("o/a", 2), ("o/b", 0), ("o/c", 1)], packet_id=4321)
        assert ack.packet_id == 4321
        assert ack.reasons == [2, 0, 1]


def test_unsubscribe_stops_delivery(broker):
    """After UNSUBACK no further messages are delivered [MQTT-3.10.4-2] [MQTT-3.10.4-4]."""
    t = topic()
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 1)])
        sub.send(raw.unsubscribe(7, [t]))
        ack = sub.expect(raw.UNSUBACK)
        assert ack.packet_id == 7
        pub.publish(t, b"gone", qos=1)
        sub.expect_nothing(0.7)


def test_unsubscribe_unknown_filter_acknowledged(broker):
    """UNSUBSCRIBE for a filter that does not exist still gets UNSUBACK [MQTT-3.10.4-5]."""
    with raw_client(broker) as c:
        c.send(raw.unsubscribe(9, ["never/subscribed"]))
        assert c.expect(raw.UNSUBACK).packet_id == 9


def test_invalid_filter_rejected_v311(broker):
    """An invalid filter ('#' not last) is refused: SUBACK 0x80 or close [MQTT-4.7.1-2]."""
    with raw_client(broker) as c:
        c.send(raw.subscribe(3, [("a/#/b", 0)]))
        try:
            p = c.read(5)
        except raw.Closed:
            return
        assert p.type == raw.SUBACK and p.reasons == [0x80], repr(p)


def test_invalid_filter_rejected_v5(broker):
    """MQTT 5: an invalid filter is refused with SUBACK 0x8F or DISCONNECT [MQTT-4.7.1-2]."""
    with raw_client(broker, raw.MQTT5) as c:
        c.send(raw.subscribe(3, [("a/b+", 0)], version=raw.MQTT5))
        try:
            p = c.read(5)
        except raw.Closed:
            return
        if p.type == raw.SUBACK:
            assert p.reasons == [0x8F], repr(p)
        else:
            assert p.type == raw.DISCONNECT and p.reason in (0x8F, 0x81, 0x82), repr(p)


def test_dollar_topics_not_matched_by_wildcards(broker):
    """Topics starting with '$' are not matched by filters starting with a
    wildcard [MQTT-4.7.2-1], but are matched by '$test/#'."""
    name = uid("d")
    with raw_client(broker) as all_sub, raw_client(broker) as plus_sub, \
            raw_client(broker) as dollar_sub, raw_client(broker) as pub:
        all_sub.subscribe([("#", 0)])
        plus_sub.subscribe([("+/" + name, 0)])
        dollar_sub.subscribe([("$test/#", 0)])
        pub.publish(f"$test/{name}", b"dollar", qos=0)
        m = dollar_sub.receive()
        assert m.topic == f"$test/{name}"
        pub.publish(f"$test/{name}", b"dollar2", qos=0)
        assert dollar_sub.receive().payload == b"dollar2"
        # '#' may see traffic of other tests, but never the $ topic
        try:
            while True:
                p = all_sub.receive(timeout=0.5)
                assert not p.topic.startswith("$"), f"'#' matched {p.topic}"
        except AssertionError as e:
            if "matched" in str(e):
                raise
        plus_sub.expect_nothing(0.3)
