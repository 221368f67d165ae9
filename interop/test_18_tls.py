"""MQTT over TLS (`--listen mqtts://...`): mosquitto_pub / mosquitto_sub and
paho-mqtt over TLS 1.2 and 1.3, mutual TLS with valid, missing, expired and
untrusted client certificates, the certificate's name as the user name,
certificate reload on SIGHUP under a connected client, and hostile input on the
TLS and plain ports. Certificates are made at run time (tls_certs.py)."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST, is_petrel
from helpers import topic, wait_until
from tls_certs import make_pki
from transport_support import TransportClient, broker_registry, start_broker, tls_context  # noqa: F401

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's --listen and --tls-* options")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_flags(pki, *extra: str) -> list[str]:
    return ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), *extra]


def mosquitto(tool: str, port: int, pki, *args: str, cert=None, timeout: float = 10) -> subprocess.CompletedProcess:
    command = [tool, "-h", HOST, "-p", str(port), "--cafile", str(pki.ca), *args]
    if cert:
        command += ["--cert", str(cert.cert), "--key", str(cert.key)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def start_sub(port: int, pki, filter_: str, *args: str, cert=None) -> subprocess.Popen:
    command = ["mosquitto_sub", "-h", HOST, "-p", str(port), "--cafile", str(pki.ca), "-t", filter_,
               "-C", "1", "-W", "10", "-v", *args]
    if cert:
        command += ["--cert", str(cert.cert), "--key", str(cert.key)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def connected_log(broker, count: int = 1, timeout: float = 5) -> None:
    assert wait_until(lambda: broker.log_text().count("Client connected") >= count, timeout), broker.log_tail()


@pytest.mark.parametrize("version", ["tlsv1.2", "tlsv1.3"])
def test_mosquitto_clients_over_tls(tmp_path, broker_registry, pki, version):
    """mosquitto_sub and mosquitto_pub over TLS: a message crosses between the
    TLS listener and the plain one in both directions."""
    broker, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"}, *tls_flags(pki))
    t = topic("tls")
    sub = start_sub(ports["tls"], pki, t, "--tls-version", version)
    connected_log(broker)
    published = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-t", t, "-m", "plain->tls",
                                "-q", "1"], capture_output=True, text=True, timeout=10)
    assert published.returncode == 0, published.stderr
    out, err = sub.communicate(timeout=15)
    assert out.strip() == f"{t} plain->tls", err

    plain_sub = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-t", t, "-C", "1",
                                  "-W", "10", "-v"], stdout=subprocess.PIPE, text=True)
    connected_log(broker, 3)
    result = mosquitto("mosquitto_pub", ports["tls"], pki, "--tls-version", version, "-t", t, "-m", "tls->plain",
                       "-q", "1")
    assert result.returncode == 0, result.stderr
    out, _ = plain_sub.communicate(timeout=15)
    assert out.strip() == f"{t} tls->plain"


def test_minimum_version_refuses_older_clients(tmp_path, broker_registry, pki):
    """--tls-min-version 1.3: a client that offers at most TLS 1.2 fails the
    handshake, and the refusal is logged with its reason."""
    broker, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"},
                                 *tls_flags(pki, "--tls-min-version", "1.3"))
    with socket.create_connection((HOST, ports["tls"]), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            tls_context(pki.ca, maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname="localhost")
    with socket.create_connection((HOST, ports["tls"]), timeout=5) as raw:
        with tls_context(pki.ca).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.3"
    assert wait_until(lambda: "TLS handshake failed" in broker.log_text(), 5), broker.log_tail()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
def test_paho_over_tls(tmp_path, broker_registry, pki, protocol):
    """paho-mqtt with tls_set: subscribe and publish at QoS 1 over TLS."""
    _, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"}, *tls_flags(pki))
    client = TransportClient(ports["tls"], protocol=protocol, ca=pki.ca).connect()
    try:
        t = topic("paho-tls")
        client.subscribe(t)
        client.publish(t, b"over tls")
        client.expect(t, b"over tls")
    finally:
        client.close()


def test_mutual_tls(tmp_path, broker_registry, pki):
    """--tls-require-client-cert: a certificate from the CA is accepted; none,
    an expired one and one from another CA fail the handshake, each logged."""
    broker, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"},
                                 *tls_flags(pki, "--tls-ca", str(pki.ca), "--tls-require-client-cert"))
    t = topic("mtls")
    accepted = mosquitto("mosquitto_pub", ports["tls"], pki, "-t", t, "-m", "x", cert=pki.alice)
    assert accepted.returncode == 0, accepted.stderr
    for name, cert in [("none", None), ("expired", pki.expired), ("untrusted", pki.untrusted)]:
        refused = mosquitto("mosquitto_pub", ports["tls"], pki, "-t", t, "-m", "x", cert=cert)
        assert refused.returncode != 0, f"{name}: accepted"
    # Each refusal is logged once its handshake has failed, which may come after the client gave up.
    reasons = ("tls.reason=certificate expired", "tls.reason=certificate not issued by a trusted CA")
    assert wait_until(lambda: all(reason in broker.log_text() for reason in reasons), 5), broker.log_tail()
    log = broker.log_text()
    assert log.count("Client connected") == 1


def test_identity_as_username(tmp_path, broker_registry, pki):
    """--tls-use-identity-as-username: the certificate's CN is the user name
    (its password is not checked, anonymous clients are not allowed); a client
    without a certificate is refused with 0x87 (MQTT 5) or 5 (3.1.1)."""
    broker, ports = start_broker(
        broker_registry, tmp_path, {"tls": "mqtts"},
        *tls_flags(pki, "--tls-ca", str(pki.ca), "--tls-use-identity-as-username", "--no-allow-anonymous"))
    client = TransportClient(ports["tls"], protocol=mqtt.MQTTv5, ca=pki.ca, cert=pki.bob.cert, key=pki.bob.key)
    client.client.username_pw_set("someone-else", "wrong")
    client.connect()
    client.close()
    assert wait_until(lambda: "mqtt.user=bob " in broker.log_text(), 5), broker.log_tail()

    for protocol, code in [(mqtt.MQTTv5, 0x87), (mqtt.MQTTv311, 5)]:
        anonymous = TransportClient(ports["tls"], protocol=protocol, ca=pki.ca)
        try:
            anonymous.connect(expect_success=False)
            assert anonymous.reason_code.is_failure
            assert anonymous.reason_code.value == code or (protocol == mqtt.MQTTv311 and
                                                            anonymous.reason_code.getName() == "Not authorized")
        finally:
            anonymous.client.loop_stop()


def test_plain_mqtt_on_the_tls_port_and_tls_on_the_plain_port(tmp_path, broker_registry, pki):
    """Each listener refuses the other's protocol and goes on serving."""
    broker, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"}, *tls_flags(pki))
    connect = bytes([0x10, 0x0C, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x00])
    with socket.create_connection((HOST, ports["tls"]), timeout=5) as raw:
        raw.sendall(connect)
        answer = raw.recv(64)
        assert not answer.startswith(b"\x20"), "a CONNACK in clear text on the TLS port"
    with socket.create_connection((HOST, broker.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls_context(pki.ca).wrap_socket(raw, server_hostname="localhost")
    assert wait_until(lambda: "TLS handshake failed" in broker.log_text(), 5)
    result = mosquitto("mosquitto_pub", ports["tls"], pki, "-t", topic("after"), "-m", "still here")
    assert result.returncode == 0, result.stderr


def test_stalled_handshake_is_closed_after_the_connect_timeout(tmp_path, broker_registry, pki):
    """A TCP connection to the TLS port that never sends a ClientHello is
    closed at --connect-timeout: without a handshake there is nothing to
    flush, so it is not kept reading the way an MQTT connection is."""
    _, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"}, *tls_flags(pki),
                            options={"connect_timeout": 2})
    started = time.monotonic()
    with socket.create_connection((HOST, ports["tls"]), timeout=10) as raw:
        assert raw.recv(64) == b""
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 3.9, elapsed


def test_certificate_reload_on_sighup(tmp_path, broker_registry, pki):
    """SIGHUP re-reads the certificate and key: new connections get the new
    certificate, a connected client stays connected and keeps receiving; a
    broken file on reload is logged and the last good certificate stays."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    broker, ports = start_broker(broker_registry, tmp_path, {"tls": "mqtts"},
                                 "--tls-cert", str(cert), "--tls-key", str(key))

    def served_certificate() -> bytes:
        with socket.create_connection((HOST, ports["tls"]), timeout=5) as raw:
            with tls_context(pki.ca).wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.getpeercert(binary_form=True)

    def der(path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(path.read_text())

    assert served_certificate() == der(pki.server.cert)
    t = topic("reload")
    client = TransportClient(ports["tls"], ca=pki.ca).connect()
    try:
        client.subscribe(t)
        cert.write_bytes(pki.server2.cert.read_bytes())
        key.write_bytes(pki.server2.key.read_bytes())
        broker.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Reloaded the TLS certificate" in broker.log_text(), 5), broker.log_tail()
        assert served_certificate() == der(pki.server2.cert)
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-t", t, "-m", "after reload",
                        "-q", "1"], check=True, timeout=10)
        client.expect(t, b"after reload")
        assert not client.disconnected.is_set()

        cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        broker.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Reloading the TLS certificate failed" in broker.log_text(), 5), broker.log_tail()
        assert served_certificate() == der(pki.server2.cert)
    finally:
        client.close()


def test_tls_files_are_checked_at_start(tmp_path, pki):
    """A TLS listener without certificate and key, or with a missing file,
    stops the start with a clear error."""
    from conftest import petrel_binary
    base = [str(petrel_binary()), "serve", "--storage", "memory", "--listen", f"mqtts://{HOST}:0"]
    without = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert without.returncode != 0 and "--tls-cert" in without.stderr
    missing = subprocess.run(base + ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki.server.key)],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "nope.pem" in missing.stderr
