import NIOCore

/// Every MQTT control packet of protocol levels 3 (3.1), 4 (3.1.1) and 5, in both directions.
///
/// The same value encodes differently per protocol version: MQTT 5 adds reason codes and properties,
/// which the encoder leaves out for 3.1 / 3.1.1.
public enum MQTTPacket: Hashable, Sendable {
    case connect(Connect)
    case connack(ConnAck)
    case publish(Publish)
    case puback(PubAck)
    case pubrec(PubAck)
    case pubrel(PubAck)
    case pubcomp(PubAck)
    case subscribe(Subscribe)
    case suback(SubAck)
    case unsubscribe(Unsubscribe)
    case unsuback(UnsubAck)
    case pingreq
    case pingresp
    case disconnect(Disconnect)
    case auth(Auth)

    public var type: PacketType {
        switch self {
        case .connect: return .connect
        case .connack: return .connack
        case .publish: return .publish
        case .puback: return .puback
        case .pubrec: return .pubrec
        case .pubrel: return .pubrel
        case .pubcomp: return .pubcomp
        case .subscribe: return .subscribe
        case .suback: return .suback
        case .unsubscribe: return .unsubscribe
        case .unsuback: return .unsuback
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect
        case .auth: return .auth
        }
    }
}

// MARK: - CONNECT

extension MQTTPacket {
    /// The Will Message a client registers in CONNECT (spec 3.1.2.5, 3.1.3.2).
    public struct Will: Hashable, Sendable {
        public var topic: String
        public var payload: ByteBuffer
        public var qos: QoS
        public var retain: Bool
        /// Will properties (MQTT 5 only): will delay interval, payload format, message expiry, content type,
        /// response topic, correlation data, user properties.
        public var properties: MQTTProperties

        public init(
            topic: String,
            payload: ByteBuffer,
            qos: QoS = .atMostOnce,
            retain: Bool = false,
            properties: MQTTProperties = .init()
        ) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.properties = properties
        }
    }

    public struct Connect: Hashable, Sendable {
        public var protocolVersion: ProtocolVersion
        /// Clean Session (3.1.1) or Clean Start (5).
        public var cleanStart: Bool
        /// Seconds; 0 turns keep alive off.
        public var keepAlive: UInt16
        public var clientIdentifier: String
        public var will: Will?
        public var username: String?
        public var password: ByteBuffer?
        public var properties: MQTTProperties

        public init(
            protocolVersion: ProtocolVersion,
            clientIdentifier: String,
            cleanStart: Bool = true,
            keepAlive: UInt16 = 60,
            will: Will? = nil,
            username: String? = nil,
            password: ByteBuffer? = nil,
            properties: MQTTProperties = .init()
        ) {
            self.protocolVersion = protocolVersion
            self.clientIdentifier = clientIdentifier
            self.cleanStart = cleanStart
            self.keepAlive = keepAlive
            self.will = will
            self.username = username
            self.password = password
            self.properties = properties
        }
    }

    public struct ConnAck: Hashable, Sendable {
        public var sessionPresent: Bool
        /// For 3.1 / 3.1.1 this is mapped to a return code with `LegacyConnectReturnCode(_:)`.
        public var reasonCode: ReasonCode
        public var properties: MQTTProperties

        public init(sessionPresent: Bool = false, reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
            self.sessionPresent = sessionPresent
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }
}

// MARK: - PUBLISH and its acknowledgements

extension MQTTPacket {
    public struct Publish: Hashable, Sendable {
        public var dup: Bool
        public var qos: QoS
        public var retain: Bool
        /// May be empty in MQTT 5 when a topic alias stands for it.
        public var topic: String
        /// Present exactly when qos > 0 [MQTT-2.2.1-2].
        public var packetIdentifier: UInt16?
        public var properties: MQTTProperties
        /// A slice of the received buffer; never copied on the way through the broker.
        public var payload: ByteBuffer

