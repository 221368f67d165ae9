import NIOCore

// MARK: - Whole packets

extension ByteBuffer {
    /// Writes `packet` as the bytes of one control packet for a connection speaking `version`.
    ///
    /// For 3.1 and 3.1.1 everything MQTT 5 added is left out: properties, and reason codes in PUBACK, PUBREC,
    /// PUBREL, PUBCOMP, UNSUBACK and DISCONNECT. A CONNACK reason code becomes a `LegacyConnectReturnCode`;
    /// a SUBACK failure becomes 0x80. For MQTT 5 the short forms are used: an acknowledgement with reason 0x00
    /// and no properties is 2 bytes of packet identifier, DISCONNECT and AUTH with reason 0x00 and no properties
    /// have no variable header at all.
    ///
    /// A CONNECT is written in its own `protocolVersion`, which must equal `version`. A QoS 0 PUBLISH is
    /// written without packet identifier even if one is set [MQTT-2.2.1-2].
    ///
    /// Throws `.packetTooLarge` when the remaining length exceeds 268,435,455, `.malformedPacket` when a string
    /// or binary field exceeds 65,535 bytes, and `.protocolError` for a packet the version cannot express (AUTH
    /// before MQTT 5, a 3.1.1 password without user name [MQTT-3.1.2-22], a PUBLISH with QoS > 0 and no packet
    /// identifier, a SUBSCRIBE or UNSUBSCRIBE without filters). On a throw the buffer is left as it was.
    ///
    /// - Returns: the number of bytes written.
    @discardableResult
    public mutating func writeMQTTPacket(_ packet: MQTTPacket, version: ProtocolVersion) throws -> Int {
        let start = self.writerIndex
        do {
            return try self.writeMQTTPacketUnchecked(packet, version: version)
        } catch {
            self.moveWriterIndex(to: start)
            throw error
        }
    }

    private mutating func writeMQTTPacketUnchecked(_ packet: MQTTPacket, version: ProtocolVersion) throws -> Int {
        switch packet {
        case .connect(let connect):
            return try self.writeConnect(connect, version: version)
        case .connack(let connack):
            return try self.writeConnAck(connack, version: version)
        case .publish(let publish):
            let header = try self.writeMQTTPublishHeader(publish, version: version)
            return header + self.writeImmutableBuffer(publish.payload)
        case .puback(let ack):
            return try self.writeAck(ack, type: .puback, version: version)
        case .pubrec(let ack):
            return try self.writeAck(ack, type: .pubrec, version: version)
        case .pubrel(let ack):
            return try self.writeAck(ack, type: .pubrel, version: version)
        case .pubcomp(let ack):
            return try self.writeAck(ack, type: .pubcomp, version: version)
        case .subscribe(let subscribe):
            return try self.writeSubscribe(subscribe, version: version)
        case .suback(let suback):
            return try self.writeSubAck(suback, version: version)
        case .unsubscribe(let unsubscribe):
            return try self.writeUnsubscribe(unsubscribe, version: version)
        case .unsuback(let unsuback):
            return try self.writeUnsubAck(unsuback, version: version)
        case .pingreq:
            return try self.writeMQTTFixedHeader(type: .pingreq, remainingLength: 0)
        case .pingresp:
            return try self.writeMQTTFixedHeader(type: .pingresp, remainingLength: 0)
        case .disconnect(let disconnect):
            guard version.isV5 else { return try self.writeMQTTFixedHeader(type: .disconnect, remainingLength: 0) }
            return try self.writeReasonAndProperties(
                type: .disconnect,
                reasonCode: disconnect.reasonCode,
                properties: disconnect.properties
            )
        case .auth(let auth):
            guard version.isV5 else { throw MQTTWireError.protocolError("AUTH exists only in MQTT 5") }
            return try self.writeReasonAndProperties(
                type: .auth,
                reasonCode: auth.reasonCode,
                properties: auth.properties
            )
        }
    }
}

// MARK: - Fixed header

