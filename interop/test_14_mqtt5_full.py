"""MQTT 5 in full: shared subscriptions, topic aliases in both directions,
message expiry, flow control, Maximum Packet Size, request/response and
server redirection.  Every wait is bounded."""

import time

import pytest

import mqtt_raw as raw
from conftest import is_petrel, petrel_only
from helpers import assert_closed_with, raw_client, topic, uid
from paho_client import PahoClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V5 = raw.MQTT5


def v5(broker, **kw):
    return raw_client(broker, V5, **kw)


def drain(client, timeout=0.7):
    """Every PUBLISH that arrives until `timeout` passes without one (acked)."""
    got = []
    try:
        while True:
            got.append(client.receive(timeout=timeout))
    except AssertionError:
        pass
    return got


# -- shared subscriptions (section 4.8.2) -----------------------------------

def test_shared_round_robin_three_paho_subscribers(broker):
    """Three paho MQTT 5 subscribers of $share/g/<t>: every message reaches
    exactly one of them; Petrel's default round robin gives each a third."""
    t = topic("share")
    subs = [PahoClient(broker, protocol="v5").connect() for _ in range(3)]
    pub = PahoClient(broker, protocol="v5").connect()
    try:
        for s in subs:
            s.subscribe(f"$share/g/{t}", qos=1)
        for i in range(30):
            pub.publish(t, b"%d" % i, qos=1)
        counts, payloads = [], []
        deadline = time.monotonic() + 10
        while sum(counts) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
            counts = [s.messages.qsize() for s in subs]
        for s in subs:
            while not s.messages.empty():
                payloads.append(s.messages.get_nowait().payload)
        assert sorted(payloads, key=int) == [b"%d" % i for i in range(30)]
        if is_petrel():
            assert counts == [10, 10, 10]
    finally:
        for c in subs + [pub]:
            c.disconnect()


def test_shared_subscription_v311_members(broker):
    """Shared subscriptions work for MQTT 3.1.1 clients too."""
    t = topic("share311")
    with raw_client(broker) as a, raw_client(broker) as b, raw_client(broker) as pub:
        assert a.subscribe([(f"$share/g/{t}", 1)]).reasons == [1]
        assert b.subscribe([(f"$share/g/{t}", 1)]).reasons == [1]
        for i in range(6):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        got = [p.payload for p in drain(a) + drain(b)]
        assert sorted(got, key=int) == [b"%d" % i for i in range(6)]


def test_shared_subscription_available_in_connack(broker):
    with raw.RawClient(broker.host, broker.port, V5) as c:
        assert c.connect(uid()).prop(raw.SHARED_SUBSCRIPTION_AVAILABLE, 1) == 1


def test_shared_no_local_is_protocol_error(broker):
    """No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]."""
    with v5(broker) as c:
        c.send(raw.subscribe(1, [(f"$share/g/{topic()}", raw.sub_options(1, no_local=True))], V5))
        assert_closed_with(c, 0x82)


@petrel_only("SUBACK 0x8F for a malformed share name")
def test_shared_invalid_share_name(broker):
    with v5(broker) as c:
        ack = c.subscribe([("$share/a+b/x", 0), ("$share//x", 0), ("$share/g/x", 0)])
        assert ack.reasons == [0x8F, 0x8F, 0x00]


def test_shared_subscription_gets_no_retained_message(broker):
    """Retained messages are not sent when a shared subscription is made (4.8.2)."""
    t = topic("shret")
    with v5(broker) as pub:
        pub.publish(t, b"kept", qos=1, retain=True)
    with v5(broker) as c:
        c.subscribe([(f"$share/g/{t}", 1)])
        c.expect_nothing(0.7)
    with v5(broker) as cleanup:
        cleanup.publish(t, b"", qos=1, retain=True)


@petrel_only("which member gets the first message depends on the broker")
def test_shared_inflight_message_goes_to_another_member(broker):
    """A QoS 1 message sent to a member that goes away without acknowledging
    and without a persistent session is sent to another member (4.8.2)."""
    t = topic("shmove")
    a = v5(broker)
    with v5(broker) as b, v5(broker) as pub:
        a.subscribe([(f"$share/g/{t}", 1)])
        b.subscribe([(f"$share/g/{t}", 1)])
        pub.publish(t, b"first", qos=1, packet_id=1)
        m = a.receive(ack=False)  # round robin: the first member
        assert m.payload == b"first"
        a.abort()
        again = b.receive(timeout=5)
        assert again.payload == b"first"
        assert again.qos == 1


@petrel_only("--shared-subscription-strategy")
def test_shared_sticky_by_topic(broker_factory):
    b = broker_factory(shared_subscription_strategy="sticky-topic")
    t = topic("sticky")
    with v5(b) as m1, v5(b) as m2, v5(b) as pub:
        m1.subscribe([(f"$share/g/{t}/+", 1)])
        m2.subscribe([(f"$share/g/{t}/+", 1)])
        for i in range(6):
            pub.publish(f"{t}/same", b"%d" % i, qos=1, packet_id=i + 1)
        counts = sorted([len(drain(m1)), len(drain(m2))])
        assert counts == [0, 6]


