"""Password files shared with Mosquitto: Petrel reads what `mosquitto_passwd`
writes ($7$ PBKDF2-SHA512 and $6$ SHA-512), `petrel passwd --format mosquitto`
writes lines Mosquitto accepts, failed logins are logged with the client's
address and answered later and later, and SIGHUP re-reads the file."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import HOST, Broker, build_broker, finish, free_port, is_petrel, petrel_binary
from helpers import wait_until

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel reading Mosquitto's files")

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto_passwd = pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd not installed")


def mosquitto_passwd(path: Path, user: str, password: str, algorithm: str = "sha512-pbkdf2", create=False):
    args = [MOSQUITTO_PASSWD, "-H", algorithm] + (["-c"] if create else []) + ["-b", str(path), user, password]
    subprocess.run(args, check=True, timeout=30)


def connack(port: int, user: str | None, password: str | None, protocol=mqtt.MQTTv5, timeout=15.0):
    """CONNECTs with paho and returns (reason code value, seconds until the CONNACK)."""
    result = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    if user is not None:
        client.username_pw_set(user, password)

    def on_connect(c, userdata, flags, reason_code, properties):
        result["code"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        result["at"] = time.monotonic()

    client.on_connect = on_connect
    started = time.monotonic()
    client.connect(HOST, port)
    client.loop_start()
    try:
        assert wait_until(lambda: "code" in result, timeout), "no CONNACK"
        return result["code"], result["at"] - started
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def mosquitto_file(tmp_path):
    path = tmp_path / "passwords"
    mosquitto_passwd(path, "alice", "wonderland", create=True)
    mosquitto_passwd(path, "bob", "builder", algorithm="sha512")
    return path


@needs_mosquitto_passwd
def test_a_file_from_mosquitto_passwd_works_as_it_is(tmp_path, mosquitto_file):
    lines = mosquitto_file.read_text().splitlines()
    assert lines[0].startswith("alice:$7$101$") and lines[1].startswith("bob:$6$")
    broker = build_broker(tmp_path / "b", {}, extra_args=["--password-file", str(mosquitto_file)]).start()
    try:
        assert connack(broker.port, "alice", "wonderland")[0] == 0
        assert connack(broker.port, "bob", "builder", protocol=mqtt.MQTTv311)[0] == 0
        assert connack(broker.port, "alice", "builder")[0] == 0x86
        # paho reports the 3.1.1 return codes 4 and 5 as the MQTT 5 reason codes 0x86 and 0x87.
        assert connack(broker.port, "bob", "wrong", protocol=mqtt.MQTTv311)[0] == 0x86
        assert connack(broker.port, None, None)[0] == 0x87
        assert connack(broker.port, None, None, protocol=mqtt.MQTTv311)[0] == 0x87
        # mosquitto_pub with good and bad credentials
        ok = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", "alice", "-P", "wonderland",
                             "-t", "t", "-m", "x"], timeout=30)
        assert ok.returncode == 0
        bad = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", "alice", "-P", "nope",
                              "-t", "t", "-m", "x"], capture_output=True, text=True, timeout=30)
        assert bad.returncode != 0
        log = broker.log_text()
        assert "CONNECT refused" in log and "net.peer=127.0.0.1" in log
    finally:
        finish(broker)


@needs_mosquitto_passwd
def test_petrel_passwd_writes_lines_mosquitto_accepts(tmp_path):
    path = tmp_path / "passwords"
    subprocess.run([str(petrel_binary()), "passwd", str(path), "alice", "--format", "mosquitto",
                    "--password", "wonderland"], check=True, timeout=30)
    assert path.read_text().startswith("alice:$7$101$")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join([
        f"listener {port} {HOST}", "allow_anonymous false", f"password_file {path}", "persistence false",
        f"user {pwd.getpwuid(os.getuid()).pw_name}", f"log_dest file {workdir / 'mosquitto.log'}",
    ]) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mosquitto = Broker("mosquitto", [binary, "-c", str(conf)], port, workdir / "mosquitto.log", {}, workdir).start()
    try:
        assert connack(port, "alice", "wonderland")[0] == 0
        # Mosquitto answers a wrong password with 0x87 Not authorized.
        assert connack(port, "alice", "wrong")[0] in (0x86, 0x87)
    finally:
        mosquitto.stop()
    broker = build_broker(tmp_path / "b", {}, extra_args=["--password-file", str(path)]).start()
    try:
        assert connack(broker.port, "alice", "wonderland")[0] == 0
    finally:
        finish(broker)


def test_failed_logins_are_answered_later_and_later(tmp_path):
    path = tmp_path / "passwords"
    subprocess.run([str(petrel_binary()), "passwd", str(path), "alice", "--password", "wonderland",
                    "--iterations", "64"], check=True, timeout=30)
    broker = build_broker(tmp_path / "b", {}, extra_args=["--password-file", str(path)]).start()
    try:
        waits = [connack(broker.port, "alice", f"guess-{n}")[1] for n in range(5)]
        # 0.1, 0.2, 0.4, 0.8, 1.6 s: each refusal waits about twice as long as the one before.
        assert waits[0] >= 0.08 and waits[4] >= 1.5, waits
        assert waits[4] > 4 * waits[1], waits
        # The right password is not delayed, and resets the count for the address.
        code, wait = connack(broker.port, "alice", "wonderland")
        assert code == 0 and wait < 0.5
        assert connack(broker.port, "alice", "again")[1] < 0.5
        assert "petrel.answer_delay_ms=1600" in broker.log_text()
    finally:
        finish(broker)


@needs_mosquitto_passwd
def test_sighup_rereads_the_password_file(tmp_path, mosquitto_file):
    broker = build_broker(tmp_path / "b", {}, extra_args=["--password-file", str(mosquitto_file),
                                                           "--max-login-delay", "0"]).start()
    try:
        assert connack(broker.port, "carol", "new")[0] == 0x86
        mosquitto_passwd(mosquitto_file, "carol", "new")
        os.kill(broker.pid, signal.SIGHUP)
        assert wait_until(lambda: "Reloaded the password file" in broker.log_text(), 5), broker.log_tail()
        assert connack(broker.port, "carol", "new")[0] == 0
        mosquitto_file.write_text(mosquitto_file.read_text() + "broken line\n")
        os.kill(broker.pid, signal.SIGHUP)
        assert wait_until(lambda: "Reloading the password file failed" in broker.log_text(), 5), broker.log_tail()
        assert "line 4" in broker.log_text()
        assert connack(broker.port, "carol", "new")[0] == 0
    finally:
        finish(broker)
