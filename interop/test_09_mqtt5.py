"""MQTT 5 specifics: reason codes, properties, subscription options,
topic aliases, error disconnects."""

import pytest

import mqtt_raw as raw
from conftest import is_petrel
from helpers import assert_closed_with, raw_client, topic, uid
from paho_client import PahoClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V5 = raw.MQTT5


def v5(broker, **kw):
    return raw_client(broker, V5, **kw)


def test_puback_no_matching_subscribers(broker):
    """PUBACK/PUBREC reason 0x10 when nobody is subscribed (section 3.4.2.1);
    the reason is optional, so 0x00 is tolerated except on Petrel."""
    with v5(broker) as c:
        c.send(raw.publish(topic("nobody"), b"x", qos=1, packet_id=3, version=V5))
        ack = c.expect(raw.PUBACK)
        assert ack.packet_id == 3
        assert ack.reason in ((0x10,) if is_petrel() else (0x00, 0x10))
        c.send(raw.publish(topic("nobody"), b"x", qos=2, packet_id=4, version=V5))
        rec = c.expect(raw.PUBREC)
        assert rec.reason in ((0x10,) if is_petrel() else (0x00, 0x10))
        c.send(raw.pubrel(4, V5))
        c.expect(raw.PUBCOMP)


def test_puback_success_with_subscriber(broker):
    """PUBACK reason 0x00 (Success) when the message is accepted (section 3.4.2.1)."""
    t = topic()
    with v5(broker) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        ack = pub.publish(t, b"x", qos=1)
        assert ack.reason == 0x00


def test_connack_properties_valid(broker):
    """CONNACK properties, when present, carry valid values (section 3.2.2.3):
    booleans are 0/1, Receive Maximum > 0, Maximum QoS 0/1."""
    with raw.RawClient(broker.host, broker.port, V5) as c:
        ack = c.connect(uid())
        for pid in (raw.RETAIN_AVAILABLE, raw.WILDCARD_SUBSCRIPTION_AVAILABLE,
                    raw.SUBSCRIPTION_IDENTIFIER_AVAILABLE, raw.SHARED_SUBSCRIPTION_AVAILABLE):
            assert ack.prop(pid, 1) in (0, 1)
        assert ack.prop(raw.RECEIVE_MAXIMUM, 65535) > 0
        assert ack.prop(raw.MAXIMUM_QOS, 1) in (0, 1)
        assert ack.prop(raw.MAXIMUM_PACKET_SIZE, 1) > 0
        # no property appears twice except user properties
        ids = [k for k, _ in ack.properties if k != raw.USER_PROPERTY]
        assert len(ids) == len(set(ids))


def test_connack_properties_present_petrel(broker_factory):
    """Petrel announces its limits in CONNACK: Receive Maximum, Maximum Packet
    Size, Topic Alias Maximum, Wildcard/Shared/Subscription Identifier
    availability (section 3.2.2.3)."""
    if not is_petrel():
        pytest.skip("Petrel only: Mosquitto omits properties at their default")
    b = broker_factory(receive_maximum=20, max_packet_size=65536)
    with raw.RawClient(b.host, b.port, V5) as c:
        ack = c.connect(uid())
        assert ack.prop(raw.RECEIVE_MAXIMUM) == 20
        assert ack.prop(raw.MAXIMUM_PACKET_SIZE) == 65536
        assert ack.has_prop(raw.TOPIC_ALIAS_MAXIMUM)
        assert ack.prop(raw.WILDCARD_SUBSCRIPTION_AVAILABLE) in (0, 1)
        assert ack.prop(raw.SHARED_SUBSCRIPTION_AVAILABLE) in (0, 1)
        assert ack.prop(raw.SUBSCRIPTION_IDENTIFIER_AVAILABLE) in (0, 1)


def test_connack_maximum_packet_size(broker_factory):
    """A configured maximum packet size is announced in CONNACK (section 3.2.2.3.6)."""
    b = broker_factory(max_packet_size=2048)
    with raw.RawClient(b.host, b.port, V5) as c:
        assert c.connect(uid()).prop(raw.MAXIMUM_PACKET_SIZE) == 2048