# -- topic aliases (section 3.3.2.3.4) --------------------------------------

@petrel_only("--topic-alias-maximum")
def test_topic_alias_inbound_and_maximum(broker_factory):
    """Inbound aliases up to the announced maximum; above it DISCONNECT 0x94
    [MQTT-3.3.2-9]; the subscriber sees the real topic."""
    b = broker_factory(topic_alias_maximum=2)
    t = topic("alias")
    with v5(b) as sub, raw.RawClient(b.host, b.port, V5) as pub:
        ack = pub.connect(uid())
        assert ack.prop(raw.TOPIC_ALIAS_MAXIMUM) == 2
        sub.subscribe([(t, 1)])
        pub.publish(t, b"one", qos=1, properties={raw.TOPIC_ALIAS: 2})
        pub.publish("", b"two", qos=1, packet_id=2, properties={raw.TOPIC_ALIAS: 2})
        got = [sub.receive(), sub.receive()]
        assert [(p.topic, p.payload) for p in got] == [(t, b"one"), (t, b"two")]
        assert all(not p.has_prop(raw.TOPIC_ALIAS) for p in got)
        pub.send(raw.publish(t, b"x", version=V5, properties={raw.TOPIC_ALIAS: 3}))
        assert_closed_with(pub, 0x94)


def test_topic_alias_unknown_with_empty_topic(broker):
    """An empty topic with an alias that was never set: DISCONNECT 0x82."""
    with v5(broker) as c:
        c.send(raw.publish("", b"x", version=V5, properties={raw.TOPIC_ALIAS: 1}))
        assert_closed_with(c, 0x82)


@petrel_only("outbound topic aliases")
def test_topic_alias_outbound(broker):
    """A client announcing Topic Alias Maximum gets the topic with an alias
    once, then the alias with an empty topic [MQTT-3.3.2-11]."""
    t = topic("outalias")
    with v5(broker, properties={raw.TOPIC_ALIAS_MAXIMUM: 2}) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        for i in range(3):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        got = [sub.receive() for _ in range(3)]
        alias = got[0].prop(raw.TOPIC_ALIAS)
        assert got[0].topic == t and alias in (1, 2)
        for p in got[1:]:
            assert p.topic == "" and p.prop(raw.TOPIC_ALIAS) == alias
        assert [p.payload for p in got] == [b"0", b"1", b"2"]


def test_no_outbound_alias_without_maximum(broker):
    """Without Topic Alias Maximum in CONNECT no alias is sent [MQTT-3.1.2-27]."""
    t = topic("noalias")
    with v5(broker) as sub, v5(broker) as pub:
        sub.subscribe([(t, 0)])
        pub.publish(t, b"a")
        pub.publish(t, b"b")
        for p in (sub.receive(), sub.receive()):
            assert p.topic == t and not p.has_prop(raw.TOPIC_ALIAS)


# -- expiry, flow control, maximum packet size -------------------------------

