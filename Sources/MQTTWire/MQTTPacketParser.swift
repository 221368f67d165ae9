import NIOCore

/// A pure, streaming MQTT packet parser: bytes in, `MQTTPacket`s out, with no I/O.
///
/// `parse(_:)` returns one packet when the buffer holds all of it and `nil` when it needs more bytes, leaving
/// the reader index where the packet starts, so any split of the stream decodes the same. Call it in a loop
/// until it returns `nil` to drain a read that carried many packets.
///
/// A packet whose fixed header announces more than `maximumPacketSize` bytes is refused as soon as the header
/// is complete, before its body is buffered.
///
/// - Server mode (`init(maximumPacketSize:)`): the version is unknown until CONNECT arrives. The first packet
///   must be CONNECT [MQTT-3.1.0-1]; its protocol name and level ("MQIsdp"/3, "MQTT"/4 or "MQTT"/5) set
///   `version` for the rest of the connection, and a second CONNECT is a protocol error [MQTT-3.1.0-2].
/// - Client mode (`init(version:maximumPacketSize:)`): the version is known from the start.
///
/// The parser decodes every packet type in either direction; refusing, say, a CONNACK sent to a server is the
/// connection state machine's job, as are rules that need connection state (topic alias maximum, receive
/// maximum, packet identifiers in use, topic filter syntax, which is answered per filter in SUBACK).
public struct MQTTPacketParser: Sendable {
    /// The largest packet the wire can express: one type byte, four length bytes, 268,435,455 body bytes.
    public static let largestPossiblePacketSize = 1 + 4 + MQTTVariableByteInteger.maximum

    /// The protocol version of the connection; `nil` in server mode until CONNECT has been parsed.
    ///
    /// In server mode it is set as soon as CONNECT's protocol name and level have been read, even if the rest
    /// of the CONNECT then turns out to be malformed, so that the server knows how to word its CONNACK.
    public private(set) var version: ProtocolVersion?

    /// The largest packet, in bytes including the fixed header, this side accepts (MQTT 5 Maximum Packet Size,
    /// spec 3.1.2.11.4 / 3.2.2.3.6). Larger packets throw `.packetTooLarge`.
    public var maximumPacketSize: Int

    /// True in server mode: CONNECT is expected first and only once.
    private let isServer: Bool
    private var hasReceivedConnect = false
    /// The topic of the last PUBLISH, already validated: a client publishing to it again (the common case) gets
    /// the same `String` back, with no decoding, no validation and no allocation.
    private var lastPublishTopic = ""

    /// Server mode: waits for CONNECT to learn the protocol version.
    public init(maximumPacketSize: Int = MQTTPacketParser.largestPossiblePacketSize) {
        self.version = nil
        self.maximumPacketSize = maximumPacketSize
        self.isServer = true
    }

    /// Client mode (or any peer that already knows the version): decodes every packet as `version`.
    public init(version: ProtocolVersion, maximumPacketSize: Int = MQTTPacketParser.largestPossiblePacketSize) {
        self.version = version
        self.maximumPacketSize = maximumPacketSize
        self.isServer = false
    }

    /// Parses the next packet from the front of `buffer`.
    ///
    /// - Returns: the packet, with `buffer`'s reader index moved past it; or `nil` when `buffer` does not hold
    ///   the whole packet yet, with the reader index untouched.
    /// - Throws: `MQTTWireError` when the bytes break the protocol. The connection cannot continue after that;
    ///   `error.reasonCode` is what to put in the DISCONNECT (or CONNACK).
    public mutating func parse(_ buffer: inout ByteBuffer) throws -> MQTTPacket? {
        let start = buffer.readerIndex
        guard let firstByte = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        let type = try self.checkFirstByte(firstByte)
        guard let (remainingLength, lengthBytes) = try buffer.getMQTTVariableByteInteger(at: start + 1) else {
            return nil
        }
        let packetSize = 1 + lengthBytes + remainingLength
        guard packetSize <= self.maximumPacketSize else {
            throw MQTTWireError.packetTooLarge(
                "\(type) of \(packetSize) bytes exceeds the maximum packet size of \(self.maximumPacketSize)"
            )
        }
        guard var body = buffer.getSlice(at: start + 1 + lengthBytes, length: remainingLength) else { return nil }
        let packet = try self.decodeBody(type: type, flags: firstByte & 0x0F, body: &body)
        guard body.readableBytes == 0 else {
            throw MQTTWireError.malformedPacket("\(body.readableBytes) bytes left over at the end of \(type)")
        }
        buffer.moveReaderIndex(forwardBy: packetSize)
        return packet
    }

