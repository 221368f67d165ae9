"""Small shared helpers for the interop tests."""

from __future__ import annotations

import subprocess
import time
import uuid

import mqtt_raw as raw
from conftest import is_petrel


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def topic(prefix: str = "it") -> str:
    """A topic no other test uses."""
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def raw_client(broker, version=raw.MQTT311, client_id=None, timeout=5.0, **connect_kwargs):
    """Open a raw connection and complete CONNECT/CONNACK."""
    c = raw.RawClient(broker.host, broker.port, version, timeout=timeout)
    c.connect(client_id if client_id is not None else uid("raw"), **connect_kwargs)
    return c


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def assert_closed_with(client: raw.RawClient, reason: int, timeout: float = 5.0):
    """The server closes the connection; an MQTT 5 DISCONNECT before the close
    must carry `reason`.  Petrel is required to send the DISCONNECT."""
    seen = client.expect_closed(timeout)
    discs = [p for p in seen if p.type == raw.DISCONNECT]
    allowed = reason if isinstance(reason, tuple) else (reason,)
    for d in discs:
        assert d.reason in allowed, f"DISCONNECT reason {d.reason:#x}, want {allowed}"
    if is_petrel() and client.version == raw.MQTT5:
        assert discs, f"expected DISCONNECT {allowed} before close"
    return discs


def keepalive_limit(keepalive: float) -> float:
    """Upper bound for a keep-alive disconnect: 1.5 x keep alive plus slack.
    Mosquitto checks keep alive on a coarse (about 5 s) timer."""
    from conftest import is_mosquitto
    return 1.5 * keepalive + (7.0 if is_mosquitto() else 2.5)


def curl(port: int, path: str) -> tuple[int, str]:
    """(HTTP status, body) as curl sees them; status 0 when nothing answers."""
    done = subprocess.run(
        ["curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body.strip()
