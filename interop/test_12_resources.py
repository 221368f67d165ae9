"""Resource bounds: slow consumers, queue limits, many connections."""

import socket
import threading
import time

import pytest

import mqtt_raw as raw
from conftest import is_petrel
from helpers import raw_client, topic, uid


def test_slow_subscriber_does_not_grow_rss(broker_factory):
    """A subscriber that stops reading its socket while a publisher floods it
    must not make the broker's memory grow without bound (queue limits,
    section 4.1 / --max-queued-bytes)."""
    if not is_petrel():
        pytest.skip("Petrel only: measures the Petrel process RSS")
    b = broker_factory(max_queued_messages=100, max_queued_bytes=1_000_000, max_inflight=10)
    t = topic("flood")
    # the stalled subscriber: small receive buffer and never reads
    stalled = raw.RawClient(b.host, b.port, raw.MQTT311)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(uid("stall"))
    stalled.subscribe([(t, 1), (t + "/0", 0)])
    payload = b"p" * 4096
    with raw_client(b) as pub:
        # warm up, then take the baseline
        for i in range(200):
            pub.send(raw.publish(t + "/0", payload))
        pub.ping(timeout=10)
        time.sleep(0.5)
        baseline = b.rss_kib()
        sent = 0
        blocked = False
        deadline = time.monotonic() + 15
        chunk = raw.publish(t, payload, qos=0) + raw.publish(t + "/0", payload)
        while sent < 40_000 and time.monotonic() < deadline:
            try:
                pub.send(chunk)
            except (socket.timeout, TimeoutError):
                blocked = True  # the broker pushes back on the publisher: acceptable
                break
            sent += 2
            if sent % 2000 == 0:
                pub.ping(timeout=10)
        if not blocked:
            pub.ping(timeout=10)
        time.sleep(0.5)
        after = b.rss_kib()
    stalled.close()
    flooded_mib = sent * len(payload) / 1024 / 1024
    grown_mib = (after - baseline) / 1024
    assert grown_mib < 64, (f"RSS grew by {grown_mib:.1f} MiB after {flooded_mib:.0f} MiB "
                            f"for a stalled subscriber (baseline {baseline} KiB)")
    # still healthy
    with raw_client(b) as s2, raw_client(b) as p2:
        s2.subscribe([("after/flood", 1)])
        p2.publish("after/flood", b"ok", qos=1)
        assert s2.receive(timeout=10).payload == b"ok"


def test_offline_queue_bounded(broker_factory):
    """--max-queued-messages 10: of 100 QoS 1 messages for an offline
    persistent session at most 10 are delivered on reconnect (section 4.1)."""
    b = broker_factory(max_queued_messages=10)
    cid, t = uid("qb"), topic("qb")
    c = raw_client(b, raw.MQTT311, cid, clean=False)
    c.subscribe([(t, 1)])
    c.disconnect()
    with raw_client(b) as pub:
        for i in range(100):
            pub.publish(t, b"%d" % i, qos=1, packet_id=(i % 60000) + 1)
    c = raw.RawClient(b.host, b.port, raw.MQTT311)
    try:
        assert c.connect(cid, clean=False).session_present
        got = []
        try:
            while True:
                got.append(int(c.receive(timeout=1.0).payload))
        except AssertionError:
            pass
        assert 1 <= len(got) <= 10, f"{len(got)} messages delivered"
        assert got == sorted(got)
    finally:
        c.disconnect()


def test_many_concurrent_clients(broker):
    """200 concurrent connections each subscribe and receive a broadcast."""
    t = topic("many")
    clients = []
    try:
        for i in range(200):
            c = raw.RawClient(broker.host, broker.port, raw.MQTT311, timeout=10)
            c.connect(uid("m"))
            c.subscribe([(t, 0)])
            clients.append(c)
        with raw_client(broker) as pub:
            pub.publish(t, b"all", qos=1)
        for c in clients:
            assert c.receive(timeout=10).payload == b"all"
    finally:
        for c in clients:
            c.close()


def test_publisher_flood_with_concurrent_subscriber(broker):
    """800 QoS 1 messages sent back to back by one publisher are all forwarded
    to a reading subscriber, in order [MQTT-4.6.0-6]; PUBACKs come back in
    order [MQTT-4.6.0-2]."""
    t = topic("fl")
    n = 800
    with raw_client(broker, timeout=20) as sub, raw_client(broker) as pub:
        sub.subscribe([(t, 1)])
        got = []
        errors = []

        def reader():
            try:
                while len(got) < n:
                    got.append(int(sub.receive(timeout=20).payload))
            except Exception as e:  # reported below
                errors.append(e)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        batch = b"".join(raw.publish(t, b"%d" % i, qos=1, packet_id=i + 1) for i in range(n))
        pub.send(batch)
        acks = [pub.expect(raw.PUBACK, timeout=20).packet_id for _ in range(n)]
        assert acks == list(range(1, n + 1))
        th.join(30)
        assert not th.is_alive(), "reader did not finish"
        assert not errors, errors
        assert got == list(range(n))
