/// The one error type of MQTTWire: what went wrong (`code`), a sentence for logs (`detail`), and, for a
/// CONNECT naming a protocol we do not speak, the protocol level it named.
///
/// Equality compares all fields, so tests can match an exact error; code that reacts to errors should switch
/// on `code` only.
public struct MQTTWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is. A struct rather than an enum so that new codes can be added without
    /// breaking exhaustive switches in other modules.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case malformedPacket
            case invalidUTF8
            case protocolError
            case packetTooLarge
            case unsupportedProtocolVersion
            case topicNameInvalid
            case topicAliasInvalid
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// The bytes do not follow the wire format (spec 1.5, 2.1, 4.13).
        public static let malformedPacket = Code(.malformedPacket)
        /// A UTF-8 string is ill-formed, contains a surrogate or U+0000 [MQTT-1.5.4-1, MQTT-1.5.4-2].
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// The bytes parse but break a rule of the protocol (a duplicate property, a packet identifier of 0).
        public static let protocolError = Code(.protocolError)
        /// The packet is larger than the receiver's maximum packet size or than the wire can express.
        public static let packetTooLarge = Code(.packetTooLarge)
        /// CONNECT names a protocol name or level this broker does not implement [MQTT-3.1.2-2].
        public static let unsupportedProtocolVersion = Code(.unsupportedProtocolVersion)
        /// A PUBLISH topic name is not a valid topic name (wildcards, empty without an alias) [MQTT-3.3.2-2].
        public static let topicNameInvalid = Code(.topicNameInvalid)
        /// A topic alias is 0 or above the maximum the receiver announced [MQTT-3.2.2-17, MQTT-3.3.2-9].
        public static let topicAliasInvalid = Code(.topicAliasInvalid)

        public var description: String {
            switch base {
            case .malformedPacket: return "malformed packet"
            case .invalidUTF8: return "invalid UTF-8"
            case .protocolError: return "protocol error"
            case .packetTooLarge: return "packet too large"
            case .unsupportedProtocolVersion: return "unsupported protocol version"
            case .topicNameInvalid: return "topic name invalid"
            case .topicAliasInvalid: return "topic alias invalid"
            }
        }

        /// The MQTT 5 reason code a server sends in DISCONNECT (or CONNACK) for this failure (spec 2.4).
        public var reasonCode: ReasonCode {
            switch base {
            case .malformedPacket, .invalidUTF8: return .malformedPacket
            case .protocolError: return .protocolError
            case .packetTooLarge: return .packetTooLarge
            case .unsupportedProtocolVersion: return .unsupportedProtocolVersion
            case .topicNameInvalid: return .topicNameInvalid
            case .topicAliasInvalid: return .topicAliasInvalid
            }
        }
    }

    public var code: Code
    /// A human-readable explanation, usually naming the rule that was broken.
    public var detail: String
    /// For `.unsupportedProtocolVersion`: the protocol level byte the CONNECT carried, so the server can still
    /// answer with a CONNACK in a format the client understands (see `unsupportedProtocolResponseVersion`).
    public var protocolLevel: UInt8?

    public init(code: Code, detail: String, protocolLevel: UInt8? = nil) {
        self.code = code
        self.detail = detail
        self.protocolLevel = protocolLevel
    }

    /// The MQTT 5 reason code a server sends in DISCONNECT for this error: 0x81 malformed, 0x82 protocol
    /// error, 0x95 packet too large, 0x84 unsupported protocol version, ...
    public var reasonCode: ReasonCode { code.reasonCode }

    /// For `.unsupportedProtocolVersion`: the version in which to encode the refusing CONNACK.
    ///
    /// A client that asked for level 5 understands an MQTT 5 CONNACK with reason code 0x84; any other client
    /// gets the 3.1.1 layout, whose return code 0x01 means "unacceptable protocol version" [MQTT-3.1.2-2].
    /// The two-byte 3.1.1 CONNACK is also what 3.1 clients expect. `nil` for every other error.
    public var unsupportedProtocolResponseVersion: ProtocolVersion? {
        guard code == .unsupportedProtocolVersion else { return nil }
        return protocolLevel == ProtocolVersion.v5.rawValue ? .v5 : .v3_1_1
    }

    public var description: String { "MQTTWireError(\(code): \(detail))" }
}

// MARK: - Factories

extension MQTTWireError {
    @inline(never)
    public static func malformedPacket(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .malformedPacket, detail: detail)
    }

    @inline(never)
    public static func invalidUTF8(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .invalidUTF8, detail: detail)
    }

    @inline(never)
    public static func protocolError(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .protocolError, detail: detail)
    }

    @inline(never)
    public static func packetTooLarge(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .packetTooLarge, detail: detail)
    }

    @inline(never)
    public static func unsupportedProtocolVersion(level: UInt8, name: String) -> MQTTWireError {
        MQTTWireError(
            code: .unsupportedProtocolVersion,
            detail: "protocol name \"\(name)\" with level \(level) is not supported",
            protocolLevel: level
        )
    }

    @inline(never)
    public static func topicNameInvalid(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .topicNameInvalid, detail: detail)
    }

    @inline(never)
    public static func topicAliasInvalid(_ detail: String) -> MQTTWireError {
        MQTTWireError(code: .topicAliasInvalid, detail: detail)
    }
}

// MARK: - ReasonCode

extension ReasonCode {
    /// The reason code that reports `error` to the peer, as in `MQTTWireError.reasonCode`.
    public init(_ error: MQTTWireError) {
        self = error.reasonCode
    }
}
