import MQTTWire
import NIOCore

extension Broker {
    /// Publishes a message the broker makes itself (its `$SYS/broker/...` topics, an operator's message from the
    /// admin API): routed to every matching subscription like a client's, each receiver's access rules applied on
    /// delivery, and retained when asked. Each subscriber gets it at min(`qos`, granted QoS) [MQTT-3.8.4-8]; `qos`
    /// is lowered to the broker's maximum QoS first. It is not counted as received from a client, has no
    /// publisher (so No Local never leaves it out), and a retained one is kept in memory only when `durable` is
    /// false. The caller validates `topic` (`MQTTTopic.isValidTopicName`). The wakers returned must be woken, as
    /// those of `tick(now:)`.
    public func publishOwnMessage(
        topic: String,
        payload: ByteBuffer,
        qos: QoS = .atMostOnce,
        retain: Bool,
        durable: Bool = false,
        now: NIODeadline
    ) -> BrokerTickResult {
        let message = Message(
            topic: topic,
            payload: payload,
            qos: min(qos, self.configuration.maximumQoS),
            retain: retain && self.configuration.retainAvailable
        )
        if message.retain {
            self.updateRetained(message, durable: durable)
        }
        let routed = self.route(message)
        return BrokerTickResult(wake: routed.wakers, logs: routed.logs)
    }
}