def test_properties_forwarded_unchanged(broker):
    """Payload Format Indicator, Content Type, Response Topic, Correlation Data
    and User Properties (in order) are forwarded unchanged [MQTT-3.3.2-4]
    [MQTT-3.3.2-20] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18]."""
    t = topic("props")
    props = [
        (raw.PAYLOAD_FORMAT_INDICATOR, 1),
        (raw.CONTENT_TYPE, "text/plain; charset=utf-8"),
        (raw.RESPONSE_TOPIC, "reply/here"),
        (raw.CORRELATION_DATA, b"\x00\x01corr\xff"),
        (raw.USER_PROPERTY, ("z", "1")),
        (raw.USER_PROPERTY, ("a", "2")),
        (raw.USER_PROPERTY, ("z", "3")),
        (raw.USER_PROPERTY, ("", "")),
    ]
    with v5(broker) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, "héllo".encode(), qos=1, properties=props)
        m = sub.receive()
        assert m.payload == "héllo".encode()
        assert m.prop(raw.PAYLOAD_FORMAT_INDICATOR) == 1
        assert m.prop(raw.CONTENT_TYPE) == "text/plain; charset=utf-8"
        assert m.prop(raw.RESPONSE_TOPIC) == "reply/here"
        assert m.prop(raw.CORRELATION_DATA) == b"\x00\x01corr\xff"
        assert m.props(raw.USER_PROPERTY) == [("z", "1"), ("a", "2"), ("z", "3"), ("", "")]


def test_properties_forwarded_paho(broker):
    """paho v5: user properties and content type survive the broker [MQTT-3.3.2-17]."""
    t = topic("props")
    sub = PahoClient(broker, protocol="v5").connect()
    pub = PahoClient(broker, protocol="v5").connect()
    try:
        sub.subscribe(t, qos=1)
        p = Properties(PacketTypes.PUBLISH)
        p.ContentType = "application/json"
        p.UserProperty = [("k1", "v1"), ("k2", "v2")]
        pub.publish(t, b"{}", qos=1, properties=p)
        m = sub.get()
        assert m.properties.ContentType == "application/json"
        assert m.properties.UserProperty == [("k1", "v1"), ("k2", "v2")]
    finally:
        pub.disconnect()
        sub.disconnect()


def test_properties_dropped_for_v311_subscriber(broker):
    """A v5 PUBLISH with properties reaches a 3.1.1 subscriber as a plain
    3.1.1 PUBLISH (no property bytes in the payload)."""
    t = topic("mix")
    with raw_client(broker, raw.MQTT311) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, b"plain", qos=1, properties=[(raw.USER_PROPERTY, ("k", "v"))])
        assert sub.receive().payload == b"plain"


def test_subscription_identifier_delivered(broker):
    """The Subscription Identifier of the matching subscription is sent with the
    message [MQTT-3.3.4-3] (section 3.8.2.1.2)."""
    t = topic("sid")
    with v5(broker) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)], properties={raw.SUBSCRIPTION_IDENTIFIER: 42})
        sub.subscribe([(t.rsplit("/", 1)[0] + "/#", 0)], packet_id=2,
                      properties={raw.SUBSCRIPTION_IDENTIFIER: 268_435_455})
        pub.publish(t, b"x", qos=1)
        ids = []
        for _ in range(2):
            try:
                m = sub.receive(timeout=2)
            except AssertionError:
                break
            ids.extend(m.props(raw.SUBSCRIPTION_IDENTIFIER))
        assert 42 in ids and 268_435_455 in ids, ids


def test_subscription_identifier_zero_is_protocol_error(broker):
    """A Subscription Identifier of 0 is a Protocol Error (section 3.8.2.1.2)."""
    with v5(broker) as c:
        c.send(raw.subscribe(1, [("a/b", 0)], V5, {raw.SUBSCRIPTION_IDENTIFIER: 0}))
        assert_closed_with(c, (0x82, 0x81))


def test_no_local(broker):
    """No Local: messages are not sent back to the publishing connection
    [MQTT-3.8.3-3] (5.0 numbering)."""
    t = topic("nl")
    with v5(broker) as c, v5(broker) as other:
        c.subscribe([(t, raw.sub_options(1, no_local=True))])
        c.publish(t, b"mine", qos=1)
        c.expect_nothing(0.7)
        other.publish(t, b"theirs", qos=1)
        assert c.receive().payload == b"theirs"


def test_topic_alias_beyond_maximum(broker):
    """A Topic Alias greater than the server's Topic Alias Maximum (0 when
    absent) gets DISCONNECT 0x94 [MQTT-3.3.2-9] (section 3.3.2.3.4)."""
    with raw.RawClient(broker.host, broker.port, V5) as c:
        ack = c.connect(uid())
        maximum = ack.prop(raw.TOPIC_ALIAS_MAXIMUM, 0)
        c.send(raw.publish("ta/x", b"x", version=V5, properties={raw.TOPIC_ALIAS: maximum + 1}))
        assert_closed_with(c, 0x94)