    /// Checks what the first byte alone can tell, so a bad packet is refused before its body arrives.
    private func checkFirstByte(_ firstByte: UInt8) throws -> PacketType {
        guard let type = PacketType(rawValue: firstByte >> 4) else {
            throw MQTTWireError.malformedPacket("packet type 0 is reserved")
        }
        if self.isServer && self.version == nil && type != .connect {
            throw MQTTWireError.protocolError("the first packet must be CONNECT, not \(type) [MQTT-3.1.0-1]")
        }
        if type == .auth, let version = self.version, !version.isV5 {
            throw MQTTWireError.malformedPacket("packet type 15 is reserved before MQTT 5")
        }
        // Reserved flag bits must carry their listed values [MQTT-2.1.3-1]; 3.1.1 closes the connection
        // [MQTT-2.2.2-2]. PUBLISH flags are checked with the packet.
        if type != .publish && firstByte & 0x0F != type.requiredFlags {
            throw MQTTWireError.malformedPacket(
                "\(type) has fixed header flags 0b\(String(firstByte & 0x0F, radix: 2)) [MQTT-2.1.3-1, MQTT-2.2.2-2]"
            )
        }
        return type
    }

    private mutating func decodeBody(type: PacketType, flags: UInt8, body: inout ByteBuffer) throws -> MQTTPacket {
        if type == .connect {
            return .connect(try self.decodeConnect(&body))
        }
        // checkFirstByte lets only CONNECT through while the version is unknown.
        guard let version = self.version else { preconditionFailure("no protocol version before CONNECT") }
        var reader = MQTTBodyReader(body: body, version: version)
        defer { body = reader.body }
        switch type {
        case .connect: preconditionFailure("handled above")
        case .connack: return .connack(try reader.connAck())
        case .publish: return .publish(try reader.publish(flags: flags, lastTopic: &self.lastPublishTopic))
        case .puback: return .puback(try reader.pubAck(.puback))
        case .pubrec: return .pubrec(try reader.pubAck(.pubrec))
        case .pubrel: return .pubrel(try reader.pubAck(.pubrel))
        case .pubcomp: return .pubcomp(try reader.pubAck(.pubcomp))
        case .subscribe: return .subscribe(try reader.subscribe())
        case .suback: return .suback(try reader.subAck())
        case .unsubscribe: return .unsubscribe(try reader.unsubscribe())
        case .unsuback: return .unsuback(try reader.unsubAck())
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect(try reader.disconnect())
        case .auth: return .auth(try reader.auth())
        }
    }

    private mutating func decodeConnect(_ body: inout ByteBuffer) throws -> MQTTPacket.Connect {
        if self.isServer && self.hasReceivedConnect {
            throw MQTTWireError.protocolError("a second CONNECT on one connection [MQTT-3.1.0-2]")
        }
        guard let name = try body.readMQTTString(), let level = body.readInteger(as: UInt8.self) else {
            throw MQTTWireError.malformedPacket("CONNECT ends inside its protocol name or level")
        }
        // The protocol name must be the one of the level [MQTT-3.1.2-1]; an unknown level is answered with
        // CONNACK 0x01 (3.1.1) or 0x84 (5) [MQTT-3.1.2-2], which the error carries the level for.
        guard let version = ProtocolVersion(rawValue: level), version.protocolName == name else {
            throw MQTTWireError.unsupportedProtocolVersion(level: level, name: name)
        }
        if self.isServer { self.version = version }
        var reader = MQTTBodyReader(body: body, version: version)
        defer { body = reader.body }
        let connect = try reader.connect()
        self.hasReceivedConnect = true
        return connect
    }
}

// MARK: - Packet bodies

/// Reads the variable header and payload of one packet, whose bytes are exactly `body`. Running out of bytes
/// here is never "need more": the fixed header promised this length, so it is a malformed packet.
private struct MQTTBodyReader {
    var body: ByteBuffer
    let version: ProtocolVersion

    // MARK: Fields

    mutating func byte(_ what: @autoclosure () -> String) throws -> UInt8 {
        guard let value = self.body.readInteger(as: UInt8.self) else { throw Self.truncated(what()) }
        return value
    }

