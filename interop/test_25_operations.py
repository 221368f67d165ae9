"""Operating Petrel: the HTTP listener (--http), where curl reads /health and
/ready and prometheus-client's own text-format parser reads /metrics, whose
counters move as mosquitto_pub publishes and mosquitto_sub receives; and the
$SYS/broker/... topics as mosquitto_sub sees them, through the ACL."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import HOST, build_broker, finish, free_port, is_petrel, petrel_binary
from helpers import curl, uid, wait_until

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's --http listener")


@pytest.fixture
def broker(tmp_path):
    http_port = free_port()
    # No $SYS topics here: they are retained messages, and the counts below are exact.
    b = build_broker(tmp_path, {}, extra_args=["--http", f"{HOST}:{http_port}", "--sys-interval", "0"]).start()
    b.http_port = http_port
    assert wait_until(lambda: curl(http_port, "/health")[0] == 200, 10), b.log_tail()
    yield b
    finish(b)


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus-client: (name, sorted labels) -> value."""
    status, text = curl(port, "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_health_and_ready(broker):
    assert curl(broker.http_port, "/health") == (200, "ok")
    assert curl(broker.http_port, "/ready") == (200, "ready")
    assert curl(broker.http_port, "/no-such-page")[0] == 404


def test_metrics_parse_and_move_with_real_clients(broker):
    before = samples(broker.http_port)
    assert before[("petrel_messages_received_total", (("qos", "1"),))] == 0
    assert [v for (name, _), v in before.items() if name == "petrel_build_info"] == [1]
    topic = f"ops/{uid()}"
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-V", "mqttv5", "-q", "1", "-t", topic, "-C", "5"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: samples(broker.http_port)[("petrel_subscriptions", ())] == 1, 5)
        after_sub = samples(broker.http_port)
        assert after_sub[("petrel_connections", (("listener", "mqtt"), ("protocol", "5")))] == 1
        assert after_sub[("petrel_sessions", (("state", "online"),))] == 1
        for n in range(5):
            # The last one is retained: the store commits it.
            retain = ["-r"] if n == 4 else []
            subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-q", "1", "-t", topic,
                            "-m", f"message-{n}", *retain], check=True, timeout=10)
        out, _ = sub.communicate(timeout=10)
        assert out.split() == [f"message-{n}" for n in range(5)]
    finally:
        sub.kill()
    after = samples(broker.http_port)
    assert after[("petrel_messages_received_total", (("qos", "1"),))] == 5
    assert after[("petrel_messages_received_bytes_total", (("qos", "1"),))] == 5 * len("message-0")
    assert after[("petrel_messages_sent_total", (("qos", "1"),))] == 5
    assert after[("petrel_connections_accepted_total", ())] == 6
    assert after[("petrel_retained_messages", ())] == 1
    assert after[("petrel_retained_bytes", ())] == len("message-4")
    assert after[("petrel_network_received_bytes_total", ())] > before[("petrel_network_received_bytes_total", ())]
    # prometheus-client reads the storage commit histogram as one: buckets, a count and a sum.
    assert after[("petrel_storage_commit_seconds_count", ())] >= 1
    assert after[("petrel_storage_commit_seconds_bucket", (("le", "+Inf"),))] \
        == after[("petrel_storage_commit_seconds_count", ())]
    # Each event loop measures its lag four times a second.
    assert wait_until(lambda: samples(broker.http_port)[("petrel_event_loop_lag_seconds_count", ())] >= 1, 5)


def test_failed_logins_are_counted(tmp_path):
    password_file = tmp_path / "passwords"
    password_file.write_text("")
    http_port = free_port()
    b = build_broker(tmp_path / "b", {}, extra_args=[
        "--http", f"{HOST}:{http_port}", "--password-file", str(password_file), "--max-login-delay", "0",
    ]).start()
    try:
        assert wait_until(lambda: curl(http_port, "/health")[0] == 200, 10)
        done = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-u", "mallory", "-P", "guess",
                               "-t", "x", "-m", "y"], capture_output=True, text=True, timeout=10)
        assert done.returncode != 0
        assert wait_until(lambda: samples(http_port)[("petrel_authentication_failures_total", ())] == 1, 5)
    finally:
        finish(b)


