import NIOCore
import Synchronization

/// One application message as the broker holds it: immutable and shared by every delivery to every subscriber,
/// so the payload bytes are never copied on the way through the broker.
public final class Message: Sendable {
    public let topic: String
    /// A slice of the buffer the message arrived in.
    public let payload: ByteBuffer
    /// The QoS the message was published (or stored) with; each delivery may lower it.
    public let qos: QoS
    /// The RETAIN flag as published.
    public let retain: Bool
    /// Only the properties forwarded to subscribers (spec 3.3.2.3): Payload Format Indicator, Content Type,
    /// Response Topic, Correlation Data and User Properties. Message Expiry Interval is kept as `expiresAt` and
    /// recomputed per delivery; Topic Alias and Subscription Identifiers are per connection.
    public let properties: MQTTProperties
    /// When the Message Expiry Interval runs out, in the engine's clock; nil when the message does not expire.
    public let expiresAt: NIODeadline?
    /// The client that published it (for No Local); nil for messages the broker makes itself.
    public let publisherClientIdentifier: String?
    /// A cache the server keeps encoded bodies in, keyed per protocol version (or any key it chooses).
    public let encodingCache: EncodedPublishCache

    public init(
        topic: String,
        payload: ByteBuffer,
        qos: QoS,
        retain: Bool,
        properties: MQTTProperties = .init(),
        expiresAt: NIODeadline? = nil,
        publisherClientIdentifier: String? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiresAt = expiresAt
        self.publisherClientIdentifier = publisherClientIdentifier
        self.encodingCache = EncodedPublishCache()
    }

    /// Builds the broker's copy of an inbound PUBLISH (or Will), keeping only the forwarded properties.
    convenience init(
        topic: String,
        payload: ByteBuffer,
        qos: QoS,
        retain: Bool,
        inboundProperties: MQTTProperties,
        publisherClientIdentifier: String?,
        now: NIODeadline
    ) {
        var forwarded = MQTTProperties()
        forwarded.payloadFormatIndicator = inboundProperties.payloadFormatIndicator
        forwarded.contentType = inboundProperties.contentType
        forwarded.responseTopic = inboundProperties.responseTopic
        forwarded.correlationData = inboundProperties.correlationData
        forwarded.userProperties = inboundProperties.userProperties
        let expiresAt = inboundProperties.messageExpiryInterval.map { now + .seconds(Int64($0)) }
        self.init(
            topic: topic,
            payload: payload,
            qos: qos,
            retain: retain,
            properties: forwarded,
            expiresAt: expiresAt,
            publisherClientIdentifier: publisherClientIdentifier
        )
    }

    /// The bytes a queued copy of this message is charged for against `maximumQueuedBytes`.
    var accountedSize: Int { self.payload.readableBytes + self.topic.utf8.count }

    func isExpired(at now: NIODeadline) -> Bool {
        guard let expiresAt else { return false }
        return now >= expiresAt
    }

    /// Whole seconds left before expiry, rounded up, for the outbound Message Expiry Interval [MQTT-3.3.2-6].
    func remainingExpiryInterval(at now: NIODeadline) -> UInt32? {
        guard let expiresAt else { return nil }
        let left = (expiresAt - now).nanoseconds
        guard left > 0 else { return 0 }
        let seconds = (left + 999_999_999) / 1_000_000_000
        return UInt32(clamping: seconds)
    }
}

/// A small lock-protected box in which the server keeps the encoded body of a `Message`, per key (for example
/// per protocol version), so a message fanned out to many subscribers is encoded once per version.
///
/// A message is nearly always sent with one or two keys (one protocol version, with or without a packet
/// identifier): two slots are kept inline, and a dictionary is only made for a third key. The box lives inside
/// the `Message` (it is not copyable), which spares an allocation per message.
public struct EncodedPublishCache: ~Copyable, Sendable {
    private struct Slots {
        var firstKey = Int.min
        var first: ByteBuffer?
        var secondKey = Int.min
        var second: ByteBuffer?
        var more: [Int: ByteBuffer]?
    }

    private let storage = Mutex<Slots>(Slots())

    public init() {}

    public func value(for key: Int) -> ByteBuffer? {
        self.storage.withLock { slots in
            if slots.firstKey == key { return slots.first }
            if slots.secondKey == key { return slots.second }
            return slots.more?[key]
        }
    }

    public func set(_ buffer: ByteBuffer, for key: Int) {
        self.storage.withLock { slots in
            if slots.first == nil || slots.firstKey == key {
                slots.firstKey = key
                slots.first = buffer
            } else if slots.second == nil || slots.secondKey == key {
                slots.secondKey = key
                slots.second = buffer
            } else {
                var more = slots.more ?? [:]
                more[key] = buffer
                slots.more = more
            }
        }
    }
}

/// One delivery of a shared `Message` to one subscriber.
public struct OutboundPublish: Sendable {
    public let message: Message
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present exactly when `qos > 0` [MQTT-2.2.1-2].
    public var packetIdentifier: UInt16?
    /// Identifiers of every subscription of this session the message matched (v5) [MQTT-3.3.4-3].
    public var subscriptionIdentifiers: [UInt32]
    /// Remaining seconds of the Message Expiry Interval [MQTT-3.3.2-6]; nil when the message does not expire.
    public var messageExpiryInterval: UInt32?
    /// The outbound Topic Alias of this delivery (v5), set by `ConnectionStateMachine.prepareForSending`.
    public var topicAlias: UInt16?
    /// The topic is left empty: the client knows it by `topicAlias` [MQTT-3.3.2-11].
    public var omitsTopic: Bool = false

    public init(
        message: Message,
        qos: QoS,
        retain: Bool,
        dup: Bool = false,
        packetIdentifier: UInt16? = nil,
        subscriptionIdentifiers: [UInt32] = [],
        messageExpiryInterval: UInt32? = nil
    ) {
        self.message = message
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetIdentifier = packetIdentifier
        self.subscriptionIdentifiers = subscriptionIdentifiers
        self.messageExpiryInterval = messageExpiryInterval
    }

    /// Builds the PUBLISH for `version`. Properties are only set for MQTT 5: the message's forwarded properties
    /// plus this delivery's subscription identifiers and remaining expiry interval.
    public func packet(for version: ProtocolVersion) -> MQTTPacket.Publish {
        var properties = MQTTProperties()
        if version.isV5 {
            properties = self.message.properties
            properties.subscriptionIdentifiers = self.subscriptionIdentifiers
            properties.messageExpiryInterval = self.messageExpiryInterval
            properties.topicAlias = self.topicAlias
        }
        return MQTTPacket.Publish(
            topic: version.isV5 && self.omitsTopic ? "" : self.message.topic,
            payload: self.message.payload,
            qos: self.qos,
            retain: self.retain,
            dup: self.dup,
            packetIdentifier: self.qos == .atMostOnce ? nil : self.packetIdentifier,
            properties: properties
        )
    }
}
