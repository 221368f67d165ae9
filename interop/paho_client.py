"""A thin synchronous wrapper around paho-mqtt 2.x with bounded waits."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PROTOCOLS = {
    "v31": mqtt.MQTTv31,
    "v311": mqtt.MQTTv311,
    "v5": mqtt.MQTTv5,
}

WAIT = 5.0


def unique_id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class PahoClient:
    def __init__(self, broker, client_id: Optional[str] = None, protocol: str = "v311",
                 clean: bool = True, keepalive: int = 60, session_expiry: Optional[int] = None,
                 will: Optional[dict] = None):
        self.broker = broker
        self.protocol = protocol
        self.client_id = client_id if client_id is not None else unique_id(protocol)
        self.v5 = protocol == "v5"
        kwargs = dict(callback_api_version=CallbackAPIVersion.VERSION2,
                      client_id=self.client_id, protocol=PROTOCOLS[protocol])
        if not self.v5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(**kwargs)
        self.client.enable_logger()
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.disconnect_reason = None
        self.subacks: dict[int, list] = {}
        self._suback_events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        if will:
            self.client.will_set(**will)

    # -- callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = (flags, reason_code, properties)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code
        self.disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            self.subacks[mid] = reason_codes
            ev = self._suback_events.setdefault(mid, threading.Event())
        ev.set()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            ev = self._suback_events.setdefault(mid, threading.Event())
        ev.set()

    # -- operations
    def connect(self, timeout: float = WAIT) -> "PahoClient":
        kwargs = dict(host=self.broker.host, port=self.broker.port, keepalive=self.keepalive)
        if self.v5:
            kwargs["clean_start"] = self.clean
            if self.session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                kwargs["properties"] = props
        self.client.connect(**kwargs)
        self.client.loop_start()
        assert self.connected.wait(timeout), f"{self.client_id}: no CONNACK within {timeout}s"
        flags, rc, _ = self.connack
        assert not rc.is_failure, f"{self.client_id}: connect refused: {rc}"
        return self

    @property
    def session_present(self) -> bool:
        return bool(self.connack[0].session_present)

    def _wait_mid(self, mid: int, timeout: float):
        with self._lock:
            ev = self._suback_events.setdefault(mid, threading.Event())
        assert ev.wait(timeout), f"{self.client_id}: no SUBACK/UNSUBACK for mid {mid}"

    def subscribe(self, topic, qos: int = 0, timeout: float = WAIT, **v5opts):
        if self.v5 and v5opts:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            props = v5opts.pop("properties", None)
            opts = SubscribeOptions(qos=qos, **v5opts)
            result, mid = self.client.subscribe(topic, options=opts, properties=props)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        self._wait_mid(mid, timeout)
        codes = self.subacks[mid]
        for rc in codes:
            assert not rc.is_failure, f"subscription refused: {rc}"
        return codes

    def unsubscribe(self, topic, timeout: float = WAIT):
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS
        self._wait_mid(mid, timeout)

    def publish(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                properties: Optional[Properties] = None, timeout: float = WAIT):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"{self.client_id}: publish to {topic} not completed"
        return info

    def get(self, timeout: float = WAIT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout}s")

    def get_many(self, n: int, timeout: float = WAIT) -> list:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id}: got {len(out)} of {n} messages")
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                pass
        return out

    def expect_none(self, timeout: float = 0.7) -> None:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message on {msg.topic}: {msg.payload!r}")

    def disconnect(self, timeout: float = WAIT, properties: Optional[Properties] = None):
        if self.connected.is_set() and not self.disconnected.is_set():
            self.client.disconnect(properties=properties)
            self.disconnected.wait(timeout)
        self.client.loop_stop()

    def close(self):
        """Stop without a clean DISCONNECT (where possible)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.disconnect()
        except Exception:
            self.client.loop_stop()
