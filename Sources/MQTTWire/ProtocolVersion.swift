/// The protocol level carried in CONNECT. Each level has its own protocol name on the wire.
public enum ProtocolVersion: UInt8, Sendable, Hashable, CaseIterable {
    /// MQTT 3.1, protocol name "MQIsdp".
    case v3_1 = 3
    /// MQTT 3.1.1, protocol name "MQTT".
    case v3_1_1 = 4
    /// MQTT 5.0, protocol name "MQTT".
    case v5 = 5

    /// The protocol name that must accompany this level [MQTT-3.1.2-1].
    public var protocolName: String {
        switch self {
        case .v3_1: return "MQIsdp"
        case .v3_1_1, .v5: return "MQTT"
        }
    }

    public var isV5: Bool { self == .v5 }
}

/// Quality of service levels [MQTT-4.3].
public enum QoS: UInt8, Sendable, Hashable, Comparable, CaseIterable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (lhs: QoS, rhs: QoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The fourteen-plus-one control packet types, by their fixed-header type nibble.
public enum PacketType: UInt8, Sendable, Hashable, CaseIterable {
    case connect = 1
    case connack = 2
    case publish = 3
    case puback = 4
    case pubrec = 5
    case pubrel = 6
    case pubcomp = 7
    case subscribe = 8
    case suback = 9
    case unsubscribe = 10
    case unsuback = 11
    case pingreq = 12
    case pingresp = 13
    case disconnect = 14
    case auth = 15
}