def test_topic_alias_zero_is_error(broker):
    """A Topic Alias of 0 is a protocol error [MQTT-3.3.2-8]: DISCONNECT 0x94."""
    with v5(broker) as c:
        c.send(raw.publish("ta/x", b"x", version=V5, properties={raw.TOPIC_ALIAS: 0}))
        assert_closed_with(c, (0x94,) if is_petrel() else (0x94, 0x82, 0x81))


def test_topic_alias_used_when_supported(broker):
    """If the server allows topic aliases, an alias set once can be used with
    an empty topic afterwards (section 3.3.2.3.4)."""
    t = topic("ta")
    with raw.RawClient(broker.host, broker.port, V5) as pub, v5(broker) as sub:
        ack = pub.connect(uid())
        if ack.prop(raw.TOPIC_ALIAS_MAXIMUM, 0) < 1:
            pytest.skip("server does not accept topic aliases")
        sub.subscribe([(t, 1)])
        pub.publish(t, b"first", qos=1, properties={raw.TOPIC_ALIAS: 1})
        pub.publish("", b"second", qos=1, packet_id=2, properties={raw.TOPIC_ALIAS: 1})
        m1, m2 = sub.receive(), sub.receive()
        assert (m1.topic, m2.topic) == (t, t)
        assert (m1.payload, m2.payload) == (b"first", b"second")


def test_unknown_alias_with_empty_topic_is_error(broker):
    """An empty topic with an alias never set is a protocol error (0x82) (section 3.3.4)."""
    with raw.RawClient(broker.host, broker.port, V5) as c:
        ack = c.connect(uid())
        alias = 1 if ack.prop(raw.TOPIC_ALIAS_MAXIMUM, 0) >= 1 else 1
        c.send(raw.publish("", b"x", version=V5, properties={raw.TOPIC_ALIAS: alias}))
        assert_closed_with(c, (0x82, 0x94))


def test_malformed_packet_disconnect_0x81(broker):
    """A malformed packet gets DISCONNECT 0x81 before close [MQTT-4.13.1-1]
    (the DISCONNECT is required on Petrel)."""
    with v5(broker) as c:
        # property length runs past the end of the packet
        c.send(raw.packet(raw.PUBLISH, 0, raw.utf8("a/b") + raw.varint(50) + b"\x01\x01"))
        assert_closed_with(c, 0x81)


def test_protocol_error_disconnect_0x82(broker):
    """A protocol error (second CONNECT) gets DISCONNECT 0x82 before close
    [MQTT-3.1.0-2] [MQTT-4.13.1-1]."""
    with v5(broker) as c:
        c.send(raw.connect(uid(), version=V5))
        assert_closed_with(c, 0x82)


def test_duplicate_property_is_protocol_error(broker):
    """A property that may appear once, sent twice, is a Protocol Error
    (section 2.2.2.2)."""
    with v5(broker) as c:
        c.send(raw.publish("dp/x", b"x", version=V5,
                           properties=[(raw.CONTENT_TYPE, "a"), (raw.CONTENT_TYPE, "b")]))
        assert_closed_with(c, (0x82, 0x81))


def test_packet_too_large_disconnect_0x95(broker_factory):
    """With a small --max-packet-size an oversized PUBLISH gets DISCONNECT 0x95
    (section 3.2.2.3.6)."""
    b = broker_factory(max_packet_size=512)
    with raw.RawClient(b.host, b.port, V5) as c:
        c.connect(uid())
        c.send(raw.publish("big", b"y" * 2000, version=V5))
        assert_closed_with(c, 0x95)


def test_client_maximum_packet_size_respected(broker):
    """The server does not send a PUBLISH larger than the client's Maximum
    Packet Size; it drops it instead [MQTT-3.1.2-24] (5.0 numbering)."""
    t = topic("cmps")
    with raw.RawClient(broker.host, broker.port, V5) as sub, v5(broker) as pub:
        sub.connect(uid(), properties={raw.MAXIMUM_PACKET_SIZE: 128})
        sub.subscribe([(t, 1)])
        pub.publish(t, b"z" * 500, qos=1)
        pub.publish(t, b"small", qos=1, packet_id=2)
        m = sub.receive()
        assert m.payload == b"small"


