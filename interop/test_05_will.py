"""Will messages (MQTT 3.1.1 section 3.1.2.5, MQTT 5.0 sections 3.1.2.5, 3.1.3.2)."""

import time

import pytest

import mqtt_raw as raw
from conftest import is_mosquitto
from helpers import keepalive_limit, raw_client, topic, uid

VERSIONS = [pytest.param(raw.MQTT311, id="v311"), pytest.param(raw.MQTT5, id="v5")]


def will_client(broker, version, will_topic, payload=b"gone", qos=0, retain=False,
                keepalive=60, will_props=None, props=None, client_id=None, clean=True):
    return raw_client(broker, version, client_id or uid("will"), keepalive=keepalive,
                      clean=clean, properties=props,
                      will=raw.Will(will_topic, payload, qos, retain, will_props))


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_abnormal_close(broker, version):
    """The will is published when the connection closes without DISCONNECT
    [MQTT-3.1.2-8]."""
    t = topic("will")
    with raw_client(broker, version) as sub:
        sub.subscribe([(t, 1)])
        c = will_client(broker, version, t, b"abnormal", qos=1)
        c.close()
        m = sub.receive()
        assert m.topic == t and m.payload == b"abnormal" and m.qos == 1


def test_will_on_reset(broker):
    """A TCP reset also counts as an abnormal close [MQTT-3.1.2-8]."""
    t = topic("will")
    with raw_client(broker) as sub:
        sub.subscribe([(t, 0)])
        will_client(broker, raw.MQTT311, t, b"rst").abort()
        assert sub.receive().payload == b"rst"


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_after_disconnect(broker, version):
    """After a normal DISCONNECT the will is discarded and not published
    [MQTT-3.1.2-10] [MQTT-3.14.4-3]."""
    t = topic("will")
    with raw_client(broker, version) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, version, t, b"never")
        c.disconnect()
        sub.expect_nothing(1.0)


def test_v5_disconnect_with_will_message(broker):
    """MQTT 5: DISCONNECT reason 0x04 publishes the will (section 3.14.2.1)."""
    t = topic("will")
    with raw_client(broker, raw.MQTT5) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, raw.MQTT5, t, b"asked for")
        c.disconnect(reason=0x04)
        assert sub.receive().payload == b"asked for"


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_keepalive_timeout(broker, version):
    """A client silent for 1.5 x keep alive is disconnected and its will
    published [MQTT-3.1.2-24] [MQTT-3.1.2-8]."""
    t = topic("will")
    with raw_client(broker, version) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, version, t, b"timeout", keepalive=1)
        try:
            start = time.monotonic()
            assert sub.receive(timeout=keepalive_limit(1)).payload == b"timeout"
            assert time.monotonic() - start >= 0.9
        finally:
            c.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_protocol_error(broker, version):
    """A connection closed by the server for a protocol error publishes the
    will [MQTT-3.1.2-8] [MQTT-4.8.0-1]."""
    if is_mosquitto():
        pytest.skip("Mosquitto 2.0.11 drops the will when it closes for a protocol error")
    t = topic("will")
    with raw_client(broker, version) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, version, t, b"violation")
        c.send(raw.connect(uid(), version=version))  # second CONNECT
        c.expect_closed(5)
        assert sub.receive().payload == b"violation"


@pytest.mark.parametrize("version", VERSIONS)
def test_will_qos_and_retain(broker, version):
    """Will QoS and Will Retain are honoured [MQTT-3.1.2-14] [MQTT-3.1.2-17]."""
    t = topic("will")
    c = will_client(broker, version, t, b"retained will", qos=2, retain=True)
    c.close()
    time.sleep(0.5)
    with raw_client(broker, version) as sub:
        sub.subscribe([(t, 2)])
        m = sub.receive()
        assert m.payload == b"retained will" and m.qos == 2 and m.retain
    with raw_client(broker, version) as cleaner:
        cleaner.publish(t, b"", retain=True)


def test_will_not_retained_when_flag_clear(broker):
    """Will Retain 0: the will is published as a non-retained message [MQTT-3.1.2-16]."""
    t = topic("will")
    will_client(broker, raw.MQTT311, t, b"transient").close()
    time.sleep(0.5)
    with raw_client(broker) as sub:
        sub.subscribe([(t, 0)])
        sub.expect_nothing(0.7)


def test_v5_will_delay_interval(broker):
    """MQTT 5: the will is delayed by the Will Delay Interval [MQTT-3.1.3-9]."""
    t = topic("will")
    with raw_client(broker, raw.MQTT5) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, raw.MQTT5, t, b"late",
                        props={raw.SESSION_EXPIRY_INTERVAL: 30},
                        will_props={raw.WILL_DELAY_INTERVAL: 2})
        start = time.monotonic()
        c.close()
        sub.expect_nothing(1.2)
        m = sub.receive(timeout=5)
        elapsed = time.monotonic() - start
        assert m.payload == b"late"
        assert 1.5 <= elapsed <= 5.0, f"will after {elapsed:.2f}s"


def test_v5_will_delay_cancelled_by_reconnect(broker):
    """MQTT 5: reconnecting within the Will Delay Interval prevents the will
    [MQTT-3.1.3-9]."""
    t = topic("will")
    cid = uid("wd")
    with raw_client(broker, raw.MQTT5) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, raw.MQTT5, t, b"cancelled", client_id=cid, clean=False,
                        props={raw.SESSION_EXPIRY_INTERVAL: 30},
                        will_props={raw.WILL_DELAY_INTERVAL: 2})
        c.close()
        time.sleep(0.5)
        c2 = raw_client(broker, raw.MQTT5, cid, clean=False,
                        properties={raw.SESSION_EXPIRY_INTERVAL: 0})
        try:
            sub.expect_nothing(2.5)
        finally:
            c2.disconnect()


def test_v5_will_delay_ends_with_session(broker):
    """MQTT 5: the will is sent when the session ends, if that is before the
    Will Delay Interval [MQTT-3.1.3-9]."""
    t = topic("will")
    with raw_client(broker, raw.MQTT5) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, raw.MQTT5, t, b"session over",
                        props={raw.SESSION_EXPIRY_INTERVAL: 1},
                        will_props={raw.WILL_DELAY_INTERVAL: 30})
        c.close()
        m = sub.receive(timeout=6)
        assert m.payload == b"session over"


def test_will_properties_forwarded_v5(broker):
    """MQTT 5: will properties (content type, user properties) are sent with
    the will message [MQTT-3.1.3-10]."""
    t = topic("will")
    with raw_client(broker, raw.MQTT5) as sub:
        sub.subscribe([(t, 0)])
        c = will_client(broker, raw.MQTT5, t, b"{}",
                        will_props=[(raw.CONTENT_TYPE, "application/json"),
                                    (raw.USER_PROPERTY, ("k", "v"))])
        c.close()
        m = sub.receive()
        assert m.prop(raw.CONTENT_TYPE) == "application/json"
        assert m.props(raw.USER_PROPERTY) == [("k", "v")]
