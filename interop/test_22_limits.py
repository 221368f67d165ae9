"""Limits and hostile clients: --max-keep-alive (as Mosquitto's max_keepalive),
connection limits in all and per address, a connection flood, slowloris and
half-open connections, publish rate, subscriptions per session, topic length,
the global budget for queued messages, a client that never reads, and a client
id takeover by another user."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

import mqtt_raw as raw
from conftest import HOST, build_broker, finish, is_petrel, petrel_binary
from helpers import raw_client, uid, wait_until
from paho_client import PahoClient

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's limits and their flags")


@pytest.fixture
def start(tmp_path):
    started = []

    def run(*flags: str):
        broker = build_broker(tmp_path / f"b{len(started)}", {}, extra_args=list(flags)).start()
        started.append(broker)
        return broker

    yield run
    for broker in started:
        finish(broker)


def paho_connack(port: int, protocol=mqtt.MQTTv5, keepalive=60, client_id=None):
    got = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uid("k"), protocol=protocol)
    client.on_connect = lambda c, u, flags, rc, props: got.update(rc=rc.value, props=props)
    client.connect(HOST, port, keepalive=keepalive)
    client.loop_start()
    try:
        assert wait_until(lambda: "rc" in got, 5)
        return got["rc"], got["props"]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("asked", [0, 120])
def test_max_keep_alive_mqtt5_gets_server_keep_alive(start, asked):
    broker = start("--max-keep-alive", "60")
    code, props = paho_connack(broker.port, keepalive=asked)
    assert code == 0 and props.ServerKeepAlive == 60  # [MQTT-3.1.2-21]
    code, props = paho_connack(broker.port, keepalive=30)
    assert code == 0 and not hasattr(props, "ServerKeepAlive")


def test_max_keep_alive_mqtt311_above_is_refused(start):
    broker = start("--max-keep-alive", "60")
    with raw.RawClient(HOST, broker.port, raw.MQTT311) as c:
        ack = c.connect(uid("k"), keepalive=120, expect_reason=None)
        assert ack.reason == 2  # Identifier rejected, as Mosquitto answers
    with raw.RawClient(HOST, broker.port, raw.MQTT311) as c:
        assert c.connect(uid("k"), keepalive=60).reason == 0
    # mosquitto_sub with a longer keep alive is refused too.
    done = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-k", "120", "-t", "x", "-C", "1",
                           "-W", "3"], capture_output=True, text=True, timeout=20)
    assert done.returncode != 0


def closed_at_once(port: int, source: str = "127.0.0.1") -> bool:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(2)
    s.connect((HOST, port))
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    finally:
        s.close()


def test_connection_limits_in_all_and_per_address(start):
    broker = start("--max-connections", "4", "--max-connections-per-address", "2", "--log-level", "debug")
    first = [client_when_admitted(broker) for _ in range(2)]
    assert closed_at_once(broker.port), "a third connection from 127.0.0.1 must be closed"
    # Another loopback address has its own count, within the total.
    other = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect((HOST, broker.port))
        s.sendall(raw.connect(uid("o")))
        assert s.recv(4)[0] >> 4 == raw.CONNACK
        other.append(s)
    assert closed_at_once(broker.port, "127.0.0.3"), "the fifth connection overall must be closed"
    first[0].close()
    assert wait_until(lambda: not closed_at_once_safe(broker.port), 5)
    for c in first[1:]:
        c.close()
    for s in other:
        s.close()
    assert broker.log_text().count("Connection refused: limit reached") >= 2


def client_when_admitted(broker, attempts: int = 50):
    """A connected raw client; retried while the start-up probe's connection may still hold a slot."""
    for _ in range(attempts):
        try:
            return raw_client(broker)
        except (AssertionError, OSError):
            time.sleep(0.1)
    raise AssertionError("no connection admitted")


def closed_at_once_safe(port: int) -> bool:
    try:
        return closed_at_once(port)
    except OSError:
        return True


def test_connection_flood_is_refused_and_logged_once_per_burst(start):
    broker = start("--max-connections", "20")
    sockets = []
    for _ in range(200):
        s = socket.create_connection((HOST, broker.port), timeout=5)
        sockets.append(s)
    time.sleep(0.5)
    # A real client still gets in once the flood is gone.
    for s in sockets:
        s.close()
    assert wait_until(lambda: raw_client_ok(broker), 10)
    warnings = [line for line in broker.log_text().splitlines() if "Connection refused: limit reached" in line]
    assert 1 <= len(warnings) <= 3, warnings


def raw_client_ok(broker) -> bool:
    try:
        with raw_client(broker):
            return True
    except Exception:
        return False


def test_slowloris_and_half_open_are_closed_at_the_connect_timeout(start):
    broker = start("--connect-timeout", "2")
    started = time.monotonic()
    half_open = socket.create_connection((HOST, broker.port), timeout=10)
    slow = socket.create_connection((HOST, broker.port), timeout=10)
    connect = raw.connect(uid("slow"))

    def dribble():
        for byte in connect[:-1]:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.7)

    threading.Thread(target=dribble, daemon=True).start()
    assert half_open.recv(1) == b""
    try:
        assert slow.recv(1) == b""
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - started
    # Closed by the connect timeout (2 s, checked every 250 ms, plus the 2 s the broker keeps reading), not kept
    # alive by the bytes that keep arriving.
    assert 1.5 <= elapsed <= 6, elapsed
    half_open.close()
    slow.close()
    assert raw_client_ok(broker)


