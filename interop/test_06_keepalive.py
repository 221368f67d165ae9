"""Keep alive (MQTT 3.1.1 section 3.1.2.10, MQTT 5.0 sections 3.1.2.10, 3.2.2.3.14)."""

import time

import pytest

import mqtt_raw as raw
from conftest import is_mosquitto, is_petrel
from helpers import keepalive_limit, raw_client, uid

VERSIONS = [pytest.param(raw.MQTT311, id="v311"), pytest.param(raw.MQTT5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_pingreq_pingresp(broker, version):
    """The server answers PINGREQ with PINGRESP [MQTT-3.12.4-1]."""
    with raw_client(broker, version) as c:
        for _ in range(3):
            p = c.ping()
            assert p.flags == 0 and p.body == b""


@pytest.mark.parametrize("version", VERSIONS)
def test_silent_client_disconnected(broker, version):
    """A client silent for 1.5 x keep alive is disconnected [MQTT-3.1.2-24]
    (5.0: [MQTT-3.1.2-22]); MQTT 5 may first get DISCONNECT 0x8D."""
    with raw_client(broker, version, keepalive=1) as c:
        start = time.monotonic()
        seen = c.expect_closed(keepalive_limit(1) + 1)
        elapsed = time.monotonic() - start
        assert elapsed >= 1.0, f"disconnected too early ({elapsed:.2f}s)"
        assert elapsed <= keepalive_limit(1), f"disconnected after {elapsed:.2f}s"
        for p in seen:
            assert p.reason == 0x8D
        if is_petrel() and version == raw.MQTT5:
            assert [p.reason for p in seen] == [0x8D], "Keep Alive timeout reason"


@pytest.mark.parametrize("version", VERSIONS)
def test_pings_keep_connection_alive(broker, version):
    """Regular control packets within the keep alive keep the connection open
    [MQTT-3.1.2-23]."""
    with raw_client(broker, version, keepalive=1) as c:
        for _ in range(6):
            time.sleep(0.5)
            c.ping()


def test_keepalive_zero_disables(broker):
    """Keep alive 0 turns the mechanism off [MQTT-3.1.2-10] (section 3.1.2.10)."""
    with raw_client(broker, keepalive=0) as c:
        time.sleep(2.5)
        c.ping()


def test_publish_counts_as_activity(broker):
    """Any control packet (not only PINGREQ) resets the keep-alive timer [MQTT-3.1.2-23]."""
    with raw_client(broker, keepalive=1) as c:
        for i in range(6):
            time.sleep(0.5)
            c.publish(f"ka/{uid()}", b"%d" % i, qos=1)


def test_server_keep_alive_in_connack(broker_factory):
    """MQTT 5: --server-keep-alive is returned as Server Keep Alive and the
    client must use it [MQTT-3.2.2-21] [MQTT-3.1.2-21]."""
    if not is_petrel():
        pytest.skip("Petrel only: --server-keep-alive")
    b = broker_factory(server_keep_alive=1)
    with raw.RawClient(b.host, b.port, raw.MQTT5) as c:
        ack = c.connect(uid(), keepalive=60)
        assert ack.prop(raw.SERVER_KEEP_ALIVE) == 1
        start = time.monotonic()
        seen = c.expect_closed(keepalive_limit(1) + 1)
        assert time.monotonic() - start <= keepalive_limit(1)
        assert [p.reason for p in seen] == [0x8D]


def test_server_keep_alive_ignored_for_v311(broker_factory):
    """3.1.1 has no Server Keep Alive: the CONNACK stays two bytes [MQTT-3.2.2-1]."""
    if not is_petrel():
        pytest.skip("Petrel only: --server-keep-alive")
    b = broker_factory(server_keep_alive=5)
    with raw.RawClient(b.host, b.port, raw.MQTT311) as c:
        ack = c.connect(uid(), keepalive=60)
        assert len(ack.body) == 2
