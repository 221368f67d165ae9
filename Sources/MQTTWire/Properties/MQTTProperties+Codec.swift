import NIOCore

/// The place a property block sits in: a packet type, or the will properties of CONNECT, which are a set of
/// their own. It decides which properties the decoder accepts (spec 2.2.2.2).
public enum MQTTPropertyContext: Sendable, Hashable, CaseIterable {
    case connect
    case connack
    case publish
    case will
    case puback
    case pubrec
    case pubrel
    case pubcomp
    case subscribe
    case suback
    case unsubscribe
    case unsuback
    case disconnect
    case auth

    /// Whether a property with `identifier` may appear here (the table of spec 2.2.2.2).
    public func allows(_ identifier: PropertyIdentifier) -> Bool {
        switch identifier {
        case .userProperty:
            return true
        case .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData:
            return self == .publish || self == .will
        case .subscriptionIdentifier:
            return self == .publish || self == .subscribe
        case .sessionExpiryInterval:
            return self == .connect || self == .connack || self == .disconnect
        case .assignedClientIdentifier, .serverKeepAlive, .responseInformation, .maximumQoS, .retainAvailable,
            .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable, .sharedSubscriptionAvailable:
            return self == .connack
        case .authenticationMethod, .authenticationData:
            return self == .connect || self == .connack || self == .auth
        case .requestProblemInformation, .requestResponseInformation:
            return self == .connect
        case .willDelayInterval:
            return self == .will
        case .serverReference:
            return self == .connack || self == .disconnect
        case .reasonString:
            switch self {
            case .connack, .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback, .disconnect, .auth: return true
            case .connect, .publish, .will, .subscribe, .unsubscribe: return false
            }
        case .receiveMaximum, .topicAliasMaximum, .maximumPacketSize:
            return self == .connect || self == .connack
        case .topicAlias:
            return self == .publish
        }
    }
}

// MARK: - Length

extension MQTTProperties {
    /// The number of bytes the properties take on the wire, without the property length in front.
    public var encodedLength: Int {
        var length = 0
        func byte(_ value: UInt8?) { if value != nil { length += 2 } }
        func two(_ value: UInt16?) { if value != nil { length += 3 } }
        func four(_ value: UInt32?) { if value != nil { length += 5 } }
        func string(_ value: String?) { if let value { length += 3 + value.utf8.count } }
        func binary(_ value: ByteBuffer?) { if let value { length += 3 + value.readableBytes } }

        byte(self.payloadFormatIndicator)
        four(self.messageExpiryInterval)
        string(self.contentType)
        string(self.responseTopic)
        binary(self.correlationData)
        for identifier in self.subscriptionIdentifiers {
            length += 1 + MQTTVariableByteInteger.encodedLength(Int(identifier))
        }
        four(self.sessionExpiryInterval)
        string(self.assignedClientIdentifier)
        two(self.serverKeepAlive)
        string(self.authenticationMethod)
        binary(self.authenticationData)
        byte(self.requestProblemInformation)
        four(self.willDelayInterval)
        byte(self.requestResponseInformation)
        string(self.responseInformation)
        string(self.serverReference)
        string(self.reasonString)
        two(self.receiveMaximum)
        two(self.topicAliasMaximum)
        two(self.topicAlias)
        byte(self.maximumQoS)
        byte(self.retainAvailable)
        for property in self.userProperties {
            length += 5 + property.name.utf8.count + property.value.utf8.count
        }
        four(self.maximumPacketSize)
        byte(self.wildcardSubscriptionAvailable)
        byte(self.subscriptionIdentifierAvailable)
        byte(self.sharedSubscriptionAvailable)
        return length
    }

    /// The bytes of the properties including the property length in front (spec 2.2.2.1).
    public var encodedLengthWithPrefix: Int {
        let length = self.encodedLength
        return MQTTVariableByteInteger.encodedLength(length) + length
    }
}

// MARK: - Encoding

extension ByteBuffer {
    /// Writes the property length followed by every property that is set, in identifier order, user
    /// properties in their order. The encoder does not check which properties the packet allows: that is the
    /// sender's job. On a throw (a string above 65,535 bytes) the buffer is left as it was.
    @discardableResult
    public mutating func writeMQTTProperties(_ properties: MQTTProperties) throws -> Int {
        let start = self.writerIndex
        do {
            return try self.writeMQTTPropertiesUnchecked(properties)
        } catch {
            self.moveWriterIndex(to: start)
            throw error
        }
    }

