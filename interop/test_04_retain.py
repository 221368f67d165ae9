"""Retained messages (MQTT 3.1.1 section 3.3.1.3, MQTT 5.0 section 3.3.1.3)."""

import pytest

import mqtt_raw as raw
from helpers import raw_client, topic
from paho_client import PahoClient


def test_retained_sent_on_subscribe(broker):
    """A retained message is stored and sent to a new subscriber with RETAIN=1
    [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]."""
    t = topic("ret")
    with raw_client(broker) as pub:
        pub.publish(t, b"kept", qos=1, retain=True)
    with raw_client(broker) as sub:
        sub.subscribe([(t, 1)])
        m = sub.receive()
        assert m.payload == b"kept" and m.retain is True and m.qos == 1


def test_retained_replaced(broker):
    """A new retained message replaces the old one [MQTT-3.3.1-5] [MQTT-3.3.1-7]."""
    t = topic("ret")
    with raw_client(broker) as pub:
        pub.publish(t, b"old", qos=1, retain=True)
        pub.publish(t, b"new", qos=0, retain=True)
        pub.ping()
    with raw_client(broker) as sub:
        sub.subscribe([(t, 1)])
        m = sub.receive()
        assert m.payload == b"new" and m.retain and m.qos == 0
        sub.expect_nothing(0.5)


def test_retained_deleted_by_empty_payload(broker):
    """A zero-byte retained PUBLISH removes the retained message and is not
    stored [MQTT-3.3.1-10] [MQTT-3.3.1-11]."""
    t = topic("ret")
    with raw_client(broker) as pub:
        pub.publish(t, b"soon gone", qos=1, retain=True)
        pub.publish(t, b"", qos=1, retain=True)
    with raw_client(broker) as sub:
        sub.subscribe([(t, 1)])
        sub.expect_nothing(0.7)


def test_empty_retained_still_forwarded_live(broker):
    """The zero-byte retained PUBLISH is still delivered to current subscribers
    [MQTT-3.3.1-10]."""
    t = topic("ret")
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 0)])
        pub.publish(t, b"", qos=0, retain=True)
        m = sub.receive()
        assert m.payload == b""


def test_retained_sent_for_wildcard_filter(broker):
    """Retained messages matching a wildcard filter are all sent on subscribe
    [MQTT-3.3.1-6]."""
    base = topic("retwc")
    with raw_client(broker) as pub:
        for name in ("a", "b", "c/d"):
            pub.publish(f"{base}/{name}", name.encode(), qos=1, retain=True)
    with raw_client(broker) as sub:
        sub.subscribe([(f"{base}/#", 1)])
        got = {}
        for _ in range(3):
            m = sub.receive()
            assert m.retain
            got[m.topic] = m.payload
        assert got == {f"{base}/a": b"a", f"{base}/b": b"b", f"{base}/c/d": b"c/d"}
    with raw_client(broker) as sub:
        sub.subscribe([(f"{base}/+", 0)])
        topics = sorted(sub.receive().topic for _ in range(2))
        assert topics == [f"{base}/a", f"{base}/b"]
        sub.expect_nothing(0.5)


def test_live_forward_has_retain_0_v311(broker):
    """3.1.1: a retained PUBLISH forwarded to an existing subscription has
    RETAIN=0 [MQTT-3.3.1-9]."""
    t = topic("ret")
    with raw_client(broker) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, b"live", qos=1, retain=True)
        m = sub.receive()
        assert m.payload == b"live" and m.retain is False
    with raw_client(broker) as pub:
        pub.publish(t, b"", retain=True)


def test_retained_qos_downgraded_to_subscription(broker):
    """Retained messages are sent with min(stored QoS, granted QoS) [MQTT-3.3.5-1]."""
    t = topic("ret")
    with raw_client(broker) as pub:
        pub.publish(t, b"q2", qos=2, retain=True)
    with raw_client(broker) as sub:
        sub.subscribe([(t, 1)])
        m = sub.receive()
        assert m.qos == 1 and m.retain


def test_resubscribe_resends_retained_v311(broker):
    """3.1.1: a repeated SUBSCRIBE re-sends the retained messages [MQTT-3.8.4-3]."""
    t = topic("ret")
    with raw_client(broker) as pub:
        pub.publish(t, b"again", qos=1, retain=True)
    with raw_client(broker) as sub:
        sub.subscribe([(t, 1)])
        assert sub.receive().payload == b"again"
        sub.subscribe([(t, 1)], packet_id=2)
        assert sub.receive().payload == b"again"


@pytest.mark.parametrize("protocol", ["v31", "v311", "v5"])
def test_retained_paho(broker, protocol):
    """paho: retained messages flagged retain on subscribe [MQTT-3.3.1-8]."""
    t = topic("ret")
    pub = PahoClient(broker, protocol=protocol).connect()
    pub.publish(t, b"r-" + protocol.encode(), qos=1, retain=True)
    pub.disconnect()
    sub = PahoClient(broker, protocol=protocol).connect()
    try:
        sub.subscribe(t, qos=1)
        m = sub.get()
        assert m.retain and m.payload == b"r-" + protocol.encode()
    finally:
        sub.disconnect()


def test_v5_retain_as_published(broker):
    """MQTT 5: Retain As Published keeps RETAIN=1 on live forwarding; without it
    RETAIN=0 [MQTT-3.3.1-12] [MQTT-3.3.1-13]."""
    t = topic("rap")
    with raw_client(broker, raw.MQTT5) as rap, raw_client(broker, raw.MQTT5) as plain, \
            raw_client(broker, raw.MQTT5) as pub:
        rap.subscribe([(t, raw.sub_options(1, rap=True))])
        plain.subscribe([(t, raw.sub_options(1))])
        pub.publish(t, b"flag", qos=1, retain=True)
        assert rap.receive().retain is True
        assert plain.receive().retain is False
        pub.publish(t, b"", retain=True)


@pytest.mark.parametrize("handling,expected", [(0, 2), (1, 1), (2, 0)])
def test_v5_retain_handling(broker, handling, expected):
    """MQTT 5 Retain Handling: 0 always send, 1 only for a new subscription,
    2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] (5.0 numbering)."""
    t = topic("rh")
    with raw_client(broker, raw.MQTT5) as pub:
        pub.publish(t, b"rh", qos=1, retain=True)
    with raw_client(broker, raw.MQTT5) as sub:
        got = 0
        for pid in (1, 2):
            sub.subscribe([(t, raw.sub_options(1, retain_handling=handling))], packet_id=pid)
            try:
                while True:
                    sub.receive(timeout=0.6)
                    got += 1
            except AssertionError:
                pass
        assert got == expected