extension PacketType {
    /// The flag nibble the fixed header must carry for every type but PUBLISH: 0b0010 for PUBREL, SUBSCRIBE
    /// and UNSUBSCRIBE [MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1], 0 for the rest (spec 2.1.3).
    public var requiredFlags: UInt8 {
        switch self {
        case .pubrel, .subscribe, .unsubscribe: return 0b0010
        default: return 0
        }
    }
}

extension ByteBuffer {
    /// Writes a fixed header: the type nibble with `type.requiredFlags`, then the remaining length.
    /// For PUBLISH use `writeMQTTPublishFixedHeader`, which takes the flags.
    @discardableResult
    public mutating func writeMQTTFixedHeader(type: PacketType, remainingLength: Int) throws -> Int {
        try self.writeMQTTFixedHeader(
            firstByte: type.rawValue << 4 | type.requiredFlags,
            remainingLength: remainingLength
        )
    }

    /// Writes the fixed header of a PUBLISH: type 3 with DUP, QoS and RETAIN in the low nibble (spec 3.3.1),
    /// then `remainingLength`. DUP is written as 0 for QoS 0 [MQTT-3.3.1-2].
    @discardableResult
    public mutating func writeMQTTPublishFixedHeader(qos: QoS, retain: Bool, dup: Bool, remainingLength: Int) throws
        -> Int
    {
        var firstByte = PacketType.publish.rawValue << 4 | qos.rawValue << 1
        if dup && qos != .atMostOnce { firstByte |= 0b1000 }
        if retain { firstByte |= 0b0001 }
        return try self.writeMQTTFixedHeader(firstByte: firstByte, remainingLength: remainingLength)
    }

    private mutating func writeMQTTFixedHeader(firstByte: UInt8, remainingLength: Int) throws -> Int {
        guard remainingLength <= MQTTVariableByteInteger.maximum else {
            throw MQTTWireError.packetTooLarge(
                "remaining length \(remainingLength) exceeds \(MQTTVariableByteInteger.maximum)"
            )
        }
        return self.writeInteger(firstByte) + (try self.writeMQTTVariableByteInteger(remainingLength))
    }
}

// MARK: - PUBLISH, shared among subscribers

extension MQTTPacket.Publish {
    /// The remaining length of this PUBLISH for `version`, payload included.
    public func remainingLength(version: ProtocolVersion) -> Int {
        self.remainingLength(version: version, payloadLength: self.payload.readableBytes)
    }

    /// The remaining length with a payload of `payloadLength` bytes instead of `payload`.
    public func remainingLength(version: ProtocolVersion, payloadLength: Int) -> Int {
        var length = 2 + self.topic.utf8.count + payloadLength
        if self.qos != .atMostOnce { length += 2 }
        if version.isV5 { length += self.properties.encodedLengthWithPrefix }
        return length
    }
}

extension ByteBuffer {
    /// Writes every byte of `publish` that comes before its payload, so that a broker can encode the payload
    /// once and send the same slice to every subscriber.
    ///
    /// The layout of a PUBLISH is
    ///
    ///     [fixed header: 0x3_ + remaining length][topic][packet identifier if QoS > 0][properties (MQTT 5)]
    ///     [payload]
    ///
    /// Everything before the payload can differ per subscriber (QoS, RETAIN, DUP, packet identifier, topic
    /// alias, subscription identifiers), so this function writes that part, given the length of the payload
    /// the caller sends after it: write this header into a small buffer, then write the shared payload slice
    /// (`publish.payload`, never copied) behind it. `publish.payload` itself is only used for its length.
    ///
    /// - Returns: the number of bytes written; the header promises `publish.payload.readableBytes` more.
    @discardableResult
    public mutating func writeMQTTPublishHeader(_ publish: MQTTPacket.Publish, version: ProtocolVersion) throws
        -> Int
    {
        try self.writeMQTTPublishHeader(publish, payloadLength: publish.payload.readableBytes, version: version)
    }

