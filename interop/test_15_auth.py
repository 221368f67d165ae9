"""Authentication: user name / password at CONNECT (3.1.1 and 5) and MQTT 5
enhanced authentication with SCRAM-SHA-256 (RFC 5802 / RFC 7677) over AUTH
packets (spec 4.12), against a broker started with a password file made by
`petrel passwd`.  The SCRAM client side is Python's hashlib / hmac."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess

import paho.mqtt.client as mqtt
import pytest

import mqtt_raw as raw
from conftest import build_broker, finish, is_petrel, petrel_binary
from paho_client import PahoClient

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel only: password file and SCRAM-SHA-256")

METHOD = "SCRAM-SHA-256"
USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(scope="module")
def password_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "passwords"
    for user, password in USERS.items():
        # One password on the command line, one on standard input.
        if user == "alice":
            args = [str(petrel_binary()), "passwd", str(path), user, "--password", password]
            subprocess.run(args, check=True, timeout=30)
        else:
            args = [str(petrel_binary()), "passwd", str(path), user, "--iterations", "4096"]
            subprocess.run(args, check=True, timeout=30, input=password + "\n", text=True)
    return path


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory, password_file):
    # Failed logins are answered at once here; test_21_passwords.py checks the growing delay.
    b = build_broker(tmp_path_factory.mktemp("auth-broker"), {},
                     extra_args=["--password-file", str(password_file), "--max-login-delay", "0"]).start()
    yield b
    finish(b)


# -- SCRAM-SHA-256 client (RFC 5802 section 3)

class ScramClient:
    def __init__(self, user: str, password: str, nonce: str | None = None):
        self.user, self.password = user, password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.nonce}"

    def client_first(self, gs2: str = "n,,") -> bytes:
        return (gs2 + self.first_bare).encode()

    def client_final(self, server_first: bytes, tamper: bool = False) -> bytes:
        server_first = server_first.decode()
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce)
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={attrs['r']}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytearray(a ^ b for a, b in zip(client_key, signature))
        if tamper:
            proof[0] ^= 1
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_server_final = b"v=" + base64.b64encode(
            hmac.new(server_key, auth_message, hashlib.sha256).digest())
        return f"{without_proof},p={base64.b64encode(bytes(proof)).decode()}".encode()


def auth_props(data: bytes | None, method: str = METHOD) -> list:
    props = [(raw.AUTHENTICATION_METHOD, method)]
    if data is not None:
        props.append((raw.AUTHENTICATION_DATA, data))
    return props


def scram_connect(broker, scram: ScramClient, tamper: bool = False):
    c = raw.RawClient(*broker.address, version=raw.MQTT5)
    c.send(raw.connect("scram-" + scram.nonce[:8].replace("/", "x").replace("+", "y"), version=raw.MQTT5,
                       properties=auth_props(scram.client_first())))
    challenge = c.expect(raw.AUTH)
    assert challenge.reason == 0x18  # [MQTT-4.12.0-2]
    assert challenge.prop(raw.AUTHENTICATION_METHOD) == METHOD  # [MQTT-4.12.0-5]
    c.send(raw.auth(0x18, auth_props(scram.client_final(challenge.prop(raw.AUTHENTICATION_DATA), tamper))))
    return c, c.expect(raw.CONNACK)


def test_scram_sha256_connect_MQTT_4_12_0_2_MQTT_4_12_0_5(auth_broker):
    scram = ScramClient("alice", USERS["alice"])
    c, ack = scram_connect(auth_broker, scram)
    with c:
        assert ack.reason == 0x00
        assert ack.prop(raw.AUTHENTICATION_METHOD) == METHOD
        assert ack.prop(raw.AUTHENTICATION_DATA) == scram.expected_server_final
        # The connection works: subscribe and receive our own message.
        c.subscribe("auth/scram")
        c.publish("auth/scram", b"hi")
        assert c.receive().payload == b"hi"
        c.disconnect()


def test_scram_wrong_password_refused_MQTT_4_12_0_4(auth_broker):
    c, ack = scram_connect(auth_broker, ScramClient("alice", "not-the-password"))
    with c:
        assert ack.reason == 0x86
        assert not ack.has_prop(raw.AUTHENTICATION_DATA)
        c.expect_closed()


def test_scram_tampered_proof_and_unknown_user_refused(auth_broker):
    for scram, tamper in ((ScramClient("bob", USERS["bob"]), True), (ScramClient("mallory", "x"), False)):
        c, ack = scram_connect(auth_broker, scram, tamper=tamper)
        with c:
            assert ack.reason == 0x86
            c.expect_closed()


def test_unsupported_method_MQTT_4_12_0_1(auth_broker):
    with raw.RawClient(*auth_broker.address, version=raw.MQTT5) as c:
        c.send(raw.connect("m", version=raw.MQTT5, properties=auth_props(b"x", method="SCRAM-SHA-1")))
        assert c.expect(raw.CONNACK).reason == 0x8C
        c.expect_closed()


def test_channel_binding_refused(auth_broker):
    with raw.RawClient(*auth_broker.address, version=raw.MQTT5) as c:
        scram = ScramClient("alice", USERS["alice"])
        c.send(raw.connect("cb", version=raw.MQTT5, properties=auth_props(scram.client_first("p=tls-unique,,"))))
        assert c.expect(raw.CONNACK).reason == 0x8C
        c.expect_closed()


def test_publish_during_exchange_is_protocol_error_MQTT_3_1_2_30(auth_broker):
    with raw.RawClient(*auth_broker.address, version=raw.MQTT5) as c:
        scram = ScramClient("alice", USERS["alice"])
        c.send(raw.connect("pe", version=raw.MQTT5, properties=auth_props(scram.client_first())))
        c.expect(raw.AUTH)
        c.send(raw.publish("a", b"x", version=raw.MQTT5))
        assert c.expect(raw.CONNACK).reason == 0x82
        c.expect_closed()


def test_reauthentication_MQTT_4_12_1_1(auth_broker):
    scram = ScramClient("alice", USERS["alice"])
    c, ack = scram_connect(auth_broker, scram)
    with c:
        assert ack.reason == 0
        again = ScramClient("alice", USERS["alice"])
        c.send(raw.auth(0x19, auth_props(again.client_first())))
        challenge = c.expect(raw.AUTH)
        assert challenge.reason == 0x18
        c.send(raw.auth(0x18, auth_props(again.client_final(challenge.prop(raw.AUTHENTICATION_DATA)))))
        done = c.expect(raw.AUTH)
        assert done.reason == 0x00
        assert done.prop(raw.AUTHENTICATION_METHOD) == METHOD
        assert done.prop(raw.AUTHENTICATION_DATA) == again.expected_server_final
        assert c.ping().name == "PINGRESP"
        c.disconnect()


def test_failed_reauthentication_disconnects_MQTT_4_12_1_2(auth_broker):
    c, ack = scram_connect(auth_broker, ScramClient("alice", USERS["alice"]))
    with c:
        assert ack.reason == 0
        again = ScramClient("alice", "wrong")
        c.send(raw.auth(0x19, auth_props(again.client_first())))
        challenge = c.expect(raw.AUTH)
        c.send(raw.auth(0x18, auth_props(again.client_final(challenge.prop(raw.AUTHENTICATION_DATA)))))
        seen = c.expect_closed()
        assert [p.reason for p in seen if p.type == raw.DISCONNECT] == [0x86]


def test_auth_without_method_is_protocol_error_MQTT_4_12_0_7(auth_broker):
    with raw.RawClient(*auth_broker.address, version=raw.MQTT5) as c:
        c.connect("nm", username="bob", password=b"builder")
        c.send(raw.auth(0x19, auth_props(b"n,,n=bob,r=abc")))
        seen = c.expect_closed()
        assert [p.reason for p in seen if p.type == raw.DISCONNECT] == [0x82]


# -- user name and password with paho-mqtt

def paho_connack(broker, protocol: str, username, password):
    client = PahoClient(broker, protocol=protocol)
    if username is not None:
        client.client.username_pw_set(username, password)
    client.client.connect(host=broker.host, port=broker.port, keepalive=30)
    client.client.loop_start()
    try:
        assert client.connected.wait(5.0), "no CONNACK"
        return client.connack[1]
    finally:
        client.client.disconnect()
        client.client.loop_stop()


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_good_password(auth_broker, protocol):
    rc = paho_connack(auth_broker, protocol, "alice", USERS["alice"])
    assert not rc.is_failure


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_bad_password_MQTT_3_2_2_3(auth_broker, protocol):
    # v5 0x86 Bad User Name or Password; 3.1.1 return code 4 (paho reports it as 0x86 too).
    rc = paho_connack(auth_broker, protocol, "alice", "nope")
    assert rc.value in (0x04, 0x86)


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_paho_anonymous_refused(auth_broker, protocol):
    # Anonymous access is off when a password file is given: v5 0x87, 3.1.1 return code 5.
    rc = paho_connack(auth_broker, protocol, None, None)
    assert rc.value in (0x05, 0x87)


def test_raw_311_return_codes(auth_broker):
    with raw.RawClient(*auth_broker.address, version=raw.MQTT311) as c:
        c.connect("r1", expect_reason=0x04, username="alice", password=b"nope")
        c.expect_closed()
    with raw.RawClient(*auth_broker.address, version=raw.MQTT311) as c:
        c.connect("r2", expect_reason=0x00, username="bob", password=b"builder")


def test_bad_password_file_stops_start(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("alice:not-a-verifier\n")
    proc = subprocess.run([str(petrel_binary()), "serve", "--port", "0", "--password-file", str(bad),
                           "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "line 1" in proc.stderr


def test_passwd_file_format_and_delete(tmp_path):
    path = tmp_path / "users"
    subprocess.run([str(petrel_binary()), "passwd", str(path), "carol", "--password", "pw", "--iterations", "1000"],
                   check=True, timeout=30)
    subprocess.run([str(petrel_binary()), "passwd", str(path), "dave", "--password", "pw2"], check=True, timeout=30)
    assert (path.stat().st_mode & 0o777) == 0o600
    lines = path.read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["carol", "dave"]
    # user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, checked with hashlib.
    _, verifier = lines[0].split(":", 1)
    scheme, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert scheme == "SCRAM-SHA-256" and iterations == "1000"
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", base64.b64decode(salt), 1000)
    assert stored_key == hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    assert server_key == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    subprocess.run([str(petrel_binary()), "passwd", str(path), "carol", "--delete"], check=True, timeout=30)
    assert [line.split(":", 1)[0] for line in path.read_text().splitlines()] == ["dave"]
