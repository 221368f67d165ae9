"""CONNECT / CONNACK behaviour (MQTT 3.1.1 section 3.1-3.2, MQTT 5.0 section 3.1-3.2)."""

import socket
import time

import pytest

import mqtt_raw as raw
from conftest import is_petrel, petrel_only
from helpers import assert_closed_with, raw_client, uid
from paho_client import PahoClient

VERSIONS = [pytest.param(raw.MQTT31, id="v31"), pytest.param(raw.MQTT311, id="v311"),
            pytest.param(raw.MQTT5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_accepted(broker, version):
    """A well-formed CONNECT is answered with CONNACK return code 0 [MQTT-3.2.0-1]."""
    with raw.RawClient(broker.host, broker.port, version) as c:
        ack = c.connect(uid())
        assert ack.reason == 0
        assert ack.session_present is False
        c.ping()
        c.disconnect()


@pytest.mark.parametrize("protocol", ["v31", "v311", "v5"])
def test_paho_connects(broker, protocol):
    """paho-mqtt connects with every protocol version [MQTT-3.1.0-1]."""
    c = PahoClient(broker, protocol=protocol).connect()
    c.disconnect()


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5], ids=["v311", "v5"])
def test_first_packet_must_be_connect(broker, version):
    """A first packet other than CONNECT closes the connection [MQTT-3.1.0-1]."""
    with raw.RawClient(broker.host, broker.port, version) as c:
        c.send(raw.pingreq())
        c.expect_closed(5, allow=(raw.DISCONNECT, raw.CONNACK))


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5], ids=["v311", "v5"])
def test_publish_before_connect_closes(broker, version):
    """A PUBLISH before CONNECT is a protocol violation [MQTT-3.1.0-1]."""
    with raw.RawClient(broker.host, broker.port, version) as c:
        c.send(raw.publish("a/b", b"x", version=version))
        c.expect_closed(5, allow=(raw.DISCONNECT, raw.CONNACK))


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5], ids=["v311", "v5"])
def test_second_connect_closes(broker, version):
    """A second CONNECT is a protocol violation: the connection is closed [MQTT-3.1.0-2]."""
    with raw_client(broker, version) as c:
        c.send(raw.connect(uid(), version=version))
        assert_closed_with(c, 0x82)


def test_bad_protocol_level_v311(broker):
    """An unsupported protocol level gets CONNACK 0x01 then close [MQTT-3.1.2-2]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect(uid(), version=7, protocol_name=b"MQTT"))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        if seen:
            assert seen[0].reason == 0x01


def test_bad_protocol_level_v311_requires_connack(broker):
    """The 3.1.1 server MUST answer an unsupported level with CONNACK 0x01 [MQTT-3.1.2-2]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect(uid(), version=6, protocol_name=b"MQTT"))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        assert [p.reason for p in seen] == [0x01]


def test_bad_protocol_name_closes(broker):
    """A protocol name other than MQTT closes the connection [MQTT-3.1.2-1]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect(uid(), version=4, protocol_name=b"MQTX"))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        for p in seen:
            assert p.reason != 0


def test_connect_reserved_flag_closes(broker):
    """The reserved CONNECT flag must be 0, else the server disconnects [MQTT-3.1.2-3]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect(uid(), reserved_flag=True))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        assert all(p.reason != 0 for p in seen), "CONNECT must not be accepted"


def test_empty_client_id_clean_session_accepted(broker):
    """A zero-byte client id with CleanSession=1 is accepted [MQTT-3.1.3-6] [MQTT-3.1.3-7]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        ack = c.connect("", clean=True)
        assert ack.reason == 0
        c.ping()


def test_empty_client_id_persistent_rejected(broker):
    """A zero-byte client id with CleanSession=0 gets CONNACK 0x02 then close [MQTT-3.1.3-8]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect("", clean=False))
        ack = c.expect(raw.CONNACK)
        assert ack.reason == 0x02
        c.expect_closed(5, allow=())


