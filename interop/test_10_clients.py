"""Interoperability with the Mosquitto command-line clients (mosquitto_pub /
mosquitto_sub), across protocol versions."""

import select
import shutil
import subprocess
import time

import pytest

from helpers import topic, uid, wait_until

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto-clients not installed")

VERSIONS = ["mqttv31", "mqttv311", "mqttv5"]


def start_sub(broker, version, filt, qos=2, count=1, wait=10, extra=()):
    args = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", version,
            "-t", filt, "-q", str(qos), "-v", "-C", str(count), "-W", str(wait),
            "-i", uid("msub"), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_pub(broker, version, t, message, qos=1, extra=()):
    args = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", version,
            "-t", t, *(["-n"] if message is None else ["-m", message]), "-q", str(qos),
            "-i", uid("mpub"), *extra]
    res = subprocess.run(args, capture_output=True, timeout=15)
    assert res.returncode == 0, res.stderr.decode()


def finish_sub(proc, timeout=15):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        raise AssertionError(f"mosquitto_sub did not finish: {err.decode()}")
    return proc.returncode, out.decode(), err.decode()


def wait_ready(broker, proc, base, timeout=10):
    """mosquitto_sub has no 'subscribed' signal.  A retained marker published
    under `base` before it started is delivered right after its SUBACK: once
    that line is printed the subscription is active."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline().decode()
            assert "ready" in line, f"unexpected first line {line!r}"
            return
        if proc.poll() is not None:
            raise AssertionError(f"mosquitto_sub exited: {proc.stderr.read().decode()}")
    raise AssertionError("mosquitto_sub did not receive the ready marker")


def mark_ready(broker, base):
    run_pub(broker, "mqttv311", f"{base}/ready", "ready", qos=1, extra=["-r"])


@pytest.mark.parametrize("sub_version", VERSIONS)
@pytest.mark.parametrize("pub_version", VERSIONS)
def test_pub_sub_across_versions(broker, sub_version, pub_version):
    """`mosquitto_sub -V <v> -t 'a/#' -q 2 -v` receives what
    `mosquitto_pub -V <w> -t a/b -m hi -q 1` sends [MQTT-3.3.5-1] [MQTT-4.7.1-2]."""
    base = topic("cli")
    mark_ready(broker, base)
    proc = start_sub(broker, sub_version, f"{base}/#", count=2)
    try:
        wait_ready(broker, proc, base)
        run_pub(broker, pub_version, f"{base}/b", "hi", qos=1)
        rc, out, err = finish_sub(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert rc == 0, err
    assert out.strip() == f"{base}/b hi"


def test_retained_via_cli(broker):
    """mosquitto_pub -r stores a retained message that mosquitto_sub receives
    later [MQTT-3.3.1-6]."""
    t = topic("cli")
    run_pub(broker, "mqttv311", t, "kept", qos=1, extra=["-r"])
    proc = start_sub(broker, "mqttv5", t, count=1, wait=5, extra=["-F", "%r %t %p"])
    rc, out, err = finish_sub(proc)
    assert rc == 0, err
    assert out.strip() == f"1 {t} kept"
    run_pub(broker, "mqttv311", t, None, qos=1, extra=["-r"])


def test_many_messages_via_cli(broker):
    """mosquitto_pub -l sends one message per stdin line; all arrive in order
    [MQTT-4.6.0-6]."""
    base = topic("cli")
    t = f"{base}/lines"
    n = 50
    mark_ready(broker, base)
    proc = start_sub(broker, "mqttv311", f"{base}/#", qos=1, count=n + 1, wait=15,
                     extra=["-F", "%p"])
    try:
        wait_ready(broker, proc, base)
        lines = "".join(f"line{i}\n" for i in range(n)).encode()
        res = subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port),
                              "-V", "mqttv5", "-t", t, "-q", "1", "-l", "-i", uid("mpub")],
                             input=lines, capture_output=True, timeout=20)
        assert res.returncode == 0, res.stderr.decode()
        rc, out, err = finish_sub(proc, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert rc == 0, err
    assert out.split() == [f"line{i}" for i in range(n)]


def test_v5_properties_via_cli(broker):
    """mosquitto_pub -D publish user-property / content-type reach a v5
    mosquitto_sub [MQTT-3.3.2-17] [MQTT-3.3.2-20]."""
    base = topic("cli")
    t = f"{base}/props"
    mark_ready(broker, base)
    proc = start_sub(broker, "mqttv5", f"{base}/#", qos=1, count=2, wait=10,
                     extra=["-F", "%C|%P|%p"])
    try:
        wait_ready(broker, proc, base)
        run_pub(broker, "mqttv5", t, "body", qos=1,
                extra=["-D", "publish", "content-type", "text/x",
                       "-D", "publish", "user-property", "k", "v"])
        rc, out, err = finish_sub(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert rc == 0, err
    ctype, uprops, payload = out.strip().split("|")
    assert ctype == "text/x" and payload == "body"
    assert "k" in uprops and "v" in uprops


def test_sub_wait_timeout_without_messages(broker):
    """mosquitto_sub -W exits (code 27) when nothing arrives: the broker keeps
    the connection healthy while idle."""
    proc = start_sub(broker, "mqttv311", topic("none"), wait=2)
    rc, out, err = finish_sub(proc)
    assert out == ""
    assert rc == 27, f"rc={rc} {err}"