    mutating func twoBytes(_ what: @autoclosure () -> String) throws -> UInt16 {
        guard let value = self.body.readMQTTTwoByteInteger() else { throw Self.truncated(what()) }
        return value
    }

    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        guard let value = try self.body.readMQTTString() else { throw Self.truncated(what()) }
        return value
    }

    mutating func binary(_ what: @autoclosure () -> String) throws -> ByteBuffer {
        guard let value = self.body.readMQTTBinaryData() else { throw Self.truncated(what()) }
        return value
    }

    /// MQTT 5 properties; empty for earlier versions, which have none.
    mutating func properties(_ context: MQTTPropertyContext) throws -> MQTTProperties {
        guard self.version.isV5 else { return MQTTProperties() }
        guard let properties = try self.body.readMQTTProperties(for: context) else {
            throw Self.truncated("properties of \(context)")
        }
        return properties
    }

    /// A packet identifier where one is required: 0 is not a valid identifier [MQTT-2.2.1-3 (5),
    /// MQTT-2.3.1-1 (3.1.1)].
    mutating func packetIdentifier(_ type: PacketType) throws -> UInt16 {
        let identifier = try self.twoBytes("packet identifier of \(type)")
        guard identifier != 0 else {
            throw MQTTWireError.protocolError("\(type) has packet identifier 0 [MQTT-2.2.1-3, MQTT-2.3.1-1]")
        }
        return identifier
    }

    static func truncated(_ what: String) -> MQTTWireError {
        .malformedPacket("the packet ends inside its \(what)")
    }

    // MARK: CONNECT and CONNACK

    /// CONNECT after protocol name and level (spec 3.1.2.3 onwards).
    mutating func connect() throws -> MQTTPacket.Connect {
        let flags = try self.byte("connect flags")
        guard flags & 0x01 == 0 else {
            throw MQTTWireError.malformedPacket("CONNECT reserved flag is 1 [MQTT-3.1.2-3]")
        }
        let hasUsername = flags & 0x80 != 0
        let hasPassword = flags & 0x40 != 0
        let willRetain = flags & 0x20 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let hasWill = flags & 0x04 != 0
        if !hasWill {
            // MQTT 5 numbers these rules -11 and -13, 3.1.1 -13 and -15.
            guard willQoSBits == 0 else {
                throw MQTTWireError.malformedPacket("Will QoS without Will Flag [MQTT-3.1.2-11, MQTT-3.1.2-13]")
            }
            guard !willRetain else {
                throw MQTTWireError.malformedPacket("Will Retain without Will Flag [MQTT-3.1.2-13, MQTT-3.1.2-15]")
            }
        }
        guard let willQoS = QoS(rawValue: willQoSBits) else {
            throw MQTTWireError.malformedPacket("Will QoS 3 [MQTT-3.1.2-12, MQTT-3.1.2-14]")
        }
        if hasPassword && !hasUsername && !self.version.isV5 {
            throw MQTTWireError.malformedPacket("password flag without user name flag [MQTT-3.1.2-22]")
        }
        let keepAlive = try self.twoBytes("keep alive")
        let properties = try self.properties(.connect)
        let clientIdentifier = try self.string("client identifier")
        var will: MQTTPacket.Will?
        if hasWill {
            let willProperties = try self.properties(.will)
            let topic = try self.string("will topic")
            guard MQTTTopic.isValidTopicName(topic) else {
                throw MQTTWireError.topicNameInvalid("will topic \"\(topic)\" is not a valid topic name")
            }
            let payload = try self.binary("will payload")
            will = MQTTPacket.Will(
                topic: topic,
                payload: payload,
                qos: willQoS,
                retain: willRetain,
                properties: willProperties
            )
        }
        let username = hasUsername ? try self.string("user name") : nil
        let password = hasPassword ? try self.binary("password") : nil
        return MQTTPacket.Connect(
            protocolVersion: self.version,
            clientIdentifier: clientIdentifier,
            cleanStart: flags & 0x02 != 0,
            keepAlive: keepAlive,
            will: will,
            username: username,
            password: password,
            properties: properties
        )
    }

    mutating func connAck() throws -> MQTTPacket.ConnAck {
        let flags = try self.byte("connect acknowledge flags")
        let code = try self.byte("connect reason code")
        let reasonCode: ReasonCode
        var sessionPresent = flags & 0x01 != 0
        switch self.version {
        case .v3_1:
            // The whole first byte is reserved in 3.1.
            sessionPresent = false
            reasonCode = try Self.legacyReturnCode(code)
        case .v3_1_1:
            reasonCode = try Self.legacyReturnCode(code)
        case .v5:
            reasonCode = ReasonCode(code)
        }
        if self.version != .v3_1 && flags & 0xFE != 0 {
            throw MQTTWireError.malformedPacket("CONNACK reserved flags are set [MQTT-3.2.2-1]")
        }
        if sessionPresent && reasonCode.isFailure {
            throw MQTTWireError.protocolError("refusing CONNACK with Session Present [MQTT-3.2.2-4, MQTT-3.2.2-6]")
        }
        return MQTTPacket.ConnAck(
            sessionPresent: sessionPresent,
            reasonCode: reasonCode,
            properties: try self.properties(.connack)
        )
    }

    static func legacyReturnCode(_ code: UInt8) throws -> ReasonCode {
        guard let returnCode = LegacyConnectReturnCode(rawValue: code) else {
            throw MQTTWireError.protocolError("CONNACK return code \(code) is reserved")
        }
        return returnCode.reasonCode
    }

    // MARK: PUBLISH and acknowledgements

    mutating func publish(flags: UInt8, lastTopic: inout String) throws -> MQTTPacket.Publish {
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else {
            throw MQTTWireError.malformedPacket("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
        }
        let dup = flags & 0b1000 != 0
        if dup && qos == .atMostOnce {
            throw MQTTWireError.malformedPacket("PUBLISH with QoS 0 and DUP 1 [MQTT-3.3.1-2]")
        }
        let topic: String
        if !lastTopic.isEmpty, self.body.readMQTTString(equalTo: lastTopic) {
            topic = lastTopic
        } else {
            topic = try self.string("topic name")
            // An empty topic is allowed in MQTT 5 only, standing for a topic alias (checked below) [MQTT-4.7.3-1].
            if !topic.isEmpty || !self.version.isV5 {
                guard MQTTTopic.isValidTopicName(topic) else {
                    throw MQTTWireError.topicNameInvalid("PUBLISH topic \"\(topic)\" is not a valid topic name "
                        + "[MQTT-3.3.2-2, MQTT-4.7.3-1]")
                }
                lastTopic = topic
            }
        }
        let packetIdentifier = qos == .atMostOnce ? nil : try self.packetIdentifier(.publish)
        let properties = try self.properties(.publish)
        if topic.isEmpty && properties.topicAlias == nil {
            throw MQTTWireError.protocolError("PUBLISH with an empty topic name and no topic alias")
        }
        let payload = self.body.readSlice(length: self.body.readableBytes)!
        return MQTTPacket.Publish(
            topic: topic,
            payload: payload,
            qos: qos,
            retain: flags & 0b0001 != 0,
            dup: dup,
            packetIdentifier: packetIdentifier,
            properties: properties
        )
    }

    /// PUBACK, PUBREC, PUBREL and PUBCOMP. In MQTT 5 a remaining length of 2 means reason 0x00 and no
    /// properties, 3 means no properties (spec 3.4.2.1).
    mutating func pubAck(_ type: PacketType) throws -> MQTTPacket.PubAck {
        let packetIdentifier = try self.packetIdentifier(type)
        guard self.version.isV5, self.body.readableBytes > 0 else {
            return MQTTPacket.PubAck(packetIdentifier: packetIdentifier)
        }
        let reasonCode = ReasonCode(try self.byte("reason code"))
        let context: MQTTPropertyContext
        switch type {
        case .pubrec: context = .pubrec
        case .pubrel: context = .pubrel
        case .pubcomp: context = .pubcomp
        default: context = .puback
        }
        let properties = self.body.readableBytes > 0 ? try self.properties(context) : MQTTProperties()
        return MQTTPacket.PubAck(packetIdentifier: packetIdentifier, reasonCode: reasonCode, properties: properties)
    }

    // MARK: SUBSCRIBE and UNSUBSCRIBE

    mutating func subscribe() throws -> MQTTPacket.Subscribe {
        let packetIdentifier = try self.packetIdentifier(.subscribe)
        let properties = try self.properties(.subscribe)
        var subscriptions: [MQTTPacket.TopicSubscription] = []
        while self.body.readableBytes > 0 {
            let filter = try self.string("topic filter")
            let options = try self.subscriptionOptions(try self.byte("subscription options"))
            subscriptions.append(MQTTPacket.TopicSubscription(filter: filter, options: options))
        }
        guard !subscriptions.isEmpty else {
            throw MQTTWireError.protocolError("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")
        }
        return MQTTPacket.Subscribe(
            packetIdentifier: packetIdentifier,
            subscriptions: subscriptions,
            properties: properties
        )
    }

    /// The subscription options byte (spec 3.8.3.1). 3.1.1 has only QoS and reserves bits 7-2
    /// [MQTT-3.8.3-4 (3.1.1)]; MQTT 5 reserves bits 7-6 [MQTT-3.8.3-5] and forbids Retain Handling 3.
    func subscriptionOptions(_ byte: UInt8) throws -> MQTTPacket.SubscriptionOptions {
        let reservedMask: UInt8 = self.version.isV5 ? 0xC0 : 0xFC
        guard byte & reservedMask == 0 else {
            throw MQTTWireError.malformedPacket(
                "subscription options reserved bits are set [MQTT-3.8.3-4, MQTT-3.8.3-5]"
            )
        }
        guard let qos = QoS(rawValue: byte & 0x03) else {
            throw MQTTWireError.malformedPacket("subscription with QoS 3 [MQTT-3.8.3-4]")
        }
        guard let retainHandling = MQTTPacket.RetainHandling(rawValue: (byte >> 4) & 0x03) else {
            throw MQTTWireError.protocolError("subscription with Retain Handling 3")
        }
        return MQTTPacket.SubscriptionOptions(
            qos: qos,
            noLocal: byte & 0x04 != 0,
            retainAsPublished: byte & 0x08 != 0,
            retainHandling: retainHandling
        )
    }

    mutating func subAck() throws -> MQTTPacket.SubAck {
        let packetIdentifier = try self.packetIdentifier(.suback)
        let properties = try self.properties(.suback)
        var reasonCodes: [ReasonCode] = []
        reasonCodes.reserveCapacity(self.body.readableBytes)
        while let code = self.body.readInteger(as: UInt8.self) {
            // 3.1.1 allows 0x00, 0x01, 0x02 and 0x80 only [MQTT-3.9.3-2].
            if !self.version.isV5 && code > 0x02 && code != 0x80 {
                throw MQTTWireError.malformedPacket("SUBACK return code \(code) is reserved [MQTT-3.9.3-2]")
            }
            reasonCodes.append(ReasonCode(code))
        }
        guard !reasonCodes.isEmpty else {
            throw MQTTWireError.protocolError("SUBACK without return codes [MQTT-3.8.4-6]")
        }
        return MQTTPacket.SubAck(packetIdentifier: packetIdentifier, reasonCodes: reasonCodes, properties: properties)
    }

    mutating func unsubscribe() throws -> MQTTPacket.Unsubscribe {
        let packetIdentifier = try self.packetIdentifier(.unsubscribe)
        let properties = try self.properties(.unsubscribe)
        var filters: [String] = []
        while self.body.readableBytes > 0 {
            filters.append(try self.string("topic filter"))
        }
        guard !filters.isEmpty else {
            throw MQTTWireError.protocolError("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
        }
        return MQTTPacket.Unsubscribe(packetIdentifier: packetIdentifier, filters: filters, properties: properties)
    }

    mutating func unsubAck() throws -> MQTTPacket.UnsubAck {
        let packetIdentifier = try self.packetIdentifier(.unsuback)
        guard self.version.isV5 else { return MQTTPacket.UnsubAck(packetIdentifier: packetIdentifier) }
        let properties = try self.properties(.unsuback)
        var reasonCodes: [ReasonCode] = []
        while let code = self.body.readInteger(as: UInt8.self) {
            reasonCodes.append(ReasonCode(code))
        }
        return MQTTPacket.UnsubAck(
            packetIdentifier: packetIdentifier,
            reasonCodes: reasonCodes,
            properties: properties
        )
    }

    // MARK: DISCONNECT and AUTH

    /// MQTT 5 DISCONNECT: an empty body means reason 0x00, a single byte means no properties (spec 3.14.2.1).
    /// Earlier versions have an empty body; extra bytes are caught as left over.
    mutating func disconnect() throws -> MQTTPacket.Disconnect {
        guard self.version.isV5, self.body.readableBytes > 0 else { return MQTTPacket.Disconnect() }
        let reasonCode = ReasonCode(try self.byte("reason code"))
        let properties = self.body.readableBytes > 0 ? try self.properties(.disconnect) : MQTTProperties()
        return MQTTPacket.Disconnect(reasonCode: reasonCode, properties: properties)
    }

    /// AUTH (MQTT 5 only): an empty body means reason 0x00 and no properties (spec 3.15.2.1).
    mutating func auth() throws -> MQTTPacket.Auth {
        guard self.body.readableBytes > 0 else { return MQTTPacket.Auth() }
        let reasonCode = ReasonCode(try self.byte("reason code"))
        let properties = self.body.readableBytes > 0 ? try self.properties(.auth) : MQTTProperties()
        return MQTTPacket.Auth(reasonCode: reasonCode, properties: properties)
    }
}
