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
///
/// The fields live in one copy-on-write box, absent while no property is set: a packet without properties
/// (every 3.1.1 packet, most MQTT 5 PUBLISHes) carries a single nil reference instead of some 300 bytes of
/// empty optionals, which every copy of the packet would move and every destruction would walk.
public struct MQTTProperties: Hashable, @unchecked Sendable {
    // `@unchecked Sendable` is sound: `box` is only mutated through `update`, which first makes it unique
    // (`isKnownUniquelyReferenced`, else a copy), so a box reachable from more than one value — and thus
    // possibly from another thread — is never written; every field of `Fields` is itself Sendable.
    struct Fields: Hashable, Sendable {
        var payloadFormatIndicator: UInt8?
        var messageExpiryInterval: UInt32?
        var contentType: String?
        var responseTopic: String?
        var correlationData: ByteBuffer?
        var subscriptionIdentifiers: [UInt32] = []
        var sessionExpiryInterval: UInt32?
        var assignedClientIdentifier: String?
        var serverKeepAlive: UInt16?
        var authenticationMethod: String?
        var authenticationData: ByteBuffer?
        var requestProblemInformation: UInt8?
        var willDelayInterval: UInt32?
        var requestResponseInformation: UInt8?
        var responseInformation: String?
        var serverReference: String?
        var reasonString: String?
        var receiveMaximum: UInt16?
        var topicAliasMaximum: UInt16?
        var topicAlias: UInt16?
        var maximumQoS: UInt8?
        var retainAvailable: UInt8?
        var userProperties: [UserProperty] = []
        var maximumPacketSize: UInt32?
        var wildcardSubscriptionAvailable: UInt8?
        var subscriptionIdentifierAvailable: UInt8?
        var sharedSubscriptionAvailable: UInt8?
    }

    private final class Box {
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box?

    public init() {}

    public static let empty = MQTTProperties()

    /// True when no property is set.
    public var isEmpty: Bool {
        guard let box else { return true }
        return box.fields == Fields()
    }

    private var fields: Fields { self.box?.fields ?? Fields() }

    /// Writes one field, making the box unique first; writing an absent value to empty properties makes none.
    private mutating func update<Value: Equatable>(_ field: WritableKeyPath<Fields, Value>, to value: Value, absent: Value) {
        if self.box == nil {
            if value == absent { return }
            self.box = Box(Fields())
        } else if !isKnownUniquelyReferenced(&self.box!) {
            self.box = Box(self.box!.fields)
        }
        self.box!.fields[keyPath: field] = value
    }

    public static func == (lhs: MQTTProperties, rhs: MQTTProperties) -> Bool {
        if lhs.box === rhs.box { return true }
        return lhs.fields == rhs.fields
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.fields)
    }

    public var payloadFormatIndicator: UInt8? {
        get { self.box?.fields.payloadFormatIndicator ?? nil }
        set { self.update(\.payloadFormatIndicator, to: newValue, absent: nil) }
    }

    public var messageExpiryInterval: UInt32? {
        get { self.box?.fields.messageExpiryInterval ?? nil }
        set { self.update(\.messageExpiryInterval, to: newValue, absent: nil) }
    }

    public var contentType: String? {
        get { self.box?.fields.contentType ?? nil }
        set { self.update(\.contentType, to: newValue, absent: nil) }
    }

    public var responseTopic: String? {
        get { self.box?.fields.responseTopic ?? nil }
        set { self.update(\.responseTopic, to: newValue, absent: nil) }
    }

    public var correlationData: ByteBuffer? {
        get { self.box?.fields.correlationData ?? nil }
        set { self.update(\.correlationData, to: newValue, absent: nil) }
    }

    /// Subscription identifiers (1...268,435,455). SUBSCRIBE carries at most one; a forwarded PUBLISH one
    /// per matching subscription [MQTT-3.3.4-3].
    public var subscriptionIdentifiers: [UInt32] {
        get { self.box?.fields.subscriptionIdentifiers ?? [] }
        set { self.update(\.subscriptionIdentifiers, to: newValue, absent: []) }
    }

