"""A small MQTT 3.1.1 client over a raw socket and a Petrel process runner, for the durability tests.

The client keeps the state a receiver must keep across reconnections (inbound QoS 2 packet identifiers awaiting
PUBREL), so that exactly-once delivery can be checked at the application level.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def petrel_binary() -> Path:
    env = os.environ.get("PETREL_BIN")
    path = Path(env) if env else REPO_ROOT / ".build" / "debug" / "petrel"
    return path if path.is_absolute() else REPO_ROOT / path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Petrel:
    """One petrel serve process on a data directory; every wait is bounded."""

    def __init__(self, data_dir: Path, port: int, extra: Optional[list[str]] = None, log: Optional[Path] = None):
        self.data_dir = data_dir
        self.port = port
        self.extra = extra or []
        self.log = log or data_dir.parent / f"petrel-{port}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.started_in: float = 0.0

    def start(self, timeout: float = 20.0) -> "Petrel":
        args = [str(petrel_binary()), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--log-level", "notice", *self.extra]
        begin = time.monotonic()
        self._log_file = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = begin + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"petrel exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    self.started_in = time.monotonic() - begin
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"petrel did not listen within {timeout}s:\n{self.log_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._close_log()
        return self.proc.returncode if self.proc else None

    def _close_log(self) -> None:
        f = getattr(self, "_log_file", None)
        if f:
            f.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def run_petrel(*args: str, timeout: float = 30.0, input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(petrel_binary()), *args], capture_output=True, timeout=timeout, input=input)


# MARK: - MQTT 3.1.1 on a raw socket

def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining_length(len(body)) + body


class Delivery:
    __slots__ = ("topic", "payload", "qos", "dup", "retain")

    def __init__(self, topic, payload, qos, dup, retain):
        self.topic, self.payload, self.qos, self.dup, self.retain = topic, payload, qos, dup, retain


class RawClient:
    """An MQTT 3.1.1 client. Receives with Method A of the spec for QoS 2: the packet identifier is kept from
    PUBLISH to PUBREL (across reconnections), and a PUBLISH with a kept identifier is not delivered again."""

    def __init__(self, client_id: str, on_ack: Optional[Callable[[int, int], None]] = None):
        self.client_id = client_id
        self.deliveries: list[Delivery] = []
        self.inbound_qos2: set[int] = set()
        self.on_ack = on_ack
        self.lock = threading.Lock()
        self.sock: Optional[socket.socket] = None
        self.closed = threading.Event()
        self.session_present = False
        self._acks: dict[int, threading.Event] = {}
        self._reader: Optional[threading.Thread] = None

    def connect(self, port: int, clean: bool, timeout: float = 5.0) -> "RawClient":
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.closed.clear()
        flags = 0x02 if clean else 0x00
        body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + _string(self.client_id)
        self.sock.sendall(_packet(0x10, body))
        head = self._read_exact(4)
        if head[0] != 0x20 or head[3] != 0:
            raise RuntimeError(f"CONNACK refused: {head!r}")
        self.session_present = bool(head[2] & 1)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        return self

    def _read_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return bytes(data)

    def _send(self, data: bytes) -> None:
        try:
            with self.lock:
                self.sock.sendall(data)
        except OSError:
            self.closed.set()

    def subscribe(self, topic: str, qos: int, packet_id: int = 1) -> None:
        event = threading.Event()
        self._acks[("suback", packet_id)] = event
        self._send(_packet(0x82, struct.pack("!H", packet_id) + _string(topic) + bytes([qos])))
        if not event.wait(5):
            raise RuntimeError("no SUBACK")

    def publish(self, topic: str, payload: bytes, qos: int, packet_id: int = 0, retain: bool = False) -> None:
        body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
        self._send(_packet(0x30 | (qos << 1) | (1 if retain else 0), body))

    def disconnect(self) -> None:
        self._send(b"\xe0\x00")
        self.close()

    def close(self) -> None:
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self._reader:
            self._reader.join(timeout=5)
        self.closed.set()

    def _read_loop(self) -> None:
        try:
            while True:
                first = self._read_exact(1)[0]
                length, multiplier = 0, 1
                while True:
                    byte = self._read_exact(1)[0]
                    length += (byte & 0x7F) * multiplier
                    multiplier *= 128
                    if not byte & 0x80:
                        break
                body = self._read_exact(length) if length else b""
                self._handle(first, body)
        except (OSError, ConnectionError, ValueError):
            self.closed.set()

    def _handle(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 3:
            qos = (first >> 1) & 3
            dup = bool(first & 0x08)
            tlen = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + tlen].decode()
            offset = 2 + tlen
            pid = 0
            if qos:
                pid = struct.unpack("!H", body[offset:offset + 2])[0]
                offset += 2
            delivery = Delivery(topic, body[offset:], qos, dup, bool(first & 1))
            if qos == 2:
                if pid not in self.inbound_qos2:
                    self.inbound_qos2.add(pid)
                    self.deliveries.append(delivery)
                self._send(_packet(0x50, struct.pack("!H", pid)))
            else:
                self.deliveries.append(delivery)
                if qos == 1:
                    self._send(_packet(0x40, struct.pack("!H", pid)))
        elif kind == 6:  # PUBREL
            pid = struct.unpack("!H", body[:2])[0]
            self.inbound_qos2.discard(pid)
            self._send(_packet(0x70, struct.pack("!H", pid)))
        elif kind == 9:  # SUBACK
            pid = struct.unpack("!H", body[:2])[0]
            event = self._acks.pop(("suback", pid), None)
            if event:
                event.set()
        elif kind in (4, 5, 7):  # PUBACK, PUBREC, PUBCOMP for our publishes
            pid = struct.unpack("!H", body[:2])[0]
            if kind == 5:
                self._send(_packet(0x62, struct.pack("!H", pid)))
            if self.on_ack:
                self.on_ack(kind, pid)


class StreamingPublisher:
    """Publishes `count` messages alternately at QoS 1 (topic d/q1) and QoS 2 (d/q2), payload = sequence number,
    with at most `window` unacknowledged. A message counts as acknowledged on PUBACK (QoS 1) or PUBREC (QoS 2)."""

    def __init__(self, port: int, count: int, window: int = 64, client_id: str = "streamer"):
        self.port = port
        self.count = count
        self.window = threading.Semaphore(window)
        self.acked: set[int] = set()
        self.sent = 0
        self.by_pid: dict[int, tuple[int, int]] = {}
        self.guard = threading.Lock()
        self.client = RawClient(client_id, on_ack=self._on_ack)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_ack(self, kind: int, pid: int) -> None:
        with self.guard:
            entry = self.by_pid.get(pid)
            if entry is None:
                return
            seq, qos = entry
            if kind == 4 or kind == 5:
                self.acked.add(seq)
            if (qos == 1 and kind == 4) or (qos == 2 and kind == 7):
                del self.by_pid[pid]
                self.window.release()

    def start(self) -> "StreamingPublisher":
        self.client.connect(self.port, clean=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        pid = 0
        for seq in range(self.count):
            while not self.window.acquire(timeout=0.2):
                if self.client.closed.is_set():
                    return
            if self.client.closed.is_set():
                return
            pid = pid % 65535 + 1
            qos = 1 + seq % 2
            with self.guard:
                self.by_pid[pid] = (seq, qos)
            self.client.publish(f"d/q{qos}", str(seq).encode(), qos, pid)
            self.sent = seq + 1

    def acked_count(self) -> int:
        with self.guard:
            return len(self.acked)