def test_publish_rate_above_the_maximum_disconnects_with_0x96(start):
    broker = start("--max-publish-rate", "50")
    with raw.RawClient(HOST, broker.port, raw.MQTT5) as c:
        c.connect(uid("rate"))
        for n in range(200):
            try:
                c.send(raw.publish("flood/t", b"x", version=raw.MQTT5))
            except OSError:
                break
        seen = c.expect_closed(5)
        assert any(p.type == raw.DISCONNECT and p.reason == 0x96 for p in seen), seen
    # A client within the rate is fine.
    with PahoClient(broker, protocol="v5").connect() as ok:
        for n in range(20):
            ok.publish("calm/t", b"x", qos=1)


def test_subscriptions_per_session_are_bounded(start):
    broker = start("--max-subscriptions", "3")
    with PahoClient(broker, protocol="v5").connect() as c:
        result, mid = c.client.subscribe([("a", 0), ("b", 0), ("c", 0), ("d", 0), ("a", 1)])
        c._wait_mid(mid, 5)
        assert [rc.value for rc in c.subacks[mid]] == [0, 0, 0, 0x97, 1]


def test_subscribe_flood_of_thousands_of_filters(start):
    broker = start("--max-subscriptions", "1000")
    with raw.RawClient(HOST, broker.port, raw.MQTT311) as c:
        c.connect(uid("flood"))
        for packet_id in range(1, 21):
            filters = [(f"flood/{packet_id}/{n}", 0) for n in range(250)]
            c.send(raw.subscribe(packet_id, filters))
        granted = refused = 0
        for _ in range(20):
            ack = c.expect(raw.SUBACK, timeout=10)
            granted += sum(1 for code in ack.reasons if code < 0x80)
            refused += sum(1 for code in ack.reasons if code >= 0x80)
        assert (granted, refused) == (1000, 4000)
    assert raw_client_ok(broker)


def test_topic_longer_than_the_maximum_is_refused(start):
    broker = start("--max-topic-length", "64")
    acks = {}
    c = PahoClient(broker, protocol="v5")
    c.client.on_publish = lambda client, userdata, mid, rc, props: acks.update({mid: rc.value})
    with c.connect():
        info = c.client.publish("t/" + "x" * 80, b"x", qos=1)
        assert wait_until(lambda: info.mid in acks, 5)
        assert acks[info.mid] == 0x97
        result, mid = c.client.subscribe([("s/" + "y" * 80, 0)])
        c._wait_mid(mid, 5)
        assert [rc.value for rc in c.subacks[mid]] == [0x97]


def test_queued_memory_budget_drops_and_says_so(start):
    broker = start("--max-queued-memory", "200000")
    offline = []
    for n in range(4):
        p = PahoClient(broker, client_id=f"offline-{n}", protocol="v311", clean=False).connect()
        p.subscribe("budget/#", qos=1)
        p.disconnect()
        offline.append(p)
    with PahoClient(broker, protocol="v311").connect() as publisher:
        for n in range(100):
            publisher.publish("budget/t", b"x" * 2000, qos=1)
    assert wait_until(lambda: "Queued-message memory budget full" in broker.log_text(), 5), broker.log_tail()
    assert broker.log_text().count("Queued-message memory budget full") == 1
    # Each session got some of the messages, and nobody was disconnected for it.
    back = PahoClient(broker, client_id="offline-0", protocol="v311", clean=False).connect()
    try:
        got = 0
        while True:
            try:
                back.get(timeout=1)
                got += 1
            except AssertionError:
                break
        assert 0 < got < 100
    finally:
        back.disconnect()


def test_a_client_that_never_reads_does_not_slow_the_others(start):
    broker = start("--max-queued-messages", "1000")
    stuck = socket.create_connection((HOST, broker.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(raw.connect(uid("stuck")))
    stuck.sendall(raw.subscribe(1, [("shared/load", 0)]))
    time.sleep(0.3)
    rss_before = broker.rss_kib()
    with PahoClient(broker, protocol="v311").connect() as loader, \
            PahoClient(broker, protocol="v311").connect() as echo:
        echo.subscribe("ping/#", qos=1)
        worst = 0.0
        for n in range(2000):
            loader.publish("shared/load", b"x" * 1000, qos=0)
            if n % 200 == 0:
                sent = time.monotonic()
                loader.publish(f"ping/{n}", b"p", qos=1)
                echo.get(timeout=5)
                worst = max(worst, time.monotonic() - sent)
        # Generous: a blocked client must not stall the others; a stalled broker takes seconds.
        assert worst < 1.0, worst
    # Its queue and write buffer are bounded: the broker does not keep the 2 MB published at it.
    assert broker.rss_kib() - rss_before < 20_000
    stuck.close()


def test_client_id_takeover_by_another_user_is_refused(start, tmp_path):
    passwords = tmp_path / "passwords"
    for user in ("alice", "mallory"):
        subprocess.run([str(petrel_binary()), "passwd", str(passwords), user, "--password", user + "-pw",
                        "--iterations", "64"], check=True, timeout=30)
    broker = start("--password-file", str(passwords))
    alice = PahoClient(broker, client_id="device-1", protocol="v5")
    alice.client.username_pw_set("alice", "alice-pw")
    with alice.connect():
        alice.subscribe("alice/#", qos=1)
        with raw.RawClient(HOST, broker.port, raw.MQTT5) as mallory:
            ack = mallory.connect("device-1", username="mallory", password=b"mallory-pw", expect_reason=None)
            assert ack.reason == 0x87
        # alice was not disconnected and still gets her messages.
        assert not alice.disconnected.wait(0.5)
        with raw.RawClient(HOST, broker.port, raw.MQTT5) as sender:
            sender.connect(uid("s"), username="mallory", password=b"mallory-pw")
            sender.publish("alice/x", b"still here", qos=1, packet_id=1)
        assert alice.get().payload == b"still here"