def test_receive_maximum_respected(broker):
    """The server sends no more unacknowledged QoS 1/2 PUBLISH packets than the
    client's Receive Maximum (section 3.3.4, flow control 4.9)."""
    t = topic("rm")
    with raw.RawClient(broker.host, broker.port, V5) as sub, v5(broker) as pub:
        sub.connect(uid(), properties={raw.RECEIVE_MAXIMUM: 2})
        sub.subscribe([(t, 1)])
        for i in range(5):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        first = [sub.expect(raw.PUBLISH), sub.expect(raw.PUBLISH)]
        sub.expect_nothing(0.7)
        for m in first:
            sub.send(raw.puback(m.packet_id, V5))
        rest = [sub.receive() for _ in range(3)]
        assert [m.payload for m in first + rest] == [b"%d" % i for i in range(5)]


def test_message_expiry_interval(broker):
    """A queued message whose Message Expiry Interval passed is not delivered;
    a forwarded one carries the reduced interval [MQTT-3.3.2-5] [MQTT-3.3.2-6]."""
    import time
    cid, t = uid("mei"), topic("mei")
    c = raw_client(broker, V5, cid, clean=True, properties={raw.SESSION_EXPIRY_INTERVAL: 60})
    c.subscribe([(t, 1)])
    c.disconnect()
    with v5(broker) as pub:
        pub.publish(t, b"short", qos=1, properties={raw.MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(t, b"long", qos=1, packet_id=2, properties={raw.MESSAGE_EXPIRY_INTERVAL: 100})
    time.sleep(2.2)
    with raw.RawClient(broker.host, broker.port, V5) as c:
        ack = c.connect(cid, clean=False)
        assert ack.session_present
        m = c.receive()
        assert m.payload == b"long"
        assert m.prop(raw.MESSAGE_EXPIRY_INTERVAL) <= 99
        c.expect_nothing(0.5)
        c.disconnect(properties={raw.SESSION_EXPIRY_INTERVAL: 0})


def test_request_problem_information_reason_string_allowed(broker):
    """Unknown user properties on CONNECT are accepted (section 3.1.2.11.8)."""
    with raw.RawClient(broker.host, broker.port, V5) as c:
        ack = c.connect(uid(), properties=[(raw.USER_PROPERTY, ("hello", "world")),
                                           (raw.REQUEST_PROBLEM_INFORMATION, 1)])
        assert ack.reason == 0


def test_suback_reason_codes_v5(broker):
    """SUBACK in MQTT 5 carries one reason code per filter: granted QoS or an
    error (section 3.9.3)."""
    with v5(broker) as c:
        ack = c.subscribe([("ok/a", 2), ("ok/b", 1), ("ok/c", 0)], packet_id=11)
        assert ack.reasons == [2, 1, 0]


def test_suback_invalid_filter_0x8f_petrel(broker):
    """Petrel answers an invalid filter with SUBACK 0x8F (Topic Filter invalid)
    and keeps serving the valid ones (section 3.9.3); Mosquitto disconnects."""
    if not is_petrel():
        pytest.skip("Petrel only: Mosquitto 2.0.11 disconnects with 0x81")
    with v5(broker) as c:
        ack = c.subscribe([("ok/a", 1), ("bad/#/x", 0)], packet_id=12)
        assert ack.reasons == [1, 0x8F]
        c.ping()


def test_unsuback_reason_codes_v5(broker):
    """UNSUBACK in MQTT 5: 0x00 for an existing subscription, 0x11 for none
    (section 3.11.3)."""
    with v5(broker) as c:
        c.subscribe([("us/a", 0)])
        c.send(raw.unsubscribe(5, ["us/a", "us/never"], V5))
        ack = c.expect(raw.UNSUBACK)
        assert ack.reasons == [0x00, 0x11]


def test_shared_subscription_distributes(broker):
    """Shared subscriptions ($share/group/filter) deliver each message to one
    member of the group (section 4.8.2)."""
    t = topic("sh")
    with raw.RawClient(broker.host, broker.port, V5) as probe:
        ack = probe.connect(uid())
        if ack.prop(raw.SHARED_SUBSCRIPTION_AVAILABLE, 1) == 0:
            pytest.skip("shared subscriptions not available")
    with v5(broker) as a, v5(broker) as b, v5(broker) as pub:
        a.subscribe([(f"$share/g/{t}", 1)])
        b.subscribe([(f"$share/g/{t}", 1)])
        for i in range(10):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        got = []
        for c in (a, b):
            try:
                while True:
                    got.append(c.receive(timeout=0.7).payload)
            except AssertionError:
                pass
        assert sorted(got, key=int) == [b"%d" % i for i in range(10)]