    private mutating func writeMQTTPropertiesUnchecked(_ properties: MQTTProperties) throws -> Int {
        var written = try self.writeMQTTVariableByteInteger(properties.encodedLength)

        func id(_ identifier: PropertyIdentifier) -> Int { self.writeInteger(identifier.rawValue) }
        if let value = properties.payloadFormatIndicator {
            written += id(.payloadFormatIndicator) + self.writeInteger(value)
        }
        if let value = properties.messageExpiryInterval {
            written += id(.messageExpiryInterval) + self.writeMQTTFourByteInteger(value)
        }
        if let value = properties.contentType {
            written += id(.contentType) + (try self.writeMQTTString(value))
        }
        if let value = properties.responseTopic {
            written += id(.responseTopic) + (try self.writeMQTTString(value))
        }
        if let value = properties.correlationData {
            written += id(.correlationData) + (try self.writeMQTTBinaryData(value))
        }
        for value in properties.subscriptionIdentifiers {
            written += id(.subscriptionIdentifier) + (try self.writeMQTTVariableByteInteger(Int(value)))
        }
        if let value = properties.sessionExpiryInterval {
            written += id(.sessionExpiryInterval) + self.writeMQTTFourByteInteger(value)
        }
        if let value = properties.assignedClientIdentifier {
            written += id(.assignedClientIdentifier) + (try self.writeMQTTString(value))
        }
        if let value = properties.serverKeepAlive {
            written += id(.serverKeepAlive) + self.writeMQTTTwoByteInteger(value)
        }
        if let value = properties.authenticationMethod {
            written += id(.authenticationMethod) + (try self.writeMQTTString(value))
        }
        if let value = properties.authenticationData {
            written += id(.authenticationData) + (try self.writeMQTTBinaryData(value))
        }
        if let value = properties.requestProblemInformation {
            written += id(.requestProblemInformation) + self.writeInteger(value)
        }
        if let value = properties.willDelayInterval {
            written += id(.willDelayInterval) + self.writeMQTTFourByteInteger(value)
        }
        if let value = properties.requestResponseInformation {
            written += id(.requestResponseInformation) + self.writeInteger(value)
        }
        if let value = properties.responseInformation {
            written += id(.responseInformation) + (try self.writeMQTTString(value))
        }
        if let value = properties.serverReference {
            written += id(.serverReference) + (try self.writeMQTTString(value))
        }
        if let value = properties.reasonString {
            written += id(.reasonString) + (try self.writeMQTTString(value))
        }
        if let value = properties.receiveMaximum {
            written += id(.receiveMaximum) + self.writeMQTTTwoByteInteger(value)
        }
        if let value = properties.topicAliasMaximum {
            written += id(.topicAliasMaximum) + self.writeMQTTTwoByteInteger(value)
        }
        if let value = properties.topicAlias {
            written += id(.topicAlias) + self.writeMQTTTwoByteInteger(value)
        }
        if let value = properties.maximumQoS {
            written += id(.maximumQoS) + self.writeInteger(value)
        }
        if let value = properties.retainAvailable {
            written += id(.retainAvailable) + self.writeInteger(value)
        }
        for pair in properties.userProperties {
            written += id(.userProperty) + (try self.writeMQTTStringPair(pair))
        }
        if let value = properties.maximumPacketSize {
            written += id(.maximumPacketSize) + self.writeMQTTFourByteInteger(value)
        }
        if let value = properties.wildcardSubscriptionAvailable {
            written += id(.wildcardSubscriptionAvailable) + self.writeInteger(value)
        }
        if let value = properties.subscriptionIdentifierAvailable {
            written += id(.subscriptionIdentifierAvailable) + self.writeInteger(value)
        }
        if let value = properties.sharedSubscriptionAvailable {
            written += id(.sharedSubscriptionAvailable) + self.writeInteger(value)
        }
        return written
    }
}

// MARK: - Decoding

extension ByteBuffer {
    /// Reads a property length and the properties it covers, checked against the rules for `context`.
    ///
    /// Returns `nil` (reader index untouched) when the whole block is not readable yet. Throws
    /// `.malformedPacket` for an unknown identifier, one the context does not allow, or a value cut short
    /// (spec 2.2.2.2); `.protocolError` for a repeated property other than User Property (and Subscription
    /// Identifier in PUBLISH), and for values outside their range (a 0 Receive Maximum, Maximum Packet Size or
    /// Subscription Identifier; a byte flag other than 0 or 1). A Topic Alias of 0 is decoded: whether it is
    /// acceptable depends on the connection's alias maximum, which the engine knows [MQTT-3.3.2-8].
    public mutating func readMQTTProperties(for context: MQTTPropertyContext) throws -> MQTTProperties? {
        let start = self.readerIndex
        guard let length = try self.readMQTTVariableByteInteger() else { return nil }
        guard var block = self.readSlice(length: length) else {
            self.moveReaderIndex(to: start)
            return nil
        }
        return try MQTTPropertiesDecoder.decode(&block, context: context)
    }
}

