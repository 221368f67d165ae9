"""Brokers with TLS and WebSocket listeners next to their plain port, and paho
clients over any transport, for test_18_tls.py and test_19_websockets.py."""

from __future__ import annotations

import queue
import ssl
import threading
import time
from pathlib import Path
from typing import Optional

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST, build_broker, free_port, port_accepts

WAIT = 5.0


def start_broker(broker_factory_registry, workdir: Path, listeners: dict[str, str], *flags: str,
                 options: Optional[dict] = None):
    """Starts Petrel with its plain port plus `listeners` ({name: "mqtts" | "ws" | "wss" [+ "/path"]});
    returns the broker and {name: port}."""
    ports: dict[str, int] = {}
    args: list[str] = []
    for name, spec in listeners.items():
        scheme, _, path = spec.partition("/")
        port = free_port()
        ports[name] = port
        args += ["--listen", f"{scheme}://{HOST}:{port}" + (f"/{path}" if path else "")]
    broker = build_broker(workdir, dict(options or {}), extra_args=args + list(flags))
    broker_factory_registry(broker)
    broker.start()
    for port in ports.values():
        deadline = time.time() + 10
        while not port_accepts(port):
            assert time.time() < deadline, f"listener on {port} did not open:\n{broker.log_tail()}"
            time.sleep(0.05)
    return broker, ports


class TransportClient:
    """A paho-mqtt client over tcp or websockets, with or without TLS, that records what it receives."""

    def __init__(self, port: int, *, protocol=mqtt.MQTTv311, websockets: bool = False, path: str = "/mqtt",
                 ca: Optional[Path] = None, cert: Optional[Path] = None, key: Optional[Path] = None,
                 client_id: Optional[str] = None):
        self.port = port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  protocol=protocol, transport="websockets" if websockets else "tcp")
        if websockets:
            self.client.ws_set_options(path=path)
        if ca:
            self.client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                                keyfile=str(key) if key else None)
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connack = threading.Event()
        self.reason_code = None
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason_code = reason_code
        self.connack.set()

    def connect(self, expect_success: bool = True) -> "TransportClient":
        self.client.connect(HOST, self.port, keepalive=60)
        self.client.loop_start()
        assert self.connack.wait(WAIT), "no CONNACK"
        if expect_success:
            assert not self.reason_code.is_failure, f"refused: {self.reason_code}"
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=qos)
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def expect(self, topic: str, payload: bytes, timeout: float = WAIT) -> None:
        message = self.messages.get(timeout=timeout)
        assert (message.topic, message.payload) == (topic, payload)

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def tls_context(ca: Path, cert: Optional[Path] = None, key: Optional[Path] = None,
                maximum: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    if maximum:
        context.maximum_version = maximum
    return context


@pytest.fixture
def broker_registry(request):
    """Stops every broker a test started, whatever happens."""
    from conftest import finish
    started = []
    yield started.append
    for broker in started:
        finish(broker)