    /// As `writeMQTTPublishHeader(_:version:)`, for a payload of `payloadLength` bytes that the caller keeps
    /// elsewhere; `publish.payload` is ignored. On a throw the buffer is left as it was.
    @discardableResult
    public mutating func writeMQTTPublishHeader(
        _ publish: MQTTPacket.Publish,
        payloadLength: Int,
        version: ProtocolVersion
    ) throws -> Int {
        let start = self.writerIndex
        do {
            var written = try self.writeMQTTPublishFixedHeader(
                qos: publish.qos,
                retain: publish.retain,
                dup: publish.dup,
                remainingLength: publish.remainingLength(version: version, payloadLength: payloadLength)
            )
            written += try self.writeMQTTString(publish.topic)
            if publish.qos != .atMostOnce {
                guard let packetIdentifier = publish.packetIdentifier, packetIdentifier != 0 else {
                    throw MQTTWireError.protocolError("a PUBLISH with QoS > 0 needs a non-zero packet identifier")
                }
                written += self.writeMQTTTwoByteInteger(packetIdentifier)
            }
            if version.isV5 {
                written += try self.writeMQTTProperties(publish.properties)
            }
            return written
        } catch {
            self.moveWriterIndex(to: start)
            throw error
        }
    }
}

extension ByteBuffer {
    /// As `writeMQTTPublishHeader(_:payloadLength:version:)` for a PUBLISH without properties (MQTT 5: a
    /// property length of 0), the common case, written straight from its parts: no `MQTTPacket.Publish` is made.
    /// On a throw the buffer is left as it was.
    @discardableResult
    public mutating func writeMQTTPublishHeader(
        topic: String,
        qos: QoS,
        retain: Bool,
        dup: Bool,
        packetIdentifier: UInt16?,
        payloadLength: Int,
        version: ProtocolVersion
    ) throws -> Int {
        let topicLength = topic.utf8.count
        guard topicLength <= MQTTTopic.maximumLength else {
            throw MQTTWireError.malformedPacket("topic of \(topicLength) bytes is longer than 65,535 [MQTT-1.5.4-1]")
        }
        var remainingLength = 2 + topicLength + payloadLength
        if qos != .atMostOnce { remainingLength += 2 }
        if version.isV5 { remainingLength += 1 }
        let start = self.writerIndex
        var written = try self.writeMQTTPublishFixedHeader(qos: qos, retain: retain, dup: dup, remainingLength: remainingLength)
        written += self.writeInteger(UInt16(topicLength))
        written += self.writeString(topic)
        if qos != .atMostOnce {
            guard let packetIdentifier, packetIdentifier != 0 else {
                self.moveWriterIndex(to: start)
                throw MQTTWireError.protocolError("a PUBLISH with QoS > 0 needs a non-zero packet identifier")
            }
            written += self.writeInteger(packetIdentifier)
        }
        if version.isV5 { written += self.writeInteger(UInt8(0)) }
        return written
    }
}

// MARK: - The other packets

extension ByteBuffer {
    private mutating func writeConnect(_ connect: MQTTPacket.Connect, version: ProtocolVersion) throws -> Int {
        guard connect.protocolVersion == version else {
            throw MQTTWireError.protocolError(
                "CONNECT for \(connect.protocolVersion) cannot be written on a \(version) connection"
            )
        }
        if !version.isV5 && connect.password != nil && connect.username == nil {
            throw MQTTWireError.protocolError("MQTT 3.1.1 needs a user name to send a password [MQTT-3.1.2-22]")
        }
        let name = version.protocolName
        var length = 2 + name.utf8.count + 1 + 1 + 2 + 2 + connect.clientIdentifier.utf8.count
        if version.isV5 { length += connect.properties.encodedLengthWithPrefix }
        if let will = connect.will {
            length += 2 + will.topic.utf8.count + 2 + will.payload.readableBytes
            if version.isV5 { length += will.properties.encodedLengthWithPrefix }
        }
        if let username = connect.username { length += 2 + username.utf8.count }
        if let password = connect.password { length += 2 + password.readableBytes }

        // Connect flags (spec 3.1.2.3); bit 0 is reserved and stays 0 [MQTT-3.1.2-3].
        var flags: UInt8 = 0
        if connect.username != nil { flags |= 0x80 }
        if connect.password != nil { flags |= 0x40 }
        if let will = connect.will {
            flags |= 0x04 | will.qos.rawValue << 3
            if will.retain { flags |= 0x20 }
        }
        if connect.cleanStart { flags |= 0x02 }

        var written = try self.writeMQTTFixedHeader(type: .connect, remainingLength: length)
        written += try self.writeMQTTString(name)
        written += self.writeInteger(version.rawValue)
        written += self.writeInteger(flags)
        written += self.writeMQTTTwoByteInteger(connect.keepAlive)
        if version.isV5 { written += try self.writeMQTTProperties(connect.properties) }
        written += try self.writeMQTTString(connect.clientIdentifier)
        if let will = connect.will {
            if version.isV5 { written += try self.writeMQTTProperties(will.properties) }
            written += try self.writeMQTTString(will.topic)
            written += try self.writeMQTTBinaryData(will.payload)
        }
        if let username = connect.username { written += try self.writeMQTTString(username) }
        if let password = connect.password { written += try self.writeMQTTBinaryData(password) }
        return written
    }

