"""A small raw MQTT client for byte-level interoperability tests.

It encodes the control packets of MQTT 3.1 (protocol level 3), 3.1.1 (4) and
5.0 (5), including MQTT 5 properties, and decodes incoming packets with a
streaming reader.  It deliberately does no protocol handling of its own: a
test sends exactly the bytes it wants and checks exactly what comes back.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

# Control packet types
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

MQTT31 = 3
MQTT311 = 4
MQTT5 = 5

# MQTT 5 property identifiers
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: _BYTE,
    MESSAGE_EXPIRY_INTERVAL: _U32,
    CONTENT_TYPE: _STR,
    RESPONSE_TOPIC: _STR,
    CORRELATION_DATA: _BIN,
    SUBSCRIPTION_IDENTIFIER: _VARINT,
    SESSION_EXPIRY_INTERVAL: _U32,
    ASSIGNED_CLIENT_IDENTIFIER: _STR,
    SERVER_KEEP_ALIVE: _U16,
    AUTHENTICATION_METHOD: _STR,
    AUTHENTICATION_DATA: _BIN,
    REQUEST_PROBLEM_INFORMATION: _BYTE,
    WILL_DELAY_INTERVAL: _U32,
    REQUEST_RESPONSE_INFORMATION: _BYTE,
    RESPONSE_INFORMATION: _STR,
    SERVER_REFERENCE: _STR,
    REASON_STRING: _STR,
    RECEIVE_MAXIMUM: _U16,
    TOPIC_ALIAS_MAXIMUM: _U16,
    TOPIC_ALIAS: _U16,
    MAXIMUM_QOS: _BYTE,
    RETAIN_AVAILABLE: _BYTE,
    USER_PROPERTY: _PAIR,
    MAXIMUM_PACKET_SIZE: _U32,
    WILDCARD_SUBSCRIPTION_AVAILABLE: _BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: _BYTE,
    SHARED_SUBSCRIPTION_AVAILABLE: _BYTE,
}


class ProtocolViolation(AssertionError):
    """Raised when the peer sends something the decoder cannot accept."""


# ---------------------------------------------------------------------------
# Primitive encoders


def varint(value: int) -> bytes:
    if value < 0 or value > 268_435_455:
        raise ValueError("variable byte integer out of range")
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def u16(value: int) -> bytes:
    return struct.pack("!H", value)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def utf8(value: str | bytes) -> bytes:
    """Length-prefixed UTF-8 string; raw bytes are passed through unchanged
    so tests can send ill-formed strings."""
    data = value if isinstance(value, bytes) else value.encode("utf-8")
    return u16(len(data)) + data


def binary(value: bytes) -> bytes:
    return u16(len(value)) + value


PropertyList = Iterable[tuple[int, Any]]


def encode_properties(props: Optional[PropertyList | dict]) -> bytes:
    """Encode MQTT 5 properties.  `props` is a dict {id: value} or a list of
    (id, value) pairs (use a list to repeat USER_PROPERTY in a given order).
    A USER_PROPERTY value is a (name, value) tuple."""
    if props is None:
        return varint(0)
    items = props.items() if isinstance(props, dict) else props
    body = bytearray()
    for pid, value in items:
        kind = PROPERTY_TYPES[pid]
        body += varint(pid)
        if kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += u16(value)
        elif kind == _U32:
            body += u32(value)
        elif kind == _VARINT:
            body += varint(value)
        elif kind == _STR:
            body += utf8(value)
        elif kind == _BIN:
            body += binary(value)
        elif kind == _PAIR:
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | (flags & 0x0F)]) + varint(len(body)) + body


# ---------------------------------------------------------------------------
# Packet builders


@dataclass
class Will:
    topic: str | bytes
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Optional[PropertyList | dict] = None


def connect(
    client_id: str | bytes = "",
    version: int = MQTT311,
    clean: bool = True,
    keepalive: int = 60,
    will: Optional[Will] = None,
    username: Optional[str] = None,
    password: Optional[bytes] = None,
    properties: Optional[PropertyList | dict] = None,
    protocol_name: Optional[bytes] = None,
    reserved_flag: bool = False,
) -> bytes:
    if protocol_name is None:
        protocol_name = b"MQIsdp" if version == MQTT31 else b"MQTT"
    flags = 0
    if reserved_flag:
        flags |= 0x01
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray(utf8(protocol_name) + bytes([version, flags]) + u16(keepalive))
    if version == MQTT5:
        body += encode_properties(properties)
    body += utf8(client_id)
    if will is not None:
        if version == MQTT5:
            body += encode_properties(will.properties)
        body += utf8(will.topic) + binary(will.payload)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(password)
    return packet(CONNECT, 0, bytes(body))


def publish(
    topic: str | bytes,
    payload: bytes = b"",
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    packet_id: Optional[int] = None,
    version: int = MQTT311,
    properties: Optional[PropertyList | dict] = None,
) -> bytes:
    flags = (0x08 if dup else 0) | ((qos & 0x03) << 1) | (0x01 if retain else 0)
    body = bytearray(utf8(topic))
    if qos > 0:
        body += u16(packet_id if packet_id is not None else 1)
    if version == MQTT5:
        body += encode_properties(properties)
    body += payload
    return packet(PUBLISH, flags, bytes(body))


def _ack(ptype: int, flags: int, packet_id: int, version: int,
         reason: Optional[int], properties) -> bytes:
    body = u16(packet_id)
    if version == MQTT5 and (reason not in (None, 0) or properties):
        body += bytes([reason or 0])
        if properties:
            body += encode_properties(properties)
    return packet(ptype, flags, body)


def puback(packet_id: int, version: int = MQTT311, reason: Optional[int] = None,
           properties=None) -> bytes:
    return _ack(PUBACK, 0, packet_id, version, reason, properties)


def pubrec(packet_id: int, version: int = MQTT311, reason: Optional[int] = None,
           properties=None) -> bytes:
    return _ack(PUBREC, 0, packet_id, version, reason, properties)


def pubrel(packet_id: int, version: int = MQTT311, reason: Optional[int] = None,
           properties=None, flags: int = 0x02) -> bytes:
    return _ack(PUBREL, flags, packet_id, version, reason, properties)


def pubcomp(packet_id: int, version: int = MQTT311, reason: Optional[int] = None,
            properties=None) -> bytes:
    return _ack(PUBCOMP, 0, packet_id, version, reason, properties)


def subscribe(
    packet_id: int,
    topics: Iterable[tuple[str | bytes, int]],
    version: int = MQTT311,
    properties: Optional[PropertyList | dict] = None,
    flags: int = 0x02,
) -> bytes:
    """`topics` is a list of (filter, options); options is the requested QoS
    for 3.1/3.1.1 and the full subscription options byte for 5.0."""
    body = bytearray(u16(packet_id))
    if version == MQTT5:
        body += encode_properties(properties)
    for topic, options in topics:
        body += utf8(topic) + bytes([options])
    return packet(SUBSCRIBE, flags, bytes(body))


def unsubscribe(packet_id: int, topics: Iterable[str | bytes], version: int = MQTT311,
                properties=None, flags: int = 0x02) -> bytes:
    body = bytearray(u16(packet_id))
    if version == MQTT5:
        body += encode_properties(properties)
    for topic in topics:
        body += utf8(topic)
    return packet(UNSUBSCRIBE, flags, bytes(body))


def pingreq() -> bytes:
    return packet(PINGREQ, 0, b"")


def disconnect(version: int = MQTT311, reason: int = 0, properties=None) -> bytes:
    if version == MQTT5 and (reason or properties):
        return packet(DISCONNECT, 0, bytes([reason]) + encode_properties(properties))
    return packet(DISCONNECT, 0, b"")


def auth(reason: int = 0x18, properties=None) -> bytes:
    """MQTT 5 AUTH (3.15): reason 0x00 Success, 0x18 Continue authentication,
    0x19 Re-authenticate; properties usually carry AUTHENTICATION_METHOD and
    AUTHENTICATION_DATA."""
    if reason == 0 and not properties:
        return packet(AUTH, 0, b"")
    return packet(AUTH, 0, bytes([reason]) + encode_properties(properties))


# subscription option helpers (MQTT 5)
NO_LOCAL = 0x04
RETAIN_AS_PUBLISHED = 0x08


def sub_options(qos: int, no_local: bool = False, rap: bool = False,
                retain_handling: int = 0) -> int:
    return qos | (NO_LOCAL if no_local else 0) | (RETAIN_AS_PUBLISHED if rap else 0) \
        | (retain_handling << 4)


# ---------------------------------------------------------------------------
# Decoding


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    # decoded fields (only those relevant for the type are filled)
    packet_id: Optional[int] = None
    reason: Optional[int] = None
    session_present: Optional[bool] = None
    properties: list = field(default_factory=list)
    topic: Optional[str] = None
    payload: bytes = b""
    qos: int = 0
    dup: bool = False
    retain: bool = False
    reasons: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    def prop(self, pid: int, default=None):
        for k, v in self.properties:
            if k == pid:
                return v
        return default

    def props(self, pid: int) -> list:
        return [v for k, v in self.properties if k == pid]

    def has_prop(self, pid: int) -> bool:
        return any(k == pid for k, _ in self.properties)

    def __repr__(self) -> str:
        parts = [self.name, f"flags=0x{self.flags:x}"]
        for attr in ("packet_id", "reason", "session_present", "topic", "reasons"):
            v = getattr(self, attr)
            if v not in (None, []):
                parts.append(f"{attr}={v!r}")
        if self.type == PUBLISH:
            parts.append(f"qos={self.qos} dup={int(self.dup)} retain={int(self.retain)}"
                         f" payload={self.payload[:40]!r}")
        if self.properties:
            parts.append(f"props={self.properties!r}")
        return "<" + " ".join(parts) + ">"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolViolation("truncated packet")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        mult, value = 1, 0
        for _ in range(4):
            b = self.byte()
            value += (b & 0x7F) * mult
            if not b & 0x80:
                return value
            mult *= 128
        raise ProtocolViolation("variable byte integer longer than 4 bytes")

    def string(self) -> str:
        return self.take(self.u16()).decode("utf-8")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def properties(self) -> list:
        length = self.varint()
        sub = _Reader(self.take(length))
        out = []
        while sub.remaining():
            pid = sub.varint()
            kind = PROPERTY_TYPES.get(pid)
            if kind is None:
                raise ProtocolViolation(f"unknown property 0x{pid:02x}")
            if kind == _BYTE:
                v = sub.byte()
            elif kind == _U16:
                v = sub.u16()
            elif kind == _U32:
                v = sub.u32()
            elif kind == _VARINT:
                v = sub.varint()
            elif kind == _STR:
                v = sub.string()
            elif kind == _BIN:
                v = sub.binary()
            else:
                v = (sub.string(), sub.string())
            out.append((pid, v))
        return out


def decode(ptype: int, flags: int, body: bytes, version: int) -> Packet:
    p = Packet(ptype, flags, body)
    r = _Reader(body)
    v5 = version == MQTT5
    if ptype == CONNACK:
        p.session_present = bool(r.byte() & 0x01)
        p.reason = r.byte()
        if v5 and r.remaining():
            p.properties = r.properties()
    elif ptype == PUBLISH:
        p.qos = (flags >> 1) & 0x03
        p.dup = bool(flags & 0x08)
        p.retain = bool(flags & 0x01)
        p.topic = r.string()
        if p.qos:
            p.packet_id = r.u16()
        if v5:
            p.properties = r.properties()
        p.payload = r.take(r.remaining())
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.packet_id = r.u16()
        p.reason = 0
        if v5 and r.remaining():
            p.reason = r.byte()
            if r.remaining():
                p.properties = r.properties()
    elif ptype in (SUBACK, UNSUBACK):
        p.packet_id = r.u16()
        if v5:
            p.properties = r.properties()
        p.reasons = list(r.take(r.remaining()))
    elif ptype == DISCONNECT:
        p.reason = 0
        if v5 and r.remaining():
            p.reason = r.byte()
            if r.remaining():
                p.properties = r.properties()
    elif ptype == AUTH:
        p.reason = 0
        if r.remaining():
            p.reason = r.byte()
            if r.remaining():
                p.properties = r.properties()
    return p


class StreamDecoder:
    """Accumulates bytes and yields complete packets."""

    def __init__(self, version: int):
        self.version = version
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self.buf += data
        out = []
        while True:
            if len(self.buf) < 2:
                return out
            length, mult, i = 0, 1, 1
            while True:
                if i >= len(self.buf):
                    return out
                b = self.buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
                if i > 4:
                    raise ProtocolViolation("remaining length longer than 4 bytes")
            if len(self.buf) < i + length:
                return out
            header = self.buf[0]
            body = bytes(self.buf[i:i + length])
            del self.buf[:i + length]
            out.append(decode(header >> 4, header & 0x0F, body, self.version))


# ---------------------------------------------------------------------------
# Client


class Closed(Exception):
    """The peer closed the connection."""


class RawClient:
    """A socket-level MQTT client.  All waits are bounded."""

    def __init__(self, host: str, port: int, version: int = MQTT311, timeout: float = 5.0):
        self.host, self.port, self.version = host, port, version
        self.default_timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = StreamDecoder(version)
        self.pending: list[Packet] = []
        self.closed = False

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def abort(self):
        """Close with a TCP RST instead of a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    # -- receiving
    def _fill(self, deadline: float) -> None:
        """Read once from the socket (waiting until deadline); raise Closed
        on EOF/reset and TimeoutError if nothing arrives."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data")
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError("no data")
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            raise Closed("connection reset")
        if not data:
            raise Closed("connection closed")
        self.pending.extend(self.decoder.feed(data))

    def read(self, timeout: Optional[float] = None) -> Packet:
        """Next packet; raises TimeoutError or Closed."""
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        while not self.pending:
            self._fill(deadline)
        return self.pending.pop(0)

    def expect(self, ptype: int, timeout: Optional[float] = None, skip: Iterable[int] = ()) -> Packet:
        """Read the next packet and assert its type.  Packet types listed in
        `skip` are silently dropped while waiting."""
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        skip = set(skip)
        while True:
            try:
                p = self.read(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {PACKET_NAMES[ptype]}")
            except Closed as e:
                raise AssertionError(f"connection closed while waiting for {PACKET_NAMES[ptype]}: {e}")
            if p.type in skip:
                continue
            assert p.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {p!r}"
            return p

    def expect_nothing(self, timeout: float = 0.5) -> None:
        """Assert that no packet arrives within timeout (connection may stay open)."""
        try:
            p = self.read(timeout)
        except TimeoutError:
            return
        except Closed:
            raise AssertionError("connection closed unexpectedly")
        raise AssertionError(f"unexpected packet {p!r}")

    def expect_closed(self, timeout: Optional[float] = None,
                      allow: Iterable[int] = (DISCONNECT,)) -> list[Packet]:
        """Wait until the peer closes the connection.  Packets of the types in
        `allow` may arrive first and are returned; anything else fails."""
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        allow = set(allow)
        seen = []
        while True:
            while self.pending:
                p = self.pending.pop(0)
                assert p.type in allow, f"expected close, got {p!r}"
                seen.append(p)
            try:
                self._fill(deadline)
            except Closed:
                seen.extend(self.pending)
                self.pending.clear()
                self.closed = True
                return seen
            except TimeoutError:
                raise AssertionError(f"connection still open after timeout (seen {seen!r})")
            except ProtocolViolation:
                # garbage from the peer counts as a failure
                raise

    def is_open(self, timeout: float = 0.3) -> bool:
        try:
            self._fill(time.monotonic() + timeout)
        except TimeoutError:
            return True
        except Closed:
            return False
        return True

    # -- convenience flows
    def connect(self, client_id: str | bytes = "", expect_reason: Optional[int] = 0,
                **kwargs) -> Packet:
        kwargs.setdefault("version", self.version)
        self.send(connect(client_id, **kwargs))
        ack = self.expect(CONNACK)
        if expect_reason is not None:
            assert ack.reason == expect_reason, f"CONNACK reason {ack.reason:#x}, want {expect_reason:#x}"
        return ack

    def subscribe(self, topics, packet_id: int = 1, properties=None) -> Packet:
        if isinstance(topics, str):
            topics = [(topics, 0)]
        self.send(subscribe(packet_id, topics, self.version, properties))
        ack = self.expect(SUBACK)
        assert ack.packet_id == packet_id
        return ack

    def publish(self, topic, payload: bytes = b"", qos: int = 0, retain: bool = False,
                packet_id: int = 1, properties=None, dup: bool = False) -> Optional[Packet]:
        """Publish and complete the QoS handshake (publisher side)."""
        self.send(publish(topic, payload, qos, retain, dup, packet_id, self.version, properties))
        if qos == 1:
            return self.expect_where(lambda q: q.type == PUBACK and q.packet_id == packet_id,
                                     what=f"PUBACK {packet_id}")
        if qos == 2:
            rec = self.expect_where(lambda q: q.type == PUBREC and q.packet_id == packet_id,
                                    what=f"PUBREC {packet_id}")
            if rec.reason is not None and rec.reason >= 0x80:
                return rec
            self.send(pubrel(packet_id, self.version))
            self.expect_where(lambda q: q.type == PUBCOMP and q.packet_id == packet_id,
                              what=f"PUBCOMP {packet_id}")
            return rec
        return None

    def receive(self, timeout: Optional[float] = None, ack: bool = True) -> Packet:
        """Receive one PUBLISH and (optionally) complete the subscriber side
        of its QoS handshake."""
        p = self.expect(PUBLISH, timeout)
        if ack and p.qos == 1:
            self.send(puback(p.packet_id, self.version))
        elif ack and p.qos == 2:
            self.send(pubrec(p.packet_id, self.version))
            self.expect_where(lambda q: q.type == PUBREL and q.packet_id == p.packet_id,
                              timeout, f"PUBREL {p.packet_id}")
            self.send(pubcomp(p.packet_id, self.version))
        return p

    def expect_where(self, predicate, timeout: Optional[float] = None,
                     what: str = "matching packet") -> Packet:
        """Wait for the first packet satisfying `predicate`; packets received
        before it that do not match are kept, in order, for later reads."""
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        stash = []
        try:
            while True:
                for i, q in enumerate(self.pending):
                    if predicate(q):
                        del self.pending[i]
                        return q
                stash.extend(self.pending)
                self.pending.clear()
                try:
                    self._fill(deadline)
                except TimeoutError:
                    raise AssertionError(f"timed out waiting for {what}")
                except Closed as e:
                    raise AssertionError(f"connection closed while waiting for {what}: {e}")
        finally:
            self.pending[:0] = stash

    def ping(self, timeout: Optional[float] = None) -> Packet:
        self.send(pingreq())
        return self.expect(PINGRESP, timeout)

    def disconnect(self, reason: int = 0, properties=None) -> None:
        try:
            self.send(disconnect(self.version, reason, properties))
        except OSError:
            pass
        self.close()