    public var sessionExpiryInterval: UInt32? {
        get { self.box?.fields.sessionExpiryInterval ?? nil }
        set { self.update(\.sessionExpiryInterval, to: newValue, absent: nil) }
    }

    public var assignedClientIdentifier: String? {
        get { self.box?.fields.assignedClientIdentifier ?? nil }
        set { self.update(\.assignedClientIdentifier, to: newValue, absent: nil) }
    }

    public var serverKeepAlive: UInt16? {
        get { self.box?.fields.serverKeepAlive ?? nil }
        set { self.update(\.serverKeepAlive, to: newValue, absent: nil) }
    }

    public var authenticationMethod: String? {
        get { self.box?.fields.authenticationMethod ?? nil }
        set { self.update(\.authenticationMethod, to: newValue, absent: nil) }
    }

    public var authenticationData: ByteBuffer? {
        get { self.box?.fields.authenticationData ?? nil }
        set { self.update(\.authenticationData, to: newValue, absent: nil) }
    }

    public var requestProblemInformation: UInt8? {
        get { self.box?.fields.requestProblemInformation ?? nil }
        set { self.update(\.requestProblemInformation, to: newValue, absent: nil) }
    }

    public var willDelayInterval: UInt32? {
        get { self.box?.fields.willDelayInterval ?? nil }
        set { self.update(\.willDelayInterval, to: newValue, absent: nil) }
    }

    public var requestResponseInformation: UInt8? {
        get { self.box?.fields.requestResponseInformation ?? nil }
        set { self.update(\.requestResponseInformation, to: newValue, absent: nil) }
    }

    public var responseInformation: String? {
        get { self.box?.fields.responseInformation ?? nil }
        set { self.update(\.responseInformation, to: newValue, absent: nil) }
    }

    public var serverReference: String? {
        get { self.box?.fields.serverReference ?? nil }
        set { self.update(\.serverReference, to: newValue, absent: nil) }
    }

    public var reasonString: String? {
        get { self.box?.fields.reasonString ?? nil }
        set { self.update(\.reasonString, to: newValue, absent: nil) }
    }

    public var receiveMaximum: UInt16? {
        get { self.box?.fields.receiveMaximum ?? nil }
        set { self.update(\.receiveMaximum, to: newValue, absent: nil) }
    }

    public var topicAliasMaximum: UInt16? {
        get { self.box?.fields.topicAliasMaximum ?? nil }
        set { self.update(\.topicAliasMaximum, to: newValue, absent: nil) }
    }

    public var topicAlias: UInt16? {
        get { self.box?.fields.topicAlias ?? nil }
        set { self.update(\.topicAlias, to: newValue, absent: nil) }
    }

    public var maximumQoS: UInt8? {
        get { self.box?.fields.maximumQoS ?? nil }
        set { self.update(\.maximumQoS, to: newValue, absent: nil) }
    }

    public var retainAvailable: UInt8? {
        get { self.box?.fields.retainAvailable ?? nil }
        set { self.update(\.retainAvailable, to: newValue, absent: nil) }
    }

    public var userProperties: [UserProperty] {
        get { self.box?.fields.userProperties ?? [] }
        set { self.update(\.userProperties, to: newValue, absent: []) }
    }

    public var maximumPacketSize: UInt32? {
        get { self.box?.fields.maximumPacketSize ?? nil }
        set { self.update(\.maximumPacketSize, to: newValue, absent: nil) }
    }

    public var wildcardSubscriptionAvailable: UInt8? {
        get { self.box?.fields.wildcardSubscriptionAvailable ?? nil }
        set { self.update(\.wildcardSubscriptionAvailable, to: newValue, absent: nil) }
    }

    public var subscriptionIdentifierAvailable: UInt8? {
        get { self.box?.fields.subscriptionIdentifierAvailable ?? nil }
        set { self.update(\.subscriptionIdentifierAvailable, to: newValue, absent: nil) }
    }

    public var sharedSubscriptionAvailable: UInt8? {
        get { self.box?.fields.sharedSubscriptionAvailable ?? nil }
        set { self.update(\.sharedSubscriptionAvailable, to: newValue, absent: nil) }
    }

}