    private mutating func writeConnAck(_ connack: MQTTPacket.ConnAck, version: ProtocolVersion) throws -> Int {
        // Session Present is 0 whenever the connection is refused [MQTT-3.2.2-4 (3.1.1), MQTT-3.2.2-6 (5)];
        // in 3.1 the whole byte is reserved.
        let sessionPresent = connack.sessionPresent && !connack.reasonCode.isFailure && version != .v3_1
        let flags: UInt8 = sessionPresent ? 1 : 0
        guard version.isV5 else {
            let returnCode = LegacyConnectReturnCode(connack.reasonCode)
            return try self.writeMQTTFixedHeader(type: .connack, remainingLength: 2)
                + self.writeInteger(flags) + self.writeInteger(returnCode.rawValue)
        }
        let length = 2 + connack.properties.encodedLengthWithPrefix
        return try self.writeMQTTFixedHeader(type: .connack, remainingLength: length)
            + self.writeInteger(flags) + self.writeInteger(connack.reasonCode.rawValue)
            + self.writeMQTTProperties(connack.properties)
    }

    /// PUBACK, PUBREC, PUBREL and PUBCOMP (spec 3.4 to 3.7).
    private mutating func writeAck(_ ack: MQTTPacket.PubAck, type: PacketType, version: ProtocolVersion) throws -> Int {
        guard version.isV5, ack.reasonCode != .success || !ack.properties.isEmpty else {
            return try self.writeMQTTFixedHeader(type: type, remainingLength: 2)
                + self.writeMQTTTwoByteInteger(ack.packetIdentifier)
        }
        if ack.properties.isEmpty {
            return try self.writeMQTTFixedHeader(type: type, remainingLength: 3)
                + self.writeMQTTTwoByteInteger(ack.packetIdentifier) + self.writeInteger(ack.reasonCode.rawValue)
        }
        let length = 3 + ack.properties.encodedLengthWithPrefix
        return try self.writeMQTTFixedHeader(type: type, remainingLength: length)
            + self.writeMQTTTwoByteInteger(ack.packetIdentifier) + self.writeInteger(ack.reasonCode.rawValue)
            + self.writeMQTTProperties(ack.properties)
    }

    private mutating func writeSubscribe(_ subscribe: MQTTPacket.Subscribe, version: ProtocolVersion) throws -> Int {
        guard !subscribe.subscriptions.isEmpty else {
            throw MQTTWireError.protocolError("SUBSCRIBE needs at least one topic filter [MQTT-3.8.3-3]")
        }
        var length = 2
        if version.isV5 { length += subscribe.properties.encodedLengthWithPrefix }
        for subscription in subscribe.subscriptions { length += 3 + subscription.filter.utf8.count }

        var written = try self.writeMQTTFixedHeader(type: .subscribe, remainingLength: length)
        written += self.writeMQTTTwoByteInteger(subscribe.packetIdentifier)
        if version.isV5 { written += try self.writeMQTTProperties(subscribe.properties) }
        for subscription in subscribe.subscriptions {
            written += try self.writeMQTTString(subscription.filter)
            written += self.writeInteger(subscription.options.encoded(version: version))
        }
        return written
    }