def test_expired_queued_message_not_delivered(broker):
    """A message that expires while its subscriber is offline is not sent
    [MQTT-3.3.2-5]; the remaining interval is forwarded [MQTT-3.3.2-6]."""
    t = topic("exp")
    cid = uid()
    with v5(broker, client_id=cid, clean=False, properties={raw.SESSION_EXPIRY_INTERVAL: 60}) as c:
        c.subscribe([(t, 1)])
    with v5(broker) as pub:
        pub.publish(t, b"short", qos=1, properties={raw.MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(t, b"long", qos=1, packet_id=2, properties={raw.MESSAGE_EXPIRY_INTERVAL: 60})
    time.sleep(2.2)
    with raw.RawClient(broker.host, broker.port, V5) as c:
        assert c.connect(cid, clean=False, properties={raw.SESSION_EXPIRY_INTERVAL: 60}).session_present
        m = c.receive()
        assert m.payload == b"long"
        assert 0 < m.prop(raw.MESSAGE_EXPIRY_INTERVAL) <= 59
        c.expect_nothing(0.5)
        c.disconnect(properties={raw.SESSION_EXPIRY_INTERVAL: 0})


def test_expired_retained_message_not_sent(broker):
    t = topic("expret")
    with v5(broker) as pub:
        pub.publish(t, b"r", qos=1, retain=True, properties={raw.MESSAGE_EXPIRY_INTERVAL: 1})
    time.sleep(2.2)
    with v5(broker) as c:
        c.subscribe([(t, 1)])
        c.expect_nothing(0.7)


def test_flow_control_client_receive_maximum(broker):
    """Never more unacknowledged QoS 1 PUBLISH than the client's Receive
    Maximum [MQTT-3.3.4-9]; an acknowledgement lets the next one through."""
    t = topic("flow")
    with v5(broker, properties={raw.RECEIVE_MAXIMUM: 2}) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        for i in range(5):
            pub.publish(t, b"%d" % i, qos=1, packet_id=i + 1)
        first = [sub.receive(ack=False), sub.receive(ack=False)]
        sub.expect_nothing(0.7)
        sub.send(raw.puback(first[0].packet_id, V5))
        third = sub.receive(ack=False)
        assert third.payload == b"2"
        sub.expect_nothing(0.5)


@petrel_only("--receive-maximum")
def test_client_exceeding_receive_maximum_0x93(broker_factory):
    b = broker_factory(receive_maximum=2)
    with v5(b) as c:
        for i in range(1, 4):
            c.send(raw.publish(topic(), b"x", qos=2, packet_id=i, version=V5))
        # The first two are acknowledged with PUBREC (no PUBREL follows), the third is one too many.
        seen = c.expect_closed(allow=(raw.PUBREC, raw.DISCONNECT))
        assert [p.packet_id for p in seen if p.type == raw.PUBREC] == [1, 2]
        assert [p.reason for p in seen if p.type == raw.DISCONNECT] == [0x93]


def test_maximum_packet_size_of_client(broker):
    """A PUBLISH larger than the client's Maximum Packet Size is not sent
    [MQTT-3.1.2-25]; the next one that fits is."""
    t = topic("mps")
    with v5(broker, properties={raw.MAXIMUM_PACKET_SIZE: 128}) as sub, v5(broker) as pub:
        sub.subscribe([(t, 1)])
        pub.publish(t, b"x" * 500, qos=1)
        pub.publish(t, b"small", qos=1, packet_id=2)
        assert sub.receive().payload == b"small"
        sub.expect_nothing(0.5)


# -- request / response, redirection ----------------------------------------

@petrel_only("--response-information")
def test_response_information(broker_factory):
    b = broker_factory(response_information="replies")
    cid = uid()
    with raw.RawClient(b.host, b.port, V5) as c:
        ack = c.connect(cid, properties={raw.REQUEST_RESPONSE_INFORMATION: 1})
        assert ack.prop(raw.RESPONSE_INFORMATION) == f"replies/{cid}"
    with raw.RawClient(b.host, b.port, V5) as c:
        assert not c.connect(uid()).has_prop(raw.RESPONSE_INFORMATION)


def test_response_topic_and_correlation_data_paho(broker):
    """Response Topic and Correlation Data reach the responder unchanged."""
    t = topic("req")
    with PahoClient(broker, protocol="v5").connect() as responder, \
            PahoClient(broker, protocol="v5").connect() as requester:
        responder.subscribe(t, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{t}/reply"
        props.CorrelationData = b"\x01\x02"
        requester.publish(t, b"q", qos=1, properties=props)
        m = responder.get()
        assert m.properties.ResponseTopic == f"{t}/reply"
        assert m.properties.CorrelationData == b"\x01\x02"


@petrel_only("--server-reference")
@pytest.mark.parametrize("kind,code", [("use-another", 0x9C), ("moved", 0x9D)])
def test_server_redirect(broker_factory, kind, code):
    b = broker_factory(server_reference="elsewhere.example:1884", redirect=kind)
    with raw.RawClient(b.host, b.port, V5) as c:
        ack = c.connect(uid(), expect_reason=code)
        assert ack.prop(raw.SERVER_REFERENCE) == "elsewhere.example:1884"
        c.expect_closed()
    with raw.RawClient(b.host, b.port, raw.MQTT311) as c:
        c.connect(uid(), expect_reason=0x03)
        c.expect_closed()


@petrel_only("Petrel sends a Reason String on a refused SUBACK")
def test_reason_string_left_out_to_fit_maximum_packet_size(broker):
    """A SUBACK that would exceed the client's Maximum Packet Size is sent
    without its Reason String [MQTT-3.1.2-25]; with room it carries one, and
    Request Problem Information 0 suppresses it [MQTT-3.1.2-29]."""
    with v5(broker) as roomy:
        ack = roomy.subscribe([("bad/#/x", 0)])
        assert ack.reasons == [0x8F] and ack.has_prop(raw.REASON_STRING)
    with v5(broker, properties={raw.MAXIMUM_PACKET_SIZE: 30}) as tight:
        ack = tight.subscribe([("bad/#/x", 0)])
        assert ack.reasons == [0x8F] and not ack.has_prop(raw.REASON_STRING)
    with v5(broker, properties={raw.REQUEST_PROBLEM_INFORMATION: 0}) as quiet:
        ack = quiet.subscribe([("bad/#/x", 0)])
        assert ack.reasons == [0x8F] and not ack.has_prop(raw.REASON_STRING)
