"""JSON Web Tokens as passwords (`--jwt-key`, `--jwt-jwks`, `--jwt-audience`):
tokens signed with PyJWT by keys openssl makes at run time, sent by paho and
mosquitto_pub; the token's `sub` is the user and its `acl` claim its rules."""

from __future__ import annotations

import json
import subprocess
import time

import jwt
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from conftest import HOST, build_broker, finish, is_petrel
from helpers import uid, wait_until
from paho_client import PahoClient

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's JWT authentication")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("jwt")
    made = {}
    for name, args in (("rsa", ["genrsa", "-out", "{}", "2048"]),
                       ("ec", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "{}"])):
        private = directory / f"{name}.key"
        subprocess.run(["openssl", *[a.format(private) for a in args]], check=True, capture_output=True)
        public = directory / f"{name}.pub.pem"
        subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                       capture_output=True)
        made[name] = (private.read_bytes(), public)
    return made


def token(private_pem: bytes, algorithm: str, **claims) -> str:
    claims.setdefault("exp", int(time.time()) + 300)
    return jwt.encode(claims, serialization.load_pem_private_key(private_pem, None), algorithm=algorithm)


def connack(port: int, password: str | None, user: str = "x", protocol=mqtt.MQTTv5) -> int:
    got = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uid("j"), protocol=protocol)
    client.username_pw_set(user, password)
    client.on_connect = lambda c, u, flags, rc, props: got.update(rc=rc.value)
    client.connect(HOST, port)
    client.loop_start()
    try:
        assert wait_until(lambda: "rc" in got, 10)
        return got["rc"]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("kind,algorithm", [("rsa", "RS256"), ("ec", "ES256")])
def test_valid_expired_and_forged_tokens(tmp_path, keys, kind, algorithm):
    private, public = keys[kind]
    broker = build_broker(tmp_path / "b", {}, extra_args=["--jwt-key", str(public), "--max-login-delay", "0"]).start()
    try:
        assert connack(broker.port, token(private, algorithm, sub="alice")) == 0
        assert connack(broker.port, token(private, algorithm, sub="alice"), protocol=mqtt.MQTTv311) == 0
        assert connack(broker.port, token(private, algorithm, sub="alice", exp=int(time.time()) - 10)) == 0x86
        other = keys["ec" if kind == "rsa" else "rsa"][0]
        assert connack(broker.port, token(other, "ES256" if kind == "rsa" else "RS256", sub="alice")) == 0x86
        assert connack(broker.port, "garbage") == 0x86
        assert connack(broker.port, None) == 0x87
        assert "token refused" in broker.log_text()
    finally:
        finish(broker)


def test_acl_claim_and_audience_with_real_clients(tmp_path, keys):
    private, public = keys["ec"]
    broker = build_broker(tmp_path / "b", {}, extra_args=["--jwt-key", str(public), "--jwt-audience", "petrel",
                                                          "--max-login-delay", "0"]).start()
    try:
        alice_token = token(private, "ES256", sub="alice", aud="petrel",
                            acl={"sub": ["alice/#"], "pub": ["alice/out"]})
        bob_token = token(private, "ES256", sub="bob", aud="petrel", acl={"pub": ["alice/#"]})
        assert connack(broker.port, token(private, "ES256", sub="x", aud="other")) == 0x86
        alice = PahoClient(broker, protocol="v5")
        alice.client.username_pw_set("alice", alice_token)
        with alice.connect():
            alice.subscribe("alice/#", qos=1)
            result, mid = alice.client.subscribe([("bob/#", 1)])
            alice._wait_mid(mid, 5)
            assert [rc.value for rc in alice.subacks[mid]] == [0x87]
            # mosquitto_pub with bob's token: allowed to publish to alice/#
            subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-u", "bob", "-P", bob_token,
                            "-t", "alice/in", "-m", "from bob", "-q", "1"], check=True, timeout=20)
            assert alice.get().payload == b"from bob"
            # ... but nowhere else: an MQTT 5 PUBACK says 0x87.
            bob = PahoClient(broker, protocol="v5")
            bob.client.username_pw_set("bob", bob_token)
            acks = {}
            bob.client.on_publish = lambda client, userdata, mid, rc, props: acks.update({mid: rc.value})
            with bob.connect():
                info = bob.client.publish("elsewhere/x", b"no", qos=1)
                assert wait_until(lambda: info.mid in acks, 5)
                assert acks[info.mid] == 0x87
            alice.expect_none()
    finally:
        finish(broker)


def test_jwks_file(tmp_path, keys):
    from jwt.algorithms import ECAlgorithm
    private, public = keys["ec"]
    jwk = json.loads(ECAlgorithm.to_jwk(serialization.load_pem_public_key(public.read_bytes())))
    jwk.update(kid="key-1", alg="ES256", use="sig")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    broker = build_broker(tmp_path / "b", {}, extra_args=["--jwt-jwks", str(jwks), "--max-login-delay", "0"]).start()
    try:
        signed = jwt.encode({"sub": "alice", "exp": int(time.time()) + 300},
                            serialization.load_pem_private_key(private, None), algorithm="ES256",
                            headers={"kid": "key-1"})
        assert connack(broker.port, signed) == 0
    finally:
        finish(broker)