def test_http_listener_is_off_unless_asked(tmp_path):
    port = free_port()
    b = build_broker(tmp_path, {}).start()
    try:
        time.sleep(0.3)
        assert curl(port, "/health")[0] == 0
    finally:
        finish(b)


def sys_messages(port: int, *auth: str, wait: float = 2.0) -> tuple[dict[str, str], str]:
    """The $SYS messages mosquitto_sub receives within `wait` seconds (topic -> payload), and its stderr."""
    done = subprocess.run(
        ["mosquitto_sub", "-h", HOST, "-p", str(port), "-t", "$SYS/#", "-F", "%t|%p", "-W", str(int(wait)), *auth],
        capture_output=True, text=True, timeout=wait + 10,
    )
    found = {}
    for line in done.stdout.splitlines():
        topic, _, payload = line.partition("|")
        found[topic] = payload
    return found, done.stderr


def test_sys_topics_with_mosquitto_sub(tmp_path):
    b = build_broker(tmp_path, {}, extra_args=["--sys-interval", "1"]).start()
    try:
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-t", "kept", "-m", "x", "-r"], check=True)
        # Retained: a new subscriber gets every topic at once, and fresh values each second.
        found, _ = sys_messages(b.port)
        assert found["$SYS/broker/version"].startswith("petrel version ")
        assert found["$SYS/broker/uptime"].endswith(" seconds")
        assert int(found["$SYS/broker/clients/connected"]) >= 1
        assert int(found["$SYS/broker/clients/maximum"]) >= 1
        assert int(found["$SYS/broker/publish/messages/received"]) >= 1
        assert int(found["$SYS/broker/bytes/received"]) > 0
        assert int(found["$SYS/broker/retained messages/count"]) >= 1
        assert "$SYS/broker/subscriptions/count" in found
        for window in ("1min", "5min", "15min"):
            assert float(found[f"$SYS/broker/load/publish/received/{window}"]) >= 0
        # A leading wildcard does not match $ topics [MQTT-4.7.2-1].
        done = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(b.port), "-t", "#", "-v", "-W", "2"],
                              capture_output=True, text=True, timeout=10)
        assert done.stdout.split("\n")[0] == "kept x" and "$SYS" not in done.stdout
    finally:
        finish(b)


def test_sys_topics_are_read_only_where_the_acl_allows(tmp_path):
    passwords = tmp_path / "passwords"
    subprocess.run([str(petrel_binary()), "passwd", str(passwords), "operator", "--password", "secret"],
                   check=True, timeout=30)
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite public/#\n\nuser operator\ntopic read $SYS/#\n")
    b = build_broker(tmp_path / "b", {}, extra_args=[
        "--sys-interval", "1", "--password-file", str(passwords), "--allow-anonymous", "--acl-file", str(acl),
    ]).start()
    try:
        found, _ = sys_messages(b.port, "-u", "operator", "-P", "secret")
        assert "$SYS/broker/version" in found
        found, stderr = sys_messages(b.port)
        assert found == {}
        assert "denied" in stderr
    finally:
        finish(b)


def test_json_log_lines_for_connect_and_disconnect(tmp_path):
    b = build_broker(tmp_path, {}, extra_args=["--log-format", "json"]).start()
    try:
        client_id = uid("json")
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-V", "mqttv5", "-i", client_id, "-k", "33",
                        "-t", "t", "-m", "m"], check=True, timeout=10)
        assert wait_until(lambda: "client_disconnect" in b.log_text(), 5), b.log_tail()
    finally:
        finish(b)
    lines = [json.loads(line) for line in b.log_text().splitlines() if line.strip()]
    assert all({"time", "level", "message", "label"} <= line.keys() for line in lines)
    connected = next(line for line in lines if line["message"] == "Client connected")
    assert connected["mqtt.client_id"] == client_id
    assert connected["net.listener"] == "mqtt" and connected["mqtt.version"] == "5"
    assert connected["mqtt.keep_alive"] == "33" and connected["net.peer"].startswith("127.0.0.1:")
    gone = next(line for line in lines if line["message"] == "Client disconnected")
    assert gone["mqtt.client_id"] == client_id and gone["mqtt.disconnect_cause"] == "client_disconnect"
    assert gone["mqtt.reason_code"] and gone["mqtt.keep_alive"] == "33"
