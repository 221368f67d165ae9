"""Access control with an ACL file in Mosquitto's syntax (`--acl-file`):
publishing, subscribing, deliveries, retained messages and wills are checked
for each client; SIGHUP re-reads the file; and the same file gives the same
answers from Mosquitto, started next to Petrel in the same test."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import HOST, Broker, build_broker, finish, free_port, is_petrel
from helpers import wait_until
from paho_client import PahoClient, unique_id

ACL = """\
# anonymous clients may only read the public tree
topic read public/#

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret/#

user bob
topic write alice/inbox/#
topic readwrite bob/#
topic write shared/#
topic write public/#

pattern readwrite devices/%c/#
"""


def client(broker, user, protocol="v5", client_id=None, will=None) -> PahoClient:
    c = PahoClient(broker, client_id=client_id or unique_id(user or "anon"), protocol=protocol, will=will)
    if user:
        c.client.username_pw_set(user, "any")
    return c


class PublishAcks:
    """Records the reason code of each PUBACK / PUBREC a paho client gets."""

    def __init__(self, c: PahoClient):
        self.codes: dict[int, object] = {}
        self.done = threading.Event()
        c.client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.codes[mid] = reason_code
        self.done.set()


@pytest.fixture
def acl_broker(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = build_broker(tmp_path / "broker", {"acl_file": str(acl)}).start()
    yield b, acl
    finish(b)


def test_publish_and_receive_follow_the_rules(acl_broker):
    broker, _ = acl_broker
    with client(broker, "alice").connect() as alice:
        alice.subscribe("alice/#", qos=1)
        with client(broker, "bob").connect() as bob:
            bob.publish("alice/inbox/1", b"from bob", qos=1)
            assert alice.get().payload == b"from bob"
        with client(broker, "carol").connect() as carol:
            carol.publish("alice/inbox/2", b"from carol", qos=1)
        with client(broker, None).connect() as anonymous:
            anonymous.publish("alice/inbox/3", b"anonymous", qos=0)
        alice.expect_none()


def test_mosquitto_clients_through_the_rules(acl_broker):
    """mosquitto_sub as alice gets what mosquitto_pub as bob may send, not what carol sends."""
    broker, _ = acl_broker
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-u", "alice", "-P", "x", "-t", "alice/#",
         "-q", "1", "-v", "-W", "6"],
        stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.8)
        for user, text in (("carol", "denied"), ("bob", "allowed")):
            subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", user, "-P", "x",
                            "-t", "alice/inbox/x", "-q", "1", "-m", text], check=True, timeout=10)
        time.sleep(0.5)
    finally:
        sub.send_signal(signal.SIGINT)
        out, _ = sub.communicate(timeout=10)
    assert "alice/inbox/x allowed" in out
    assert "denied" not in out


@pytest.mark.skipif(not is_petrel(), reason="Mosquitto 2.0 answers denied PUBLISH the same way only in part")
def test_mqtt5_puback_says_not_authorized(acl_broker):
    broker, _ = acl_broker
    carol = client(broker, "carol")
    acks = PublishAcks(carol)
    with carol.connect():
        info = carol.client.publish("alice/inbox/x", b"x", qos=1)
        info.wait_for_publish(5)
        assert wait_until(lambda: info.mid in acks.codes, 5)
        assert acks.codes[info.mid].value == 0x87


@pytest.mark.skipif(not is_petrel(), reason="Mosquitto 2.0 does not check SUBSCRIBE against the ACL file")
@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_subscriptions_wider_than_allowed_are_refused(acl_broker, protocol):
    broker, _ = acl_broker
    with client(broker, "alice", protocol=protocol).connect() as alice:
        result, mid = alice.client.subscribe([("alice/#", 1), ("#", 1), ("bob/+", 1), ("$SYS/#", 0)])
        alice._wait_mid(mid, 5)
        codes = [rc.value for rc in alice.subacks[mid]]
        refused = 0x87 if protocol == "v5" else 0x80
        assert codes == [1, refused, refused, refused]


def test_retained_messages_are_filtered_per_subscriber(acl_broker):
    broker, _ = acl_broker
    with client(broker, "bob").connect() as bob:
        bob.publish("shared/news", b"news", qos=1, retain=True)
        bob.publish("shared/secret/plan", b"plan", qos=1, retain=True)
    with client(broker, "alice").connect() as alice:
        alice.subscribe("shared/#", qos=1)
        assert alice.get().payload == b"news"
        alice.expect_none()


def test_patterns_give_each_device_its_own_tree(acl_broker):
    broker, _ = acl_broker
    with client(broker, None, client_id="sensor-1").connect() as one, \
            client(broker, None, client_id="sensor-2").connect() as two:
        one.subscribe("devices/sensor-1/#", qos=1)
        two.publish("devices/sensor-1/cmd", b"intrusion", qos=1)
        one.publish("devices/sensor-1/cmd", b"own", qos=1)
        assert one.get().payload == b"own"
        one.expect_none()


@pytest.mark.skipif(not is_petrel(), reason="Petrel refuses the CONNECT of a will the rules forbid")
def test_will_on_a_forbidden_topic_refuses_the_connect(acl_broker):
    broker, _ = acl_broker
    c = client(broker, "alice", will={"topic": "bob/alarm", "payload": b"gone"})
    c.client.connect(HOST, broker.port)
    c.client.loop_start()
    try:
        assert c.connected.wait(5)
        assert c.connack[1].value == 0x87
    finally:
        c.client.loop_stop()


@pytest.mark.skipif(not is_petrel(), reason="reload log lines are Petrel's")
def test_sighup_rereads_the_file_and_keeps_the_old_rules_when_broken(acl_broker):
    broker, acl = acl_broker
    with client(broker, "alice").connect() as alice, client(broker, "carol").connect() as carol:
        alice.subscribe("alice/#", qos=1)
        carol.publish("alice/inbox/1", b"before", qos=1)
        alice.expect_none()
        acl.write_text(ACL + "\nuser carol\ntopic write alice/inbox/#\n")
        os.kill(broker.pid, signal.SIGHUP)
        assert wait_until(lambda: "Reloaded the ACL file" in broker.log_text(), 5), broker.log_tail()
        # The connected client is checked against the new rules from its next packet on.
        carol.publish("alice/inbox/2", b"after", qos=1)
        assert alice.get().payload == b"after"
        broken = ACL + "\nuser carol\ntopic write alice/inbox/#\nbogus line here\n"
        acl.write_text(broken)
        os.kill(broker.pid, signal.SIGHUP)
        assert wait_until(lambda: "Reloading the ACL file failed" in broker.log_text(), 5), broker.log_tail()
        assert f"line {len(broken.splitlines())}" in broker.log_text()
        carol.publish("alice/inbox/3", b"still", qos=1)
        assert alice.get().payload == b"still"


@pytest.mark.skipif(not is_petrel(), reason="a start-up error of Petrel's")
def test_a_broken_file_stops_the_start_with_the_line(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read a/#\nuser\n")
    broker = build_broker(tmp_path / "b", {"acl_file": str(acl)})
    with pytest.raises(RuntimeError) as failure:
        broker.start()
    assert "line 2" in str(failure.value)


# -- the same file in Mosquitto

def start_mosquitto(workdir: Path, acl: Path) -> Broker:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    log = workdir / "mosquitto.log"
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join([
        f"listener {port} {HOST}", "allow_anonymous true", f"acl_file {acl}", "persistence false",
        f"user {pwd.getpwuid(os.getuid()).pw_name}", f"log_dest file {log}",
    ]) + "\n")
    return Broker("mosquitto", [binary, "-c", str(conf)], port, log, {}, workdir).start()


def outcomes(broker) -> list[bool]:
    """Which of a fixed set of (publisher, topic) -> alice deliveries arrive."""
    cases = [("bob", "alice/inbox/1"), ("carol", "alice/inbox/2"), (None, "alice/inbox/3"),
             ("bob", "shared/news"), ("bob", "shared/secret/x"), ("alice", "alice/self")]
    received = []
    with client(broker, "alice", protocol="v311").connect() as alice:
        alice.client.subscribe([("alice/#", 1), ("shared/#", 1)])
        time.sleep(0.3)
        for user, topic in cases:
            with client(broker, user, protocol="v311").connect() as sender:
                sender.publish(topic, topic.encode(), qos=1)
            try:
                msg = alice.get(timeout=0.6)
                received.append(msg.topic == topic)
            except AssertionError:
                received.append(False)
    return received


@pytest.mark.skipif(not is_petrel() or not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()),
                    reason="compares Petrel with a Mosquitto binary")
def test_mosquitto_reads_the_same_file_the_same_way(acl_broker, tmp_path):
    broker, acl = acl_broker
    (tmp_path / "mosquitto").mkdir()
    mosquitto = start_mosquitto(tmp_path / "mosquitto", acl)
    try:
        expected = [True, False, False, True, False, True]
        assert outcomes(mosquitto) == expected
        assert outcomes(broker) == expected
    finally:
        mosquitto.stop()
