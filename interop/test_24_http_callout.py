"""The HTTP callout (`--http-auth-url`, `--http-acl-url`): connects and access
checks decided by a small HTTP service the test runs on 127.0.0.1, with paho and
mosquitto_pub / mosquitto_sub as clients; answers cached, no answer denied."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import HOST, build_broker, finish, is_petrel
from helpers import uid, wait_until
from paho_client import PahoClient

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's HTTP callout")

PASSWORDS = {"alice": "wonderland", "bob": "builder"}


class Service:
    """Allows the users of PASSWORDS; `slow` gets no answer in time and `broken` an HTTP 500. Access: a user
    may publish to and subscribe below `<user>/` and `shared/`, publish to `status/<user>` (wills), never to
    a topic with `secret` in it; a topic under `slow/` is answered too late."""

    def __init__(self, delay: float = 3.0):
        self.delay = delay
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service.lock:
                    service.requests.append((self.path, body, dict(self.headers)))
                status, answer, wait = service.answer(self.path, body)
                if wait:
                    time.sleep(wait)
                data = json.dumps(answer).encode() if answer is not None else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, body: dict):
        user = body.get("username")
        if path == "/connect":
            if user == "slow":
                return 200, {"result": "allow"}, self.delay
            if user == "broken":
                return 500, None, 0
            if user in PASSWORDS and body.get("password") == PASSWORDS[user]:
                return 200, {"result": "allow"}, 0
            if user == "empty-body":
                return 204, None, 0
            return 200, {"result": "deny"}, 0
        topic = body["topic"]
        if topic.startswith("slow/"):
            return 200, {"result": "allow"}, self.delay
        if "secret" in topic:
            return 403, None, 0
        allowed = topic.startswith(f"{user}/") or topic.startswith("shared/") or (
            body["action"] == "publish" and topic == f"status/{user}")
        return 200, {"result": "allow" if allowed else "deny"}, 0

    def count(self, path: str, **fields) -> int:
        with self.lock:
            return sum(1 for p, body, _ in self.requests
                       if p == path and all(body.get(k) == v for k, v in fields.items()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def connack(port: int, user: str | None, password: str | None, protocol=mqtt.MQTTv5, client_id=None,
            will: str | None = None) -> int:
    got = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uid("h"), protocol=protocol)
    if user is not None:
        client.username_pw_set(user, password)
    if will:
        client.will_set(will, b"gone", qos=1)
    client.on_connect = lambda c, u, flags, rc, props: got.update(rc=rc.value)
    client.connect(HOST, port)
    client.loop_start()
    try:
        assert wait_until(lambda: "rc" in got, 10)
        return got["rc"]
    finally:
        client.disconnect()
        client.loop_stop()


def start(tmp_path, service: Service, *extra: str, acl: bool = True):
    args = ["--http-auth-url", f"{service.url}/connect", "--http-timeout", "0.5", "--max-login-delay", "0",
            "--http-header", "Authorization: Bearer test-token", *extra]
    if acl:
        args += ["--http-acl-url", f"{service.url}/acl"]
    return build_broker(tmp_path / "b", {}, extra_args=args).start()


def test_connects_allowed_denied_and_failing_closed(tmp_path):
    with Service() as service:
        broker = start(tmp_path, service, acl=False)
        try:
            assert connack(broker.port, "alice", "wonderland", client_id="alice-1") == 0
            assert connack(broker.port, "alice", "wonderland", protocol=mqtt.MQTTv311) == 0
            assert connack(broker.port, "empty-body", "x") == 0
            assert connack(broker.port, "alice", "wrong") == 0x86
            assert connack(broker.port, "alice", "wrong", protocol=mqtt.MQTTv311) == 0x86  # 3.1.1 return code 4
            assert connack(broker.port, None, None) == 0x86
            # No answer within --http-timeout, or an HTTP 500: the broker fails closed with Server unavailable.
            began = time.monotonic()
            assert connack(broker.port, "slow", "x") == 0x88
            assert time.monotonic() - began < 2.5
            assert connack(broker.port, "broken", "x", protocol=mqtt.MQTTv311) == 0x88  # 3.1.1 return code 3
            path, body, headers = next(r for r in service.requests if r[1].get("clientid") == "alice-1")
            assert body == {"clientid": "alice-1", "username": "alice", "password": "wonderland",
                            "address": body["address"], "protocol": "5"}
            assert body["address"].startswith("127.0.0.1:")
            assert headers["Authorization"] == "Bearer test-token"
            # mosquitto_pub, MQTT 3.1.1 and 5, allowed and refused.
            for version in ("mqttv311", "mqttv5"):
                ok = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-V", version,
                                     "-u", "bob", "-P", "builder", "-t", "bob/x", "-m", "hi"],
                                    capture_output=True, timeout=20)
                assert ok.returncode == 0, ok.stderr
                refused = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-V", version,
                                          "-u", "bob", "-P", "nope", "-t", "bob/x", "-m", "hi"],
                                         capture_output=True, timeout=20)
                assert refused.returncode != 0
            log = broker.log_text()
            assert "the HTTP service denied it" in log
            assert "the HTTP service gave no answer" in log
        finally:
            finish(broker)


def test_access_checks_with_real_clients(tmp_path):
    with Service() as service:
        broker = start(tmp_path, service)
        try:
            alice = PahoClient(broker, protocol="v5")
            alice.client.username_pw_set("alice", "wonderland")
            with alice.connect():
                alice.subscribe("alice/#", qos=1)
                alice.subscribe("shared/#", qos=1)
                result, mid = alice.client.subscribe([("bob/#", 1), ("$share/g/alice/in/#", 1), ("secret/#", 1)])
                alice._wait_mid(mid, 5)
                assert [rc.value for rc in alice.subacks[mid]] == [0x87, 1, 0x87]
                # mosquitto_pub as bob: shared/ is allowed, a secret topic is not (3.1.1: acknowledged, dropped).
                for topic, payload in (("shared/news", "allowed"), ("shared/secret", "dropped")):
                    subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", "bob", "-P", "builder",
                                    "-t", topic, "-m", payload, "-q", "1"], check=True, timeout=20)
                message = alice.get()
                assert (message.topic, message.payload) == ("shared/news", b"allowed")
                alice.expect_none()
                # paho, MQTT 5, QoS 1: PUBACK 0x87 for a topic the service denies.
                bob = PahoClient(broker, protocol="v5")
                bob.client.username_pw_set("bob", "builder")
                acks = {}
                bob.client.on_publish = lambda client, userdata, mid, rc, props: acks.update({mid: rc.value})
                with bob.connect():
                    denied = bob.client.publish("alice/inbox", b"no", qos=1)
                    allowed = bob.client.publish("shared/ok", b"yes", qos=1)
                    assert wait_until(lambda: denied.mid in acks and allowed.mid in acks, 5)
                    assert acks[denied.mid] == 0x87
                    assert acks[allowed.mid] == 0
                assert alice.get().payload == b"yes"
            assert service.count("/acl", username="alice", action="subscribe", topic="alice/in/#") == 1
            # mosquitto_sub with a filter the service denies: SUBACK 0x80.
            sub = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-u", "bob", "-P", "builder",
                                  "-t", "alice/#", "-W", "2", "-C", "1"], capture_output=True, text=True, timeout=20)
            assert "All subscription requests were denied" in sub.stderr
        finally:
            finish(broker)


def test_answers_are_cached_for_their_time(tmp_path):
    with Service() as service:
        broker = start(tmp_path, service, "--http-cache-seconds", "60")
        try:
            client_id = uid("cached")
            for _ in range(3):
                assert connack(broker.port, "alice", "wonderland", client_id=client_id) == 0
            assert service.count("/connect", clientid=client_id) == 1
            topic = f"alice/{uid('t')}"
            for _ in range(5):
                subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", "alice", "-P",
                                "wonderland", "-t", topic, "-m", "x", "-q", "1"], check=True, timeout=20)
            # mosquitto_pub picks a new client id each time: cached per client, the service is asked per run.
            assert service.count("/acl", topic=topic) == 5
            alice = PahoClient(broker, protocol="v5")
            alice.client.username_pw_set("alice", "wonderland")
            with alice.connect():
                for _ in range(5):
                    alice.publish(topic, b"x", qos=1)
            assert service.count("/acl", topic=topic) == 6
        finally:
            finish(broker)
    with Service() as service:
        broker = start(tmp_path / "off", service, "--http-cache-seconds", "0")
        try:
            client_id = uid("uncached")
            for _ in range(3):
                assert connack(broker.port, "alice", "wonderland", client_id=client_id) == 0
            assert service.count("/connect", clientid=client_id) == 3
        finally:
            finish(broker)


def test_an_unanswered_check_denies_and_the_connection_goes_on(tmp_path):
    with Service() as service:
        broker = start(tmp_path, service)
        try:
            bob = PahoClient(broker, protocol="v5")
            bob.client.username_pw_set("bob", "builder")
            acks = {}
            bob.client.on_publish = lambda client, userdata, mid, rc, props: acks.update({mid: rc.value})
            with bob.connect():
                began = time.monotonic()
                late = bob.client.publish("slow/x", b"late", qos=1)
                after = bob.client.publish("bob/after", b"next", qos=1)
                assert wait_until(lambda: late.mid in acks and after.mid in acks, 5)
                assert acks[late.mid] == 0x87
                assert acks[after.mid] == 0x10  # allowed; nobody subscribed
                assert time.monotonic() - began < 2.5
                # Not cached: the next PUBLISH to it asks again.
                again = bob.client.publish("slow/x", b"late", qos=1)
                assert wait_until(lambda: again.mid in acks, 5)
                assert service.count("/acl", topic="slow/x") == 2
            assert "the HTTP service gave no answer" in broker.log_text()
            # A will is checked at CONNECT like a PUBLISH.
            assert connack(broker.port, "bob", "builder", will="status/bob") == 0
            assert connack(broker.port, "bob", "builder", will="status/alice") == 0x87
        finally:
            finish(broker)