        public init(
            topic: String,
            payload: ByteBuffer,
            qos: QoS = .atMostOnce,
            retain: Bool = false,
            dup: Bool = false,
            packetIdentifier: UInt16? = nil,
            properties: MQTTProperties = .init()
        ) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.dup = dup
            self.packetIdentifier = packetIdentifier
            self.properties = properties
        }
    }

    /// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
    public struct PubAck: Hashable, Sendable {
        public var packetIdentifier: UInt16
        public var reasonCode: ReasonCode
        public var properties: MQTTProperties

        public init(packetIdentifier: UInt16, reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
            self.packetIdentifier = packetIdentifier
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }
}

// MARK: - SUBSCRIBE / UNSUBSCRIBE

extension MQTTPacket {
    /// MQTT 5 Retain Handling subscription option (spec 3.8.3.1).
    public enum RetainHandling: UInt8, Sendable, Hashable {
        case sendOnSubscribe = 0
        case sendOnNewSubscribe = 1
        case doNotSend = 2
    }

    public struct SubscriptionOptions: Hashable, Sendable {
        public var qos: QoS
        public var noLocal: Bool
        public var retainAsPublished: Bool
        public var retainHandling: RetainHandling

        public init(
            qos: QoS,
            noLocal: Bool = false,
            retainAsPublished: Bool = false,
            retainHandling: RetainHandling = .sendOnSubscribe
        ) {
            self.qos = qos
            self.noLocal = noLocal
            self.retainAsPublished = retainAsPublished
            self.retainHandling = retainHandling
        }
    }

    public struct TopicSubscription: Hashable, Sendable {
        public var filter: String
        public var options: SubscriptionOptions

        public init(filter: String, options: SubscriptionOptions) {
            self.filter = filter
            self.options = options
        }

        public init(filter: String, qos: QoS) {
            self.init(filter: filter, options: SubscriptionOptions(qos: qos))
        }
    }

    public struct Subscribe: Hashable, Sendable {
        public var packetIdentifier: UInt16
        /// At least one [MQTT-3.8.3-3].
        public var subscriptions: [TopicSubscription]
        public var properties: MQTTProperties

        public init(packetIdentifier: UInt16, subscriptions: [TopicSubscription], properties: MQTTProperties = .init()) {
            self.packetIdentifier = packetIdentifier
            self.subscriptions = subscriptions
            self.properties = properties
        }
    }

    public struct SubAck: Hashable, Sendable {
        public var packetIdentifier: UInt16
        /// One per topic filter, in order [MQTT-3.8.4-6]. 3.1.1 knows 0x00, 0x01, 0x02 and 0x80 only: the
        /// encoder writes any failure as 0x80.
        public var reasonCodes: [ReasonCode]
        public var properties: MQTTProperties

        public init(packetIdentifier: UInt16, reasonCodes: [ReasonCode], properties: MQTTProperties = .init()) {
            self.packetIdentifier = packetIdentifier
            self.reasonCodes = reasonCodes
            self.properties = properties
        }
    }

    public struct Unsubscribe: Hashable, Sendable {
        public var packetIdentifier: UInt16
        /// At least one [MQTT-3.10.3-2].
        public var filters: [String]
        public var properties: MQTTProperties

        public init(packetIdentifier: UInt16, filters: [String], properties: MQTTProperties = .init()) {
            self.packetIdentifier = packetIdentifier
            self.filters = filters
            self.properties = properties
        }
    }

    public struct UnsubAck: Hashable, Sendable {
        public var packetIdentifier: UInt16
        /// MQTT 5 only: one per filter. 3.1 / 3.1.1 UNSUBACK carries none and decodes as empty.
        public var reasonCodes: [ReasonCode]
        public var properties: MQTTProperties

        public init(packetIdentifier: UInt16, reasonCodes: [ReasonCode] = [], properties: MQTTProperties = .init()) {
            self.packetIdentifier = packetIdentifier
            self.reasonCodes = reasonCodes
            self.properties = properties
        }
    }
}

// MARK: - DISCONNECT and AUTH

extension MQTTPacket {
    public struct Disconnect: Hashable, Sendable {
        public var reasonCode: ReasonCode
        public var properties: MQTTProperties

        public init(reasonCode: ReasonCode = .normalDisconnection, properties: MQTTProperties = .init()) {
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }

    public struct Auth: Hashable, Sendable {
        public var reasonCode: ReasonCode
        public var properties: MQTTProperties

        public init(reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }
}
