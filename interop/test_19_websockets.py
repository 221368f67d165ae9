"""MQTT over WebSockets (`--listen ws://...`, `wss://...`; MQTT 5.0 section 6,
RFC 6455): paho-mqtt over ws and wss at 3.1.1 and 5, a custom path, and a
hand-written WebSocket client for what paho never sends: packets split across
frames and sharing a frame, ping, text and oversized frames, close frames, and
requests that must not upgrade."""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST, is_petrel
from helpers import topic
from tls_certs import make_pki
from transport_support import TransportClient, broker_registry, start_broker  # noqa: F401

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's --listen ws:// and wss://")

CONNECT = bytes([0x10, 0x10, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x04]) + b"ws-1"
CONNACK = bytes([0x20, 0x02, 0x00, 0x00])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class RawWebSocket:
    """The client side of RFC 6455 over a plain socket: masked frames out, frames in."""

    def __init__(self, port: int, path: str = "/mqtt", protocol: str | None = "mqtt"):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.response = head.decode(errors="replace")
        self.status = int(self.response.split(" ")[1]) if self.response else 0

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        header = bytes([(0x80 if fin else 0) | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        return first & 0x0F, self._read(length)

    def read_mqtt(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            opcode, payload = self.read_frame()
            assert opcode in (0x0, 0x2), f"opcode {opcode}"
            data += payload
        return data

    def closed(self) -> bool:
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionError, socket.timeout):
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_paho_over_websockets(tmp_path, broker_registry, pki, protocol, secure):
    """paho-mqtt with transport="websockets": messages cross between the
    WebSocket listener and the plain TCP one."""
    broker, ports = start_broker(broker_registry, tmp_path, {"web": "wss" if secure else "ws"},
                                 "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key))
    client = TransportClient(ports["web"], protocol=protocol, websockets=True, ca=pki.ca if secure else None)
    client.connect()
    try:
        t = topic("ws")
        client.subscribe(t)
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-t", t, "-m", "tcp->ws", "-q", "1"],
                       check=True, timeout=10)
        client.expect(t, b"tcp->ws")
        plain = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-t", t, "-C", "1",
                                  "-W", "10"], stdout=subprocess.PIPE, text=True)
        import time
        time.sleep(0.5)
        client.publish(t, b"ws->tcp")
        out, _ = plain.communicate(timeout=15)
        assert out.strip() == "ws->tcp"
    finally:
        client.close()


def test_custom_path_and_refused_requests(tmp_path, broker_registry):
    """A listener on /custom upgrades there only: another path gets 404, an
    upgrade without the mqtt subprotocol 400 [MQTT-6.0.0-3], and the server
    answers with the subprotocol it chose [MQTT-6.0.0-4]."""
    _, ports = start_broker(broker_registry, tmp_path, {"web": "ws/custom"})
    wrong = RawWebSocket(ports["web"], path="/mqtt")
    assert wrong.status == 404 and wrong.closed()
    no_protocol = RawWebSocket(ports["web"], path="/custom", protocol=None)
    assert no_protocol.status == 400 and no_protocol.closed()
    legacy = RawWebSocket(ports["web"], path="/custom", protocol="mqttv3.1")
    assert legacy.status == 101 and "sec-websocket-protocol: mqttv3.1" in legacy.response.lower()
    legacy.close()
    good = RawWebSocket(ports["web"], path="/custom?client=1", protocol="mqtt")
    assert good.status == 101
    good.send_frame(0x2, CONNECT)
    assert good.read_mqtt(4) == CONNACK
    good.close()


def test_packets_and_frames_are_independent(tmp_path, broker_registry):
    """A CONNECT split across a frame and its continuation, then CONNACK; then
    SUBSCRIBE and PUBLISH in one frame: the message comes back [MQTT-6.0.0-2]."""
    _, ports = start_broker(broker_registry, tmp_path, {"web": "ws"})
    ws = RawWebSocket(ports["web"])
    assert ws.status == 101
    ws.send_frame(0x2, CONNECT[:7], fin=False)
    ws.send_frame(0x0, CONNECT[7:])
    assert ws.read_mqtt(4) == CONNACK
    name = b"ws/one-frame"
    subscribe = bytes([0x82, 2 + 2 + len(name) + 1, 0x00, 0x01, 0x00, len(name)]) + name + b"\x00"
    publish = bytes([0x30, 2 + len(name) + 5, 0x00, len(name)]) + name + b"hello"
    ws.send_frame(0x2, subscribe + publish)
    answer = ws.read_mqtt(5 + len(publish))
    assert answer[:5] == bytes([0x90, 0x03, 0x00, 0x01, 0x00])
    assert answer[5:] == publish
    ws.send_frame(0x9, b"are you there")
    assert ws.read_frame() == (0xA, b"are you there")
    ws.send_frame(0x8, struct.pack("!H", 1000))
    assert ws.read_frame() == (0x8, struct.pack("!H", 1000))
    assert ws.closed()


def test_text_and_oversized_frames_close_the_connection(tmp_path, broker_registry):
    """A text frame is answered with close 1003 [MQTT-6.0.0-1]; a frame longer
    than --max-packet-size with close 1009; another client is not disturbed."""
    broker, ports = start_broker(broker_registry, tmp_path, {"web": "ws"}, options={"max_packet_size": 1024})
    bystander = TransportClient(ports["web"], websockets=True).connect()
    try:
        t = topic("bystander")
        bystander.subscribe(t)
        text = RawWebSocket(ports["web"])
        text.send_frame(0x1, b"CONNECT")
        assert text.read_frame() == (0x8, struct.pack("!H", 1003))
        assert text.closed()
        big = RawWebSocket(ports["web"])
        big.send_frame(0x2, b"\x00" * 4096)
        opcode, payload = big.read_frame()
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1009))
        assert big.closed()
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-t", t, "-m", "fine", "-q", "1"],
                       check=True, timeout=10)
        bystander.expect(t, b"fine")
    finally:
        bystander.close()


def test_stalled_upgrade_is_closed_after_the_connect_timeout(tmp_path, broker_registry):
    """A connection to the WebSocket port that never sends its HTTP request is
    closed after --connect-timeout."""
    import time
    _, ports = start_broker(broker_registry, tmp_path, {"web": "ws"}, options={"connect_timeout": 2})
    started = time.monotonic()
    with socket.create_connection((HOST, ports["web"]), timeout=10) as raw:
        assert raw.recv(64) == b""
    assert 1.5 <= time.monotonic() - started <= 5
