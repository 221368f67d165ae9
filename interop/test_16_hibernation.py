"""Hibernation of idle connections (docs/hibernation.md): clients that nobody here wrote keep working while
their connections sleep and wake.  The broker logs "hibernating" and "waking" per connection at trace level,
which is how these tests know the connection slept."""

import shutil
import subprocess
import time

import pytest

from conftest import petrel_only
from helpers import topic, uid, wait_until
from paho_client import PahoClient

pytestmark = petrel_only("hibernation is Petrel's")

HIBERNATE = {"hibernate_after": "0.3", "log_level": "trace"}


def hibernations(broker, client_id: str) -> int:
    """How often `client_id`'s connection went to sleep so far."""
    return sum(1 for line in broker.log_text().splitlines()
               if "hibernating" in line and f"mqtt.client_id={client_id} " in line)


def wait_hibernated(broker, client_id: str, at_least: int = 1) -> None:
    assert wait_until(lambda: hibernations(broker, client_id) >= at_least, 5.0), \
        f"{client_id} did not hibernate {at_least} time(s)"


def mosquitto_pub(broker, t, message, qos=1, version="mqttv311"):
    args = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", version,
            "-t", t, "-m", message, "-q", str(qos), "-i", uid("mpub")]
    result = subprocess.run(args, capture_output=True, timeout=15)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="mosquitto-clients not installed")
@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_subscriber_wakes_for_each_message(broker_factory, protocol):
    """A paho subscriber whose connection hibernated receives what mosquitto_pub sends, QoS 1 and QoS 0,
    and its connection sleeps again in between [MQTT-3.3.4-1]."""
    broker = broker_factory(**HIBERNATE)
    base = topic("hib")
    with PahoClient(broker, protocol=protocol).connect() as sub:
        sub.subscribe(f"{base}/#", qos=1)
        for round_number, qos in enumerate([1, 0, 1], start=1):
            wait_hibernated(broker, sub.client_id, at_least=round_number)
            mosquitto_pub(broker, f"{base}/{round_number}", f"message {round_number}", qos=qos)
            message = sub.get()
            assert message.topic == f"{base}/{round_number}"
            assert message.payload == f"message {round_number}".encode()
            assert message.qos == qos
        assert not sub.disconnected.is_set()


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_keep_alive_pings_wake_a_sleeping_connection(broker_factory, protocol):
    """paho's PINGREQs (keep alive 1 s) reach a connection that hibernates between them; it stays open well
    past 1.5 times the keep alive [MQTT-3.1.2-23] and can still publish."""
    broker = broker_factory(**HIBERNATE)
    t = topic("hibping")
    with PahoClient(broker, protocol=protocol, keepalive=1).connect() as client, \
            PahoClient(broker, protocol=protocol).connect() as watcher:
        watcher.subscribe(t, qos=1)
        time.sleep(4.0)
        assert hibernations(broker, client.client_id) >= 2, "the pinging client never hibernated"
        assert not client.disconnected.is_set(), "keep alive closed a client that pinged"
        client.publish(t, b"still here", qos=1).wait_for_publish(5)
        assert watcher.get().payload == b"still here"


def test_paho_will_when_a_sleeping_client_vanishes(broker_factory):
    """A client that stops pinging while hibernated is closed after 1.5 times its keep alive and its will
    goes out [MQTT-3.1.2-24] [MQTT-3.1.2-8]."""
    broker = broker_factory(**HIBERNATE)
    t = topic("hibwill")
    with PahoClient(broker).connect() as watcher:
        watcher.subscribe(t, qos=1)
        doomed = PahoClient(broker, keepalive=1, will={"topic": t, "payload": b"gone", "qos": 1})
        doomed.connect()
        wait_hibernated(broker, doomed.client_id)
        # Stop paho's network loop without a DISCONNECT: the broker sees silence.
        doomed.client.loop_stop()
        message = watcher.get(timeout=6.0)
        assert message.payload == b"gone"
        doomed.client.socket().close()


@pytest.mark.skipif(not shutil.which("mosquitto_sub"), reason="mosquitto-clients not installed")
def test_mosquitto_sub_across_hibernation(broker_factory):
    """mosquitto_sub -C 2 gets two messages sent while its connection slept."""
    broker = broker_factory(**HIBERNATE)
    base = topic("hibcli")
    client_id = uid("msub")
    proc = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5", "-t", f"{base}/#",
         "-q", "1", "-v", "-C", "2", "-W", "20", "-i", client_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_hibernated(broker, client_id, at_least=1)
        mosquitto_pub(broker, f"{base}/a", "one")
        wait_hibernated(broker, client_id, at_least=2)
        mosquitto_pub(broker, f"{base}/b", "two", version="mqttv5")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == [f"{base}/a one", f"{base}/b two"]
