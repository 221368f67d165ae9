"""Durable state on SQLite: nothing acknowledged is lost across kill -9 or a graceful restart; bad database files
are refused at start; the `petrel storage` commands.

Petrel only. Every test is bounded in time (a few seconds to ~20 s)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from durability_support import Petrel, RawClient, StreamingPublisher, free_port, petrel_binary, run_petrel

pytestmark = pytest.mark.skipif(os.environ.get("INTEROP_BROKER", "petrel").strip().lower() != "petrel",
                                reason="Petrel only: durable storage and its command line")

SUBSCRIBERS = [
    # client id, subscription QoS, online while the publisher streams
    ("on-q1", 1, True),
    ("on-q2", 2, True),
    ("off-q1", 1, False),
    ("off-q2", 2, False),
]


def _received(client: RawClient) -> Counter:
    return Counter(int(d.payload) for d in client.deliveries if d.topic.startswith("d/"))


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("durability,kills", [("batched", 1), ("sync", 1), ("batched", 2)])
def test_kill9_mid_stream_loses_no_acknowledged_message(tmp_path: Path, durability: str, kills: int):
    """SIGKILL while a publisher streams QoS 1 and 2 to persistent subscribers (online and offline): after a
    restart on the same data directory every acknowledged message reaches every subscriber; QoS 2 exactly once,
    QoS 1 at least once with every re-delivery marked DUP. One case kills the broker a second time while the
    subscribers are catching up after the first restart."""
    data = tmp_path / "data"
    port = free_port()
    # The per-session queue bound is the engine's (newest dropped when full) and is not what is tested here.
    options = ["--durability", durability, "--max-queued-messages", "1000000", "--max-queued-bytes", "1000000000"]
    broker = Petrel(data, port, options).start()
    subscribers = {}
    try:
        for client_id, qos, online in SUBSCRIBERS:
            client = RawClient(client_id).connect(port, clean=False)
            client.subscribe("d/#", qos)
            if not online:
                client.disconnect()
            subscribers[client_id] = client

        publisher = StreamingPublisher(port, count=200_000).start()
        assert _wait_for(lambda: publisher.acked_count() >= 2000, 30), "publisher made no progress"
        broker.kill()
        publisher.client.closed.wait(5)
        publisher.thread.join(timeout=5)
        acked = set(publisher.acked)
        assert len(acked) >= 2000

        for kill in range(kills):
            broker = Petrel(data, port, options).start()
            for client_id, _, _ in SUBSCRIBERS:
                client = subscribers[client_id]
                client.close()
                client.connect(port, clean=False)
                assert client.session_present, f"{client_id}: session lost"
            if kill < kills - 1:
                # Killed again while the subscribers catch up: the flows resume from wherever they were.
                time.sleep(0.3)
                broker.kill()

        def complete() -> bool:
            return all(acked <= set(_received(c)) for c in subscribers.values())

        _wait_for(complete, 30)
        for client_id, qos, _ in SUBSCRIBERS:
            client = subscribers[client_id]
            counts = _received(client)
            missing = sorted(acked - set(counts))
            assert not missing, f"{client_id}: {len(missing)} acknowledged messages lost, e.g. {missing[:10]}"
            for seq, n in counts.items():
                published_qos = 1 + seq % 2
                if min(qos, published_qos) == 2:
                    assert n == 1, f"{client_id}: QoS 2 message {seq} delivered {n} times"
            # Every repeated delivery of a QoS 1 message is marked DUP.
            seen = set()
            for d in client.deliveries:
                if not d.topic.startswith("d/"):
                    continue
                seq = int(d.payload)
                if seq in seen:
                    assert d.dup, f"{client_id}: message {seq} delivered again without DUP"
                seen.add(seq)
    finally:
        for client in subscribers.values():
            client.close()
        broker.kill()


def test_graceful_restart_keeps_sessions_queues_and_retained(tmp_path: Path):
    """SIGTERM then restart: queued QoS 1/2 messages of an offline session are delivered once, in order, and
    retained messages and subscriptions are back."""
    data = tmp_path / "data"
    port = free_port()
    broker = Petrel(data, port).start()
    try:
        sub = RawClient("grace-sub").connect(port, clean=False)
        sub.subscribe("q/#", 2)
        sub.disconnect()
        acked = []
        pub = RawClient("grace-pub", on_ack=lambda kind, pid: acked.append((kind, pid))).connect(port, clean=True)
        for i in range(1, 201):
            pub.publish("q/x", str(i).encode(), 1 + i % 2, i)
        pub.publish("keep/1", b"retained-one", 1, 500, retain=True)
        assert _wait_for(lambda: sum(1 for k, _ in acked if k in (4, 5)) == 201, 10)
        pub.disconnect()
        assert broker.stop() == 0
        assert "Stopped" in broker.log_text()

        broker = Petrel(data, port).start()
        sub.connect(port, clean=False)
        assert sub.session_present
        assert _wait_for(lambda: len(sub.deliveries) >= 200, 10)
        time.sleep(0.3)
        assert [int(d.payload) for d in sub.deliveries] == list(range(1, 201))
        assert not any(d.dup for d in sub.deliveries)
        late = RawClient("grace-late").connect(port, clean=True)
        late.subscribe("keep/#", 1)
        assert _wait_for(lambda: len(late.deliveries) == 1, 5)
        assert late.deliveries[0].payload == b"retained-one" and late.deliveries[0].retain
        late.disconnect()
        sub.disconnect()
    finally:
        broker.kill()


def test_memory_storage_keeps_nothing(tmp_path: Path):
    """--storage memory writes no database and starts empty."""
    data = tmp_path / "data"
    port = free_port()
    broker = Petrel(data, port, ["--storage", "memory"]).start()
    try:
        pub = RawClient("m-pub").connect(port, clean=True)
        pub.publish("keep/m", b"x", 0, retain=True)
        time.sleep(0.2)
        pub.disconnect()
    finally:
        broker.stop()
    assert not (data / "petrel.sqlite").exists()


# MARK: - Bad files

def _start_fails(data: Path) -> subprocess.CompletedProcess:
    res = run_petrel("serve", "--port", str(free_port()), "--data-dir", str(data), timeout=20)
    assert res.returncode != 0
    return res


def test_garbage_database_refused(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "petrel.sqlite").write_bytes(os.urandom(16384))
    res = _start_fails(data)
    assert b"corrupt" in res.stderr or b"not a Petrel database" in res.stderr, res.stderr


def test_truncated_database_refused(tmp_path: Path):
    data = tmp_path / "data"
    port = free_port()
    broker = Petrel(data, port).start()
    try:
        pub = RawClient("t-pub").connect(port, clean=True)
        for i in range(3000):
            pub.publish(f"keep/{i}", b"x" * 300, 0, retain=True)
        time.sleep(0.5)
        pub.disconnect()
    finally:
        assert broker.stop() == 0
    db = data / "petrel.sqlite"
    size = db.stat().st_size
    assert size > 100_000
    with open(db, "r+b") as f:
        f.truncate(size // 3)
    res = _start_fails(data)
    assert b"Cannot start" in res.stderr, res.stderr


def test_read_only_data_directory_refused(tmp_path: Path):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("needs setpriv to drop root")
    data = tmp_path / "ro"
    data.mkdir()
    os.chmod(data, 0o555)
    os.chmod(tmp_path, 0o755)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    res = subprocess.run([*prefix, str(petrel_binary()), "serve", "--port", str(free_port()), "--data-dir", str(data)],
                         capture_output=True, timeout=20)
    assert res.returncode != 0
    assert b"writable" in res.stderr or b"cannot" in res.stderr.lower(), res.stderr


def test_newer_schema_refused(tmp_path: Path):
    data = tmp_path / "data"
    port = free_port()
    Petrel(data, port).start().stop()
    with sqlite3.connect(data / "petrel.sqlite") as db:
        db.execute("INSERT INTO grdb_migrations (identifier) VALUES ('v999')")
    res = _start_fails(data)
    assert b"newer version of Petrel" in res.stderr, res.stderr


# MARK: - petrel storage

def _fill(data: Path) -> None:
    port = free_port()
    broker = Petrel(data, port).start()
    try:
        sub = RawClient("cli-sub").connect(port, clean=False)
        sub.subscribe("c/#", 1)
        sub.disconnect()
        pub = RawClient("cli-pub").connect(port, clean=True)
        for i in range(1, 51):
            pub.publish("c/x", f"m{i}".encode(), 1, i)
        pub.publish("keep/c", b"kept", 1, 99, retain=True)
        time.sleep(0.5)
        pub.disconnect()
    finally:
        assert broker.stop() == 0


def _stats(data: Path) -> dict:
    res = run_petrel("storage", "stats", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    return dict(line.split(" ", 1) for line in res.stdout.decode().splitlines())


def test_storage_stats(tmp_path: Path):
    data = tmp_path / "data"
    _fill(data)
    stats = _stats(data)
    assert stats["session"] == "1" and stats["subscription"] == "1"
    assert stats["delivery"] == "50" and stats["message"] == "50"
    assert stats["retained"] == "1"
    assert int(stats["file_bytes"]) > 0
    missing = run_petrel("storage", "stats", "--data-dir", str(tmp_path / "none"))
    assert missing.returncode != 0 and b"no Petrel database" in missing.stderr


def test_storage_compact(tmp_path: Path):
    data = tmp_path / "data"
    _fill(data)
    res = run_petrel("storage", "compact", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    assert b"compacted" in res.stdout
    assert _stats(data)["delivery"] == "50"


def test_storage_export_import_round_trip(tmp_path: Path):
    data = tmp_path / "data"
    _fill(data)
    export = tmp_path / "dump.jsonl"
    res = run_petrel("storage", "export", "--data-dir", str(data), "--output", str(export))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert lines[0]["petrel_export"] == 1
    assert Counter(line["table"] for line in lines[1:])["delivery"] == 50

    copy = tmp_path / "copy"
    res = run_petrel("storage", "import", "--data-dir", str(copy), "--input", str(export))
    assert res.returncode == 0, res.stderr
    assert _stats(copy)["delivery"] == "50"
    # Importing again into a database that is not empty is refused.
    again = run_petrel("storage", "import", "--data-dir", str(copy), "--input", str(export))
    assert again.returncode != 0 and b"not empty" in again.stderr

    # The imported copy serves the queued messages and the retained one.
    port = free_port()
    broker = Petrel(copy, port).start()
    try:
        sub = RawClient("cli-sub").connect(port, clean=False)
        assert sub.session_present
        assert _wait_for(lambda: len(sub.deliveries) >= 50, 10)
        assert [d.payload for d in sub.deliveries[:50]] == [f"m{i}".encode() for i in range(1, 51)]
        sub.disconnect()
    finally:
        broker.stop()


# MARK: - Bounds (MQTT 5 answers 0x97, 3.1.1 is disconnected unacknowledged)

def _paho_v5(port: int, client_id: str):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    acks = {}
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.on_publish = lambda c, u, mid, rc, props: acks.__setitem__(mid, rc.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, acks


def test_retained_bound_answers_quota_exceeded(tmp_path: Path):
    port = free_port()
    broker = Petrel(tmp_path / "data", port, ["--max-retained-messages", "2"]).start()
    client, acks = _paho_v5(port, "quota-v5")
    try:
        mids = [client.publish(f"keep/{i}", b"x", qos=1, retain=True).mid for i in range(3)]
        replace = client.publish("keep/0", b"y", qos=1, retain=True).mid
        assert _wait_for(lambda: len(acks) == 4, 5), acks
        # 0x10 (No matching subscribers) is a success too.
        assert [acks[m] for m in mids] == [0x10, 0x10, 0x97]
        assert acks[replace] == 0x10
        assert "Message refused by the store" in broker.log_text()
        # 3.1.1: no negative acknowledgement, the connection is closed and nothing is acknowledged.
        old = RawClient("quota-311", on_ack=lambda kind, pid: acks.__setitem__(("311", pid), kind))
        old.connect(port, clean=True)
        old.publish("keep/new", b"z", 1, 7, retain=True)
        assert old.closed.wait(5)
        assert ("311", 7) not in acks
    finally:
        client.loop_stop()
        client.disconnect()
        broker.stop()


def test_database_size_bound_answers_quota_exceeded(tmp_path: Path):
    port = free_port()
    broker = Petrel(tmp_path / "data", port, ["--max-database-size", "300000"]).start()
    client, acks = _paho_v5(port, "size-v5")
    try:
        sub = RawClient("size-sub").connect(port, clean=False)
        sub.subscribe("fill/#", 1)
        sub.disconnect()
        refused = False
        for i in range(400):
            mid = client.publish("fill/x", b"f" * 4000, qos=1).mid
            assert _wait_for(lambda: mid in acks, 5)
            if acks[mid] == 0x97:
                refused = True
                break
            assert acks[mid] < 0x80
        assert refused, "the database size bound was never reached"
        # Draining the queue frees pages: messages are accepted again.
        sub.connect(port, clean=False)
        assert _wait_for(lambda: len(sub.deliveries) >= i - 1, 10)
        sub.disconnect()
        time.sleep(0.2)
        mid = client.publish("fill/x", b"again", qos=1).mid
        assert _wait_for(lambda: mid in acks, 5)
        assert acks[mid] < 0x80, "still refused after the queue drained"
    finally:
        client.loop_stop()
        client.disconnect()
        broker.stop()


def test_full_disk_refuses_cleanly(tmp_path: Path):
    """A data directory on a full file system: QoS 1 messages stop being acknowledged (connection closed, 3.1.1),
    the error is logged, the broker keeps running and answers the next clients."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    port = free_port()
    broker = Petrel(mount_point / "data", port, log=tmp_path / "full.log")
    try:
        broker.start()
        sub = RawClient("full-sub").connect(port, clean=False)
        sub.subscribe("full/#", 1)
        sub.disconnect()
        acked = set()
        refused = False
        pub = None
        for i in range(1, 200):
            if pub is None or pub.closed.is_set():
                pub = RawClient("full-pub", on_ack=lambda kind, pid: acked.add(pid)).connect(port, clean=True)
            pub.publish("full/x", b"z" * 16000, 1, i)
            _wait_for(lambda: i in acked or pub.closed.is_set(), 5)
            if i not in acked:
                refused = True
                break
        assert refused, "the full disk was never noticed"
        assert broker.proc.poll() is None, "the broker died"
        assert _wait_for(lambda: "storage commit failed" in broker.log_text(), 5), broker.log_text()
        # Still serving: a new client connects and gets a PINGRESP-free round trip through SUBSCRIBE.
        probe = RawClient("full-probe").connect(port, clean=True)
        probe.subscribe("probe", 0)
        probe.disconnect()
    finally:
        broker.kill()
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_mqtt5_properties_and_expiry_survive_restart(tmp_path: Path):
    """A retained MQTT 5 message keeps its properties and its Message Expiry Interval keeps running across a
    restart; a queued message for an MQTT 5 session with an expiry interval is delivered after it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    data = tmp_path / "data"
    port = free_port()
    broker = Petrel(data, port).start()
    try:
        pub, acks = _paho_v5(port, "v5-pub")
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "text/plain"
        props.UserProperty = [("k", "v")]
        props.MessageExpiryInterval = 120
        info = pub.publish("keep/v5", b"with-props", qos=1, retain=True, properties=props)
        assert _wait_for(lambda: info.mid in acks, 5)
        short = Properties(PacketTypes.PUBLISH)
        short.MessageExpiryInterval = 1
        info = pub.publish("keep/short", b"expires", qos=1, retain=True, properties=short)
        assert _wait_for(lambda: info.mid in acks, 5)
        pub.loop_stop()
        pub.disconnect()
        assert broker.stop() == 0
        time.sleep(1.5)  # the short message expires while the broker is down

        broker = Petrel(data, port).start()
        got = []
        sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="v5-sub", protocol=mqtt.MQTTv5)
        sub.on_message = lambda c, u, m: got.append(m)
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        sub.subscribe("keep/#", qos=1)
        assert _wait_for(lambda: len(got) >= 1, 5)
        time.sleep(0.3)
        assert [m.topic for m in got] == ["keep/v5"]
        message = got[0]
        assert message.payload == b"with-props" and message.retain
        assert message.properties.ContentType == "text/plain"
        assert message.properties.UserProperty == [("k", "v")]
        assert 100 <= message.properties.MessageExpiryInterval <= 120
        sub.loop_stop()
        sub.disconnect()
    finally:
        broker.kill()


def test_session_expiry_runs_while_the_broker_is_down(tmp_path: Path):
    """paho MQTT 5 sessions: one with a 2 s Session Expiry Interval is gone after a restart that took longer, one
    with 300 s is resumed with its queued message [MQTT-3.1.2-23] [MQTT-3.2.2-2]."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    def connect(port: int, client_id: str, expiry: int, clean_start: bool):
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        flags = {}
        got = []
        client.on_connect = lambda c, u, f, rc, p: flags.update(present=f.session_present, reason=rc)
        client.on_message = lambda c, u, m: got.append(m)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
        client.loop_start()
        assert _wait_for(lambda: "present" in flags, 5), f"{client_id}: no CONNACK"
        return client, flags, got

    data = tmp_path / "data"
    port = free_port()
    broker = Petrel(data, port).start()
    try:
        for client_id, expiry in [("short", 2), ("long", 300)]:
            client, _, _ = connect(port, client_id, expiry, clean_start=True)
            subscribed = []
            client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.append(mid)
            client.subscribe("expiry/#", qos=1)
            assert _wait_for(lambda: subscribed, 5)
            client.disconnect()
            client.loop_stop()
        pub, acks = _paho_v5(port, "expiry-pub")
        info = pub.publish("expiry/queued", b"kept", qos=1)
        assert _wait_for(lambda: info.mid in acks, 5)
        pub.loop_stop()
        pub.disconnect()
        assert broker.stop() == 0
        time.sleep(2.2)  # with the time before the stop, longer than the short session's expiry interval

        broker = Petrel(data, port).start()
        short, short_flags, _ = connect(port, "short", 60, clean_start=False)
        assert short_flags["present"] is False, "the short session outlived its expiry interval"
        short.disconnect()
        short.loop_stop()
        long, long_flags, got = connect(port, "long", 300, clean_start=False)
        assert long_flags["present"] is True
        assert _wait_for(lambda: got, 5), "the queued message did not arrive"
        assert got[0].topic == "expiry/queued" and got[0].payload == b"kept"
        long.disconnect()
        long.loop_stop()
    finally:
        broker.kill()