def test_empty_client_id_v5_assigned(broker):
    """MQTT 5: a zero-length client id is given an Assigned Client Identifier [MQTT-3.2.2-16]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        ack = c.connect("")
        assigned = ack.prop(raw.ASSIGNED_CLIENT_IDENTIFIER)
        assert assigned, f"no Assigned Client Identifier in {ack!r}"
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c2:
        ack2 = c2.connect("")
        assert ack2.prop(raw.ASSIGNED_CLIENT_IDENTIFIER) != assigned, "assigned ids must be unique"


def test_bad_protocol_level_v5(broker):
    """MQTT 5: an unsupported protocol version gets CONNACK 0x84 then close [MQTT-3.1.2-2]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT5) as c:
        # version 6 with MQTT 5 encoding (properties present)
        body = raw.utf8(b"MQTT") + bytes([6, 0x02]) + raw.u16(60) + raw.encode_properties(None) \
            + raw.utf8(uid())
        c.send(raw.packet(raw.CONNECT, 0, body))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        if is_petrel():
            assert seen, "expected a CONNACK before close"
        for p in seen:
            assert p.body[1] in (0x84, 0x01), f"CONNACK reason {p.body[1]:#x}"


def test_connect_timeout_closes_silent_socket(broker_factory):
    """A connection that never sends CONNECT is closed after --connect-timeout
    (MQTT 3.1.1 section 3.1 non-normative 'reasonable amount of time')."""
    if not is_petrel():
        pytest.skip("Petrel only: --connect-timeout has no Mosquitto equivalent")
    b = broker_factory(connect_timeout=2)
    start = time.monotonic()
    with raw.RawClient(b.host, b.port, raw.MQTT311) as c:
        c.expect_closed(8, allow=())
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed <= 6.0, f"closed after {elapsed:.1f}s"


def test_connect_timeout_partial_connect(broker_factory):
    """A CONNECT that never completes is closed after --connect-timeout."""
    if not is_petrel():
        pytest.skip("Petrel only: --connect-timeout has no Mosquitto equivalent")
    b = broker_factory(connect_timeout=2)
    with raw.RawClient(b.host, b.port, raw.MQTT311) as c:
        c.send(raw.connect(uid())[:5])
        c.expect_closed(8, allow=())


@pytest.mark.parametrize("version", [raw.MQTT311, raw.MQTT5], ids=["v311", "v5"])
def test_session_takeover(broker, version):
    """A second connection with the same client id disconnects the first [MQTT-3.1.4-2];
    MQTT 5 sends DISCONNECT 0x8E (Session taken over) first."""
    cid = uid("takeover")
    first = raw_client(broker, version, cid, clean=False,
                       properties={raw.SESSION_EXPIRY_INTERVAL: 60} if version == raw.MQTT5 else None)
    first.subscribe([("take/over/" + cid, 1)])
    second = raw.RawClient(broker.host, broker.port, version)
    try:
        ack = second.connect(cid, clean=False,
                             properties={raw.SESSION_EXPIRY_INTERVAL: 60} if version == raw.MQTT5 else None)
        assert ack.session_present is True, "session continues on takeover [MQTT-3.2.2-2]"
        # Mosquitto 2.0.11 closes without the DISCONNECT; Petrel must send it
        assert_closed_with(first, 0x8E)
        # subscription survived the takeover
        with raw_client(broker, version) as pub:
            pub.publish("take/over/" + cid, b"still here", qos=1)
        msg = second.receive()
        assert msg.payload == b"still here"
        second.disconnect()
    finally:
        first.close()
        second.close()


def test_session_takeover_paho(broker):
    """paho clients: the newer connection with the same id wins [MQTT-3.1.4-2]."""
    cid = uid("ptake")
    a = PahoClient(broker, client_id=cid, protocol="v5").connect()
    a.client.reconnect_delay_set(30, 60)  # do not fight back during the test
    b = PahoClient(broker, client_id=cid, protocol="v5").connect()
    try:
        assert a.disconnected.wait(5), "first connection not closed"
        if is_petrel():
            assert a.disconnect_reason is not None and a.disconnect_reason.value == 0x8E
    finally:
        a.client.loop_stop()
        b.disconnect()


def test_username_password_accepted(broker):
    """Username and password fields are parsed (anonymous broker accepts) [MQTT-3.1.3-11]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        ack = c.connect(uid(), username="user", password=b"secret")
        assert ack.reason == 0


def test_password_without_username_v311_closes(broker):
    """3.1.1: password flag without username flag is invalid [MQTT-3.1.2-22]."""
    with raw.RawClient(broker.host, broker.port, raw.MQTT311) as c:
        c.send(raw.connect(uid(), password=b"secret"))
        seen = c.expect_closed(5, allow=(raw.CONNACK,))
        for p in seen:
            assert p.reason != 0


def test_half_open_connection_does_not_block_others(broker):
    """A client that connects TCP and stays silent does not stop others being served."""
    s = socket.create_connection(broker.address, timeout=5)
    try:
        with raw_client(broker) as c:
            c.ping()
    finally:
        s.close()