    private mutating func writeSubAck(_ suback: MQTTPacket.SubAck, version: ProtocolVersion) throws -> Int {
        var length = 2 + suback.reasonCodes.count
        if version.isV5 { length += suback.properties.encodedLengthWithPrefix }
        var written = try self.writeMQTTFixedHeader(type: .suback, remainingLength: length)
        written += self.writeMQTTTwoByteInteger(suback.packetIdentifier)
        if version.isV5 { written += try self.writeMQTTProperties(suback.properties) }
        for reasonCode in suback.reasonCodes {
            // 3.1.1 knows the granted QoS values and 0x80 only [MQTT-3.9.3-2].
            let failure = ReasonCode.unspecifiedError.rawValue
            written += self.writeInteger(version.isV5 || !reasonCode.isFailure ? reasonCode.rawValue : failure)
        }
        return written
    }

    private mutating func writeUnsubscribe(_ unsubscribe: MQTTPacket.Unsubscribe, version: ProtocolVersion) throws
        -> Int
    {
        guard !unsubscribe.filters.isEmpty else {
            throw MQTTWireError.protocolError("UNSUBSCRIBE needs at least one topic filter [MQTT-3.10.3-2]")
        }
        var length = 2
        if version.isV5 { length += unsubscribe.properties.encodedLengthWithPrefix }
        for filter in unsubscribe.filters { length += 2 + filter.utf8.count }

        var written = try self.writeMQTTFixedHeader(type: .unsubscribe, remainingLength: length)
        written += self.writeMQTTTwoByteInteger(unsubscribe.packetIdentifier)
        if version.isV5 { written += try self.writeMQTTProperties(unsubscribe.properties) }
        for filter in unsubscribe.filters { written += try self.writeMQTTString(filter) }
        return written
    }

    private mutating func writeUnsubAck(_ unsuback: MQTTPacket.UnsubAck, version: ProtocolVersion) throws -> Int {
        guard version.isV5 else {
            return try self.writeMQTTFixedHeader(type: .unsuback, remainingLength: 2)
                + self.writeMQTTTwoByteInteger(unsuback.packetIdentifier)
        }
        let length = 2 + unsuback.properties.encodedLengthWithPrefix + unsuback.reasonCodes.count
        var written = try self.writeMQTTFixedHeader(type: .unsuback, remainingLength: length)
        written += self.writeMQTTTwoByteInteger(unsuback.packetIdentifier)
        written += try self.writeMQTTProperties(unsuback.properties)
        for reasonCode in unsuback.reasonCodes { written += self.writeInteger(reasonCode.rawValue) }
        return written
    }

    /// MQTT 5 DISCONNECT and AUTH: nothing after the fixed header for reason 0x00 without properties
    /// (spec 3.14.2.1, 3.15.2.1), the reason code alone without properties, else both.
    private mutating func writeReasonAndProperties(
        type: PacketType,
        reasonCode: ReasonCode,
        properties: MQTTProperties
    ) throws -> Int {
        if properties.isEmpty {
            if reasonCode == .success { return try self.writeMQTTFixedHeader(type: type, remainingLength: 0) }
            return try self.writeMQTTFixedHeader(type: type, remainingLength: 1)
                + self.writeInteger(reasonCode.rawValue)
        }
        return try self.writeMQTTFixedHeader(type: type, remainingLength: 1 + properties.encodedLengthWithPrefix)
            + self.writeInteger(reasonCode.rawValue) + self.writeMQTTProperties(properties)
    }
}

// MARK: - Subscription options

extension MQTTPacket.SubscriptionOptions {
    /// The subscription options byte (spec 3.8.3.1). 3.1 and 3.1.1 carry only the QoS; the reserved bits are
    /// always 0 [MQTT-3.8.3-5].
    public func encoded(version: ProtocolVersion) -> UInt8 {
        var byte = self.qos.rawValue
        guard version.isV5 else { return byte }
        if self.noLocal { byte |= 0x04 }
        if self.retainAsPublished { byte |= 0x08 }
        byte |= self.retainHandling.rawValue << 4
        return byte
    }
}