/// The per-property decoding behind `readMQTTProperties(for:)`; `block` holds exactly the properties.
private enum MQTTPropertiesDecoder {
    static func decode(_ block: inout ByteBuffer, context: MQTTPropertyContext) throws -> MQTTProperties {
        var properties = MQTTProperties()
        var seen: UInt64 = 0
        while block.readableBytes > 0 {
            guard let raw = try block.readMQTTVariableByteInteger() else {
                throw MQTTWireError.malformedPacket("property identifier cut short")
            }
            guard raw <= Int(UInt8.max), let identifier = PropertyIdentifier(rawValue: UInt8(raw)) else {
                throw MQTTWireError.malformedPacket("unknown property identifier 0x\(String(raw, radix: 16))")
            }
            guard context.allows(identifier) else {
                throw MQTTWireError.malformedPacket("property \(identifier) is not allowed in \(context)")
            }
            let repeatable =
                identifier == .userProperty || (identifier == .subscriptionIdentifier && context == .publish)
            let bit: UInt64 = 1 << UInt64(identifier.rawValue)
            if !repeatable && seen & bit != 0 {
                throw MQTTWireError.protocolError("property \(identifier) appears more than once")
            }
            seen |= bit
            try decodeValue(of: identifier, from: &block, into: &properties)
        }
        return properties
    }

    private static func decodeValue(
        of identifier: PropertyIdentifier,
        from block: inout ByteBuffer,
        into properties: inout MQTTProperties
    ) throws {
        func byte() throws -> UInt8 {
            guard let value = block.readInteger(as: UInt8.self) else { throw truncated(identifier) }
            return value
        }
        /// A byte that may only be 0 or 1: anything else is a protocol error (spec 3.1.2.11, 3.2.2.3, 3.3.2.3.2).
        func flag() throws -> UInt8 {
            let value = try byte()
            guard value <= 1 else {
                throw MQTTWireError.protocolError("property \(identifier) must be 0 or 1, is \(value)")
            }
            return value
        }
        func two() throws -> UInt16 {
            guard let value = block.readMQTTTwoByteInteger() else { throw truncated(identifier) }
            return value
        }
        func four() throws -> UInt32 {
            guard let value = block.readMQTTFourByteInteger() else { throw truncated(identifier) }
            return value
        }
        func string() throws -> String {
            guard let value = try block.readMQTTString() else { throw truncated(identifier) }
            return value
        }
        func binary() throws -> ByteBuffer {
            guard let value = block.readMQTTBinaryData() else { throw truncated(identifier) }
            return value
        }
        func nonZero<Value: FixedWidthInteger>(_ value: Value) throws -> Value {
            guard value != 0 else { throw MQTTWireError.protocolError("property \(identifier) must not be 0") }
            return value
        }

        switch identifier {
        case .payloadFormatIndicator: properties.payloadFormatIndicator = try flag()
        case .messageExpiryInterval: properties.messageExpiryInterval = try four()
        case .contentType: properties.contentType = try string()
        case .responseTopic: properties.responseTopic = try string()
        case .correlationData: properties.correlationData = try binary()
        case .subscriptionIdentifier:
            guard let value = try block.readMQTTVariableByteInteger() else { throw truncated(identifier) }
            properties.subscriptionIdentifiers.append(try nonZero(UInt32(value)))
        case .sessionExpiryInterval: properties.sessionExpiryInterval = try four()
        case .assignedClientIdentifier: properties.assignedClientIdentifier = try string()
        case .serverKeepAlive: properties.serverKeepAlive = try two()
        case .authenticationMethod: properties.authenticationMethod = try string()
        case .authenticationData: properties.authenticationData = try binary()
        case .requestProblemInformation: properties.requestProblemInformation = try flag()
        case .willDelayInterval: properties.willDelayInterval = try four()
        case .requestResponseInformation: properties.requestResponseInformation = try flag()
        case .responseInformation: properties.responseInformation = try string()
        case .serverReference: properties.serverReference = try string()
        case .reasonString: properties.reasonString = try string()
        case .receiveMaximum: properties.receiveMaximum = try nonZero(two())
        case .topicAliasMaximum: properties.topicAliasMaximum = try two()
        case .topicAlias: properties.topicAlias = try two()
        case .maximumQoS: properties.maximumQoS = try flag()
        case .retainAvailable: properties.retainAvailable = try flag()
        case .userProperty:
            guard let pair = try block.readMQTTStringPair() else { throw truncated(identifier) }
            properties.userProperties.append(pair)
        case .maximumPacketSize: properties.maximumPacketSize = try nonZero(four())
        case .wildcardSubscriptionAvailable: properties.wildcardSubscriptionAvailable = try flag()
        case .subscriptionIdentifierAvailable: properties.subscriptionIdentifierAvailable = try flag()
        case .sharedSubscriptionAvailable: properties.sharedSubscriptionAvailable = try flag()
        }
    }

    private static func truncated(_ identifier: PropertyIdentifier) -> MQTTWireError {
        .malformedPacket("value of property \(identifier) runs past the property length")
    }
}
