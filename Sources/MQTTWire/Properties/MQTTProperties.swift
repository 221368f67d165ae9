import NIOCore

/// One MQTT 5 user property: a UTF-8 string pair. Order and duplicates are significant and kept
/// [MQTT-3.3.2-18].
public struct UserProperty: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// The identifiers of the MQTT 5 properties (spec 2.2.2.2), with the wire type of each.
public enum PropertyIdentifier: UInt8, Sendable, Hashable, CaseIterable {
    case payloadFormatIndicator = 0x01
    case messageExpiryInterval = 0x02
    case contentType = 0x03
    case responseTopic = 0x08
    case correlationData = 0x09
    case subscriptionIdentifier = 0x0B
    case sessionExpiryInterval = 0x11
    case assignedClientIdentifier = 0x12
    case serverKeepAlive = 0x13
    case authenticationMethod = 0x15
    case authenticationData = 0x16
    case requestProblemInformation = 0x17
    case willDelayInterval = 0x18
    case requestResponseInformation = 0x19
    case responseInformation = 0x1A
    case serverReference = 0x1C
    case reasonString = 0x1F
    case receiveMaximum = 0x21
    case topicAliasMaximum = 0x22
    case topicAlias = 0x23
    case maximumQoS = 0x24
    case retainAvailable = 0x25
    case userProperty = 0x26
    case maximumPacketSize = 0x27
    case wildcardSubscriptionAvailable = 0x28
    case subscriptionIdentifierAvailable = 0x29
    case sharedSubscriptionAvailable = 0x2A
}

/// The MQTT 5 properties of one packet, as typed optional fields.
///
/// A field that is `nil` (or an empty array) is absent on the wire. Which properties a packet may carry is
/// checked by the decoder (spec 2.2.2.2 table); the encoder writes whatever is set, so the engine must only
/// set what the packet allows. For MQTT 3.1 and 3.1.1 packets every field stays empty.
public struct MQTTProperties: Hashable, Sendable {
    public var payloadFormatIndicator: UInt8?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: ByteBuffer?
    /// Subscription identifiers (1...268,435,455). SUBSCRIBE carries at most one; a forwarded PUBLISH one
    /// per matching subscription [MQTT-3.3.4-3].
    public var subscriptionIdentifiers: [UInt32] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: ByteBuffer?
    public var requestProblemInformation: UInt8?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: UInt8?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: UInt8?
    public var retainAvailable: UInt8?
    public var userProperties: [UserProperty] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: UInt8?
    public var subscriptionIdentifierAvailable: UInt8?
    public var sharedSubscriptionAvailable: UInt8?

    public init() {}

    public static let empty = MQTTProperties()

    /// True when no property is set.
    public var isEmpty: Bool { self == .empty }
}
