import MQTTWire
import NIOCore

extension Broker {
    /// Publishes a message the broker makes itself (its `$SYS/broker/...` topics): routed to every matching
    /// subscription like a client's, each receiver's access rules applied on delivery, and retained when asked.
    /// It is not counted as received from a client, and a retained one is kept in memory only when `durable` is
    /// false. The wakers returned must be woken, as those of `tick(now:)`.
    public func publishOwnMessage(
        topic: String,
        payload: ByteBuffer,
        retain: Bool,
        durable: Bool = false,
        now: NIODeadline
    ) -> BrokerTickResult {
        let message = Message(topic: topic, payload: payload, qos: .atMostOnce, retain: retain)
        if retain && self.configuration.retainAvailable {
            self.updateRetained(message, durable: durable)
        }
        let routed = self.route(message)
        return BrokerTickResult(wake: routed.wakers, logs: routed.logs)
    }
}
