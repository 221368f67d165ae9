"""The petrel command line: --help, --version, serve options, signals."""

import re
import signal
import subprocess
import tempfile
import time

import pytest

import mqtt_raw as raw
from conftest import build_broker, is_petrel, petrel_binary
from helpers import raw_client, uid

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel only: petrel command line")


def run(*args, timeout=10):
    binary = petrel_binary()
    if not binary.exists():
        pytest.fail(f"Petrel binary not found at {binary}")
    # A scratch working directory: a broker started here keeps its default ./petrel-data out of the checkout.
    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run([str(binary), *args], capture_output=True, timeout=timeout, text=True, cwd=scratch)


def test_help():
    """`petrel --help` exits 0 and documents serve and its options."""
    res = run("--help")
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    assert "serve" in text


def test_serve_help_lists_options():
    """`petrel serve --help` lists every documented option."""
    res = run("serve", "--help")
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for flag in ("--host", "--port", "--max-packet-size", "--receive-maximum", "--max-inflight",
                 "--max-queued-messages", "--max-queued-bytes", "--queue-qos0",
                 "--connect-timeout", "--server-keep-alive", "--max-session-expiry",
                 "--max-topic-levels", "--log-level"):
        assert flag in text, f"{flag} missing from serve --help"


def test_version():
    """`petrel --version` exits 0 and prints a version number."""
    res = run("--version")
    assert res.returncode == 0, res.stderr
    assert re.search(r"\d+\.\d+", res.stdout + res.stderr), res.stdout


def test_unknown_option_fails():
    """An unknown option is a usage error (non-zero exit, message on stderr)."""
    res = run("serve", "--no-such-option")
    assert res.returncode != 0
    assert res.stderr.strip()


def test_invalid_value_fails():
    """A non-numeric port is rejected."""
    res = run("serve", "--port", "notaport")
    assert res.returncode != 0


def test_negative_max_topic_levels_fails():
    """--max-topic-levels takes 0 (no limit) or a positive number of levels."""
    res = run("serve", "--max-topic-levels", "-1")
    assert res.returncode != 0
    assert "--max-topic-levels" in res.stderr


def test_invalid_log_level_fails():
    """--log-level accepts only the documented levels."""
    res = run("serve", "--log-level", "loud")
    assert res.returncode != 0


def _serve(tmp_path, args=(), options=None):
    b = build_broker(tmp_path, options or {}, list(args))
    return b.start()


def test_logs_listener_line(tmp_path):
    """Once listening, petrel logs a line naming the host and port."""
    b = _serve(tmp_path)
    try:
        assert any("127.0.0.1" in line and str(b.port) in line
                   for line in b.log_text().splitlines()), b.log_text()
    finally:
        assert b.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero(tmp_path, sig):
    """SIGTERM and SIGINT stop the server with exit code 0."""
    b = _serve(tmp_path)
    assert b.stop(sig) == 0, b.log_tail()


def test_sigterm_with_connected_clients(tmp_path):
    """SIGTERM with connected clients (and a v5 client) still exits 0 promptly;
    MQTT 5 clients may receive DISCONNECT 0x8B (Server shutting down)."""
    b = _serve(tmp_path)
    c1 = raw_client(b, raw.MQTT311)
    c5 = raw_client(b, raw.MQTT5)
    c5.subscribe([("shut/down", 1)])
    try:
        start = time.monotonic()
        assert b.stop(signal.SIGTERM) == 0, b.log_tail()
        assert time.monotonic() - start < 10
        seen = c5.expect_closed(5)
        for p in seen:
            assert p.reason == 0x8B
        c1.expect_closed(5, allow=())
    finally:
        c1.close()
        c5.close()


def test_bare_petrel_serves(tmp_path):
    """`petrel` with no subcommand is `petrel serve`."""
    from conftest import Broker, free_port
    port = free_port()
    b = Broker("petrel", [str(petrel_binary()), "--host", "127.0.0.1", "--port", str(port),
                          "--data-dir", str(tmp_path / "data")],
               port, tmp_path / "broker.log", {}, tmp_path)
    b.start()
    try:
        with raw_client(b) as c:
            c.ping()
    finally:
        assert b.stop() == 0


def test_port_in_use_fails(tmp_path):
    """Starting on a port already in use exits non-zero with a message."""
    b = _serve(tmp_path / "a")
    try:
        res = run("serve", "--host", "127.0.0.1", "--port", str(b.port), timeout=15)
        assert res.returncode != 0
        assert (res.stdout + res.stderr).strip()
    finally:
        assert b.stop() == 0


@pytest.mark.parametrize("level", ["trace", "debug", "info", "notice", "warning", "error"])
def test_log_levels_accepted(tmp_path, level):
    """Every documented --log-level starts the server."""
    b = _serve(tmp_path, options={"log_level": level})
    try:
        with raw_client(b) as c:
            c.ping()
    finally:
        assert b.stop() == 0


def test_max_session_expiry_caps_session(tmp_path):
    """--max-session-expiry caps the Session Expiry Interval; MQTT 5 CONNACK
    returns the granted value (section 3.2.2.3.2)."""
    b = _serve(tmp_path, options={"max_session_expiry": 1})
    try:
        with raw.RawClient(b.host, b.port, raw.MQTT5) as c:
            ack = c.connect(uid(), properties={raw.SESSION_EXPIRY_INTERVAL: 3600})
            assert ack.prop(raw.SESSION_EXPIRY_INTERVAL) == 1
    finally:
        assert b.stop() == 0


def test_receive_maximum_enforced(tmp_path):
    """--receive-maximum 2: a client exceeding it gets DISCONNECT 0x93
    (Receive Maximum exceeded) [MQTT-3.3.4-9] (5.0 numbering)."""
    b = _serve(tmp_path, options={"receive_maximum": 2})
    try:
        with raw.RawClient(b.host, b.port, raw.MQTT5) as c:
            ack = c.connect(uid())
            assert ack.prop(raw.RECEIVE_MAXIMUM) == 2
            for i in range(3):
                c.send(raw.publish("rm/x", b"x", qos=2, packet_id=i + 1, version=raw.MQTT5))
            seen = c.expect_closed(5, allow=(raw.DISCONNECT, raw.PUBREC))
            assert [p.reason for p in seen if p.type == raw.DISCONNECT] == [0x93]
    finally:
        assert b.stop() == 0
