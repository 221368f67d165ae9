import MQTTWire
import NIOCore
import Testing

/// One packet the decoder must refuse, named by the normative statement it breaks.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// `nil` decodes with a server-mode parser, which expects CONNECT first.
    var version: ProtocolVersion?
    var bytes: [UInt8]
    var code: MQTTWireError.Code

    var testDescription: String { self.name }

    init(_ name: String, _ version: ProtocolVersion?, _ bytes: [UInt8], _ code: MQTTWireError.Code) {
        self.name = name
        self.version = version
        self.bytes = bytes
        self.code = code
    }
}

/// A CONNECT with the given flags byte and payload after a client identifier "c".
private func connectPacketBytes(
    level: UInt8 = 4,
    flags: UInt8,
    name: String = "MQTT",
    payload extra: [UInt8] = []
) -> [UInt8] {
    let body = [0x00, UInt8(name.utf8.count)] + ascii(name) + [level, flags, 0x00, 0x3C]
        + (level == 5 ? [0x00] : []) + [0x00, 0x01] + ascii("c") + extra
    return [0x10, UInt8(body.count)] + body
}

/// An MQTT 5 PUBACK for packet identifier 1 with reason 0x00 and the given properties.
private func pubAckV5(properties: [UInt8]) -> [UInt8] {
    [0x40, UInt8(4 + properties.count), 0x00, 0x01, 0x00, UInt8(properties.count)] + properties
}

/// An MQTT 5 CONNACK with the given properties.
private func connAckV5(properties: [UInt8]) -> [UInt8] {
    [0x20, UInt8(3 + properties.count), 0x00, 0x00, UInt8(properties.count)] + properties
}

extension MalformedCase {
    static let all: [MalformedCase] = fixedHeader + connect + publish + subscribe + other + properties

    static let fixedHeader: [MalformedCase] = [
        .init("[MQTT-2.2.2-2] PUBACK with reserved flags set", .v3_1_1, [0x41, 0x02, 0x00, 0x01], .malformedPacket),
        .init("[MQTT-2.1.3-1] PINGREQ with reserved flags set", .v5, [0xC8, 0x00], .malformedPacket),
        .init("[MQTT-2.1.3-1] CONNECT with reserved flags set", nil, [0x12, 0x00], .malformedPacket),
        .init("[MQTT-3.6.1-1] PUBREL with flags 0", .v3_1_1, [0x60, 0x02, 0x00, 0x01], .malformedPacket),
        .init(
            "[MQTT-3.8.1-1] SUBSCRIBE with flags 0",
            .v3_1_1,
            [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.10.1-1] UNSUBSCRIBE with flags 0",
            .v5,
            [0xA0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61],
            .malformedPacket
        ),
        .init("[MQTT-2.1.2] packet type 0 is reserved", .v5, [0x00, 0x00], .malformedPacket),
        .init("[MQTT-2.2.1 (3.1.1)] packet type 15 is reserved before MQTT 5", .v3_1_1, [0xF0, 0x00], .malformedPacket),
        .init("[MQTT-3.1.0-1] the first packet must be CONNECT", nil, [0xC0, 0x00], .protocolError),
    ]

    static let connect: [MalformedCase] = [
        .init("[MQTT-3.1.2-3] CONNECT reserved flag set", nil, Self.connectBytes(flags: 0x03), .malformedPacket),
        .init(
            "[MQTT-3.1.2-11, 3.1.1 MQTT-3.1.2-13] Will QoS without Will Flag",
            nil,
            Self.connectBytes(flags: 0x0A),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.2-13, 3.1.1 MQTT-3.1.2-15] Will Retain without Will Flag",
            nil,
            Self.connectBytes(flags: 0x22),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.2-12, 3.1.1 MQTT-3.1.2-14] Will QoS 3",
            nil,
            Self.connectBytes(flags: 0x1E, payload: [0x00, 0x01, 0x77, 0x00, 0x00]),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.2-22] 3.1.1 password without user name",
            nil,
            Self.connectBytes(flags: 0x42, payload: [0x00, 0x01, 0x70]),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.2-22] 3.1 password without user name",
            nil,
            Self.connectBytes(level: 3, flags: 0x42, name: "MQIsdp", payload: [0x00, 0x01, 0x70]),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.3-4] CONNECT ends inside its client identifier",
            nil,
            [0x10, 0x0C, 0x00, 0x04] + ascii("MQTT") + [0x04, 0x02, 0x00, 0x3C, 0x00, 0x01],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.3-11] will topic with a wildcard",
            nil,
            Self.connectBytes(flags: 0x06, payload: [0x00, 0x01, 0x23, 0x00, 0x00]),
            .topicNameInvalid
        ),
    ]

    static func connectBytes(level: UInt8 = 4, flags: UInt8, name: String = "MQTT", payload: [UInt8] = [])
        -> [UInt8]
    {
        connectPacketBytes(level: level, flags: flags, name: name, payload: payload)
    }

    static let publish: [MalformedCase] = [
        .init(
            "[MQTT-3.3.1-4] PUBLISH with QoS 3",
            .v3_1_1,
            [0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01],
            .malformedPacket
        ),
        .init("[MQTT-3.3.1-2] PUBLISH QoS 0 with DUP", .v5, [0x38, 0x04, 0x00, 0x01, 0x74, 0x00], .malformedPacket),
        .init(
            "[MQTT-3.3.2-2] PUBLISH topic with #",
            .v3_1_1,
            [0x30, 0x05, 0x00, 0x03] + ascii("a/#"),
            .topicNameInvalid
        ),
        .init(
            "[MQTT-3.3.2-2] PUBLISH topic with +",
            .v5,
            [0x30, 0x06, 0x00, 0x03] + ascii("+/a") + [0x00],
            .topicNameInvalid
        ),
        .init("[MQTT-4.7.3-1] 3.1.1 PUBLISH with empty topic", .v3_1_1, [0x30, 0x02, 0x00, 0x00], .topicNameInvalid),
        .init(
            "[MQTT-3.3.2-1] 5 PUBLISH empty topic without alias",
            .v5,
            [0x30, 0x03, 0x00, 0x00, 0x00],
            .protocolError
        ),
        .init("[MQTT-1.5.4-2] PUBLISH topic with U+0000", .v3_1_1, [0x30, 0x03, 0x00, 0x01, 0x00], .invalidUTF8),
        .init(
            "[MQTT-1.5.4-1] PUBLISH topic with a surrogate",
            .v3_1_1,
            [0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80],
            .invalidUTF8
        ),
        .init("[MQTT-1.5.4-1] PUBLISH topic ill-formed", .v3_1_1, [0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], .invalidUTF8),
        .init(
            "[MQTT-2.3.1-1, MQTT-2.2.1-3] PUBLISH QoS 1 with packet identifier 0",
            .v3_1_1,
            [0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x00],
            .protocolError
        ),
        .init("[MQTT-2.2.3] PUBLISH ends inside its topic", .v3_1_1, [0x30, 0x02, 0x00, 0x05], .malformedPacket),
        .init(
            "[MQTT-2.2.3] PUBLISH QoS 1 ends inside its packet identifier",
            .v3_1_1,
            [0x32, 0x04, 0x00, 0x01, 0x74, 0x00],
            .malformedPacket
        ),
    ]

    static let subscribe: [MalformedCase] = [
        .init("[MQTT-3.8.3-3] SUBSCRIBE without filters", .v3_1_1, [0x82, 0x02, 0x00, 0x01], .protocolError),
        .init("[MQTT-3.8.3-3] 5 SUBSCRIBE without filters", .v5, [0x82, 0x03, 0x00, 0x01, 0x00], .protocolError),
        .init("[MQTT-3.10.3-2] UNSUBSCRIBE without filters", .v3_1_1, [0xA2, 0x02, 0x00, 0x01], .protocolError),
        .init("[MQTT-3.10.3-2] 5 UNSUBSCRIBE without filters", .v5, [0xA2, 0x03, 0x00, 0x01, 0x00], .protocolError),
        .init(
            "[MQTT-3.8.3-4] 3.1.1 SUBSCRIBE reserved option bits",
            .v3_1_1,
            [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x04],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.8.3-4] 3.1.1 SUBSCRIBE with QoS 3",
            .v3_1_1,
            [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.8.3-5] 5 SUBSCRIBE reserved option bits",
            .v5,
            [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x40],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.8.3.1] 5 SUBSCRIBE Retain Handling 3",
            .v5,
            [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x30],
            .protocolError
        ),
        .init(
            "[MQTT-2.3.1-1, MQTT-2.2.1-3] SUBSCRIBE with packet identifier 0",
            .v3_1_1,
            [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00],
            .protocolError
        ),
        .init(
            "[MQTT-2.3.1-1, MQTT-2.2.1-3] UNSUBSCRIBE with packet identifier 0",
            .v3_1_1,
            [0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x61],
            .protocolError
        ),
        .init(
            "[MQTT-2.2.3] SUBSCRIBE ends before its options byte",
            .v3_1_1,
            [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
            .malformedPacket
        ),
        .init(
            "[MQTT-3.9.3-2] 3.1.1 SUBACK reserved return code",
            .v3_1_1,
            [0x90, 0x03, 0x00, 0x01, 0x03],
            .malformedPacket
        ),
    ]

    static let other: [MalformedCase] = [
        .init("[MQTT-2.3.1-1] PUBACK with packet identifier 0", .v3_1_1, [0x40, 0x02, 0x00, 0x00], .protocolError),
        .init("[MQTT-2.2.1-3] PUBREL with packet identifier 0", .v5, [0x62, 0x02, 0x00, 0x00], .protocolError),
        .init("[MQTT-2.2.3] PUBACK with bytes left over", .v3_1_1, [0x40, 0x03, 0x00, 0x01, 0x00], .malformedPacket),
        .init("[MQTT-2.2.3] PINGREQ with a body", .v3_1_1, [0xC0, 0x01, 0x00], .malformedPacket),
        .init("[MQTT-2.2.3] 3.1.1 DISCONNECT with a body", .v3_1_1, [0xE0, 0x01, 0x00], .malformedPacket),
        .init("[MQTT-2.2.3] PUBACK cut short", .v5, [0x40, 0x01, 0x00], .malformedPacket),
        .init("[MQTT-2.2.3] CONNACK cut short", .v3_1_1, [0x20, 0x01, 0x00], .malformedPacket),
        .init("[MQTT-3.2.2-1] CONNACK reserved flags set", .v5, [0x20, 0x03, 0x02, 0x00, 0x00], .malformedPacket),
        .init(
            "[MQTT-3.2.2-4] 3.1.1 CONNACK refusing with Session Present",
            .v3_1_1,
            [0x20, 0x02, 0x01, 0x05],
            .protocolError
        ),
        .init("[MQTT-3.2.2.3] 3.1.1 CONNACK reserved return code", .v3_1_1, [0x20, 0x02, 0x00, 0x06], .protocolError),
        .init(
            "[MQTT-1.5.5-1] remaining length not minimally encoded",
            .v5,
            [0xC0, 0x80, 0x00],
            .malformedPacket
        ),
        .init(
            "[MQTT-1.5.5] remaining length of five bytes",
            .v5,
            [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            .malformedPacket
        ),
    ]

    static let properties: [MalformedCase] = [
        .init(
            "[MQTT-2.2.2.2] property not allowed in the packet (Topic Alias in PUBACK)",
            .v5,
            pubAckV5(properties: [0x23, 0x00, 0x01]),
            .malformedPacket
        ),
        .init("[MQTT-2.2.2.2] unknown property identifier", .v5, pubAckV5(properties: [0x05, 0x00]), .malformedPacket),
        .init(
            "[MQTT-3.4.2.2.2] Reason String twice",
            .v5,
            pubAckV5(properties: [0x1F, 0x00, 0x01, 0x61, 0x1F, 0x00, 0x01, 0x62]),
            .protocolError
        ),
        .init(
            "[MQTT-2.2.2.2] property value runs past the property length",
            .v5,
            [0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x1F, 0x00, 0x05],
            .malformedPacket
        ),
        .init(
            "[MQTT-2.2.2.1] property length runs past the packet",
            .v5,
            [0x40, 0x04, 0x00, 0x01, 0x00, 0x05],
            .malformedPacket
        ),
        .init("[MQTT-3.2.2.3.3] Receive Maximum 0", .v5, connAckV5(properties: [0x21, 0x00, 0x00]), .protocolError),
        .init(
            "[MQTT-3.2.2.3.6] Maximum Packet Size 0",
            .v5,
            connAckV5(properties: [0x27, 0x00, 0x00, 0x00, 0x00]),
            .protocolError
        ),
        .init("[MQTT-3.2.2.3.4] Maximum QoS 2", .v5, connAckV5(properties: [0x24, 0x02]), .protocolError),
        .init("[MQTT-3.2.2.3.5] Retain Available 2", .v5, connAckV5(properties: [0x25, 0x02]), .protocolError),
        .init(
            "[MQTT-3.2.2.3.11] Wildcard Subscription Available 2",
            .v5,
            connAckV5(properties: [0x28, 0x02]),
            .protocolError
        ),
        .init(
            "[MQTT-3.2.2.3.3] Receive Maximum twice",
            .v5,
            connAckV5(properties: [0x21, 0x00, 0x01, 0x21, 0x00, 0x01]),
            .protocolError
        ),
        .init(
            "[MQTT-3.3.2.3.2] Payload Format Indicator 2",
            .v5,
            [0x30, 0x06, 0x00, 0x01, 0x74, 0x02, 0x01, 0x02],
            .protocolError
        ),
        .init(
            "[MQTT-3.8.2.1.2] Subscription Identifier 0",
            .v5,
            [0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 0x61, 0x00],
            .protocolError
        ),
        .init(
            "[MQTT-3.8.2.1.2] Subscription Identifier twice in SUBSCRIBE",
            .v5,
            [0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 0x61, 0x00],
            .protocolError
        ),
        .init(
            "[MQTT-3.1.3.2] will properties only allow will properties (Session Expiry Interval)",
            nil,
            connectPacketBytes(
                level: 5,
                flags: 0x06,
                payload: [0x05, 0x11, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x77, 0x00, 0x00]
            ),
            .malformedPacket
        ),
        .init(
            "[MQTT-3.1.2.11] CONNECT does not allow Will Delay Interval",
            nil,
            [0x10, 0x12, 0x00, 0x04] + ascii("MQTT") + [0x05, 0x02, 0x00, 0x3C, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01]
                + [0x00, 0x01] + ascii("c"),
            .malformedPacket
        ),
    ]
}

@Suite("Malformed and forbidden packets")
struct MalformedPacketTests {
    @Test("is refused", arguments: MalformedCase.all)
    func refused(sample: MalformedCase) {
        var parser = sample.version.map { MQTTPacketParser(version: $0) } ?? MQTTPacketParser()
        var input = buffer(sample.bytes)
        #expect { _ = try parser.parse(&input) } throws: { error in
            guard let error = error as? MQTTWireError else { return false }
            return error.code == sample.code
        }
    }

    @Test("[MQTT-3.1.0-2] a second CONNECT is a protocol error")
    func secondConnect() throws {
        var parser = MQTTPacketParser()
        let bytes = connectPacketBytes(flags: 0x02)
        var input = buffer(bytes + bytes)
        _ = try parser.parse(&input)
        #expect(throws: MQTTWireError.self) { try parser.parse(&input) }
        #expect { try parser.parse(&input) } throws: { ($0 as? MQTTWireError)?.reasonCode == .protocolError }
    }

    static let unsupportedProtocols: [(String, UInt8, ProtocolVersion)] = [
        ("MQTT", 6, .v3_1_1),
        ("MQTT", 3, .v3_1_1),
        ("MQIsdp", 4, .v3_1_1),
        ("MQIsdp", 5, .v5),
        ("HTTP", 4, .v3_1_1),
    ]

    @Test("[MQTT-3.1.2-1, MQTT-3.1.2-2] an unsupported protocol name or level can still be answered with CONNACK",
        arguments: unsupportedProtocols)
    func unsupportedProtocolVersion(name: String, level: UInt8, responseVersion: ProtocolVersion) throws {
        var parser = MQTTPacketParser()
        var input = buffer(connectPacketBytes(level: level, flags: 0x02, name: name))
        do {
            _ = try parser.parse(&input)
            Issue.record("accepted \(name) level \(level)")
        } catch let error as MQTTWireError {
            #expect(error.code == .unsupportedProtocolVersion)
            #expect(error.protocolLevel == level)
            #expect(error.unsupportedProtocolResponseVersion == responseVersion)
            #expect(error.reasonCode == .unsupportedProtocolVersion)
            // The answer: 0x01 in a 3.1.1 CONNACK, 0x84 in an MQTT 5 one.
            let connack = try encode(.connack(.init(reasonCode: error.reasonCode)), responseVersion)
            #expect(connack == (responseVersion.isV5 ? [0x20, 0x03, 0x00, 0x84, 0x00] : [0x20, 0x02, 0x00, 0x01]))
        }
    }

    @Test("[MQTT-3.3.2-8] a Topic Alias of 0 decodes, for the engine to judge against its maximum")
    func topicAliasZeroDecodes() throws {
        let packet = try decode([0x30, 0x07, 0x00, 0x01, 0x74, 0x03, 0x23, 0x00, 0x00], .v5)
        guard case .publish(let publish) = packet else { Issue.record("not a PUBLISH"); return }
        #expect(publish.properties.topicAlias == 0)
    }

    @Test("[MQTT-3.3.4-3] PUBLISH may repeat Subscription Identifier; User Property keeps order and duplicates")
    func repeatableProperties() throws {
        let properties: [UInt8] = [0x0B, 0x01, 0x0B, 0x02, 0x26, 0x00, 0x01, 0x62, 0x00, 0x00, 0x26, 0x00, 0x01,
            0x61, 0x00, 0x00, 0x26, 0x00, 0x01, 0x62, 0x00, 0x00]
        let bytes = [0x30, UInt8(4 + properties.count), 0x00, 0x01, 0x74, UInt8(properties.count)] + properties
        guard case .publish(let publish) = try decode(bytes, .v5) else { Issue.record("not a PUBLISH"); return }
        #expect(publish.properties.subscriptionIdentifiers == [1, 2])
        #expect(publish.properties.userProperties.map(\.name) == ["b", "a", "b"])
    }

    @Test("errors map to the MQTT 5 reason codes of DISCONNECT")
    func reasonCodes() {
        #expect(MQTTWireError.malformedPacket("").reasonCode == .malformedPacket)
        #expect(MQTTWireError.invalidUTF8("").reasonCode == .malformedPacket)
        #expect(MQTTWireError.protocolError("").reasonCode == .protocolError)
        #expect(MQTTWireError.packetTooLarge("").reasonCode == .packetTooLarge)
        #expect(MQTTWireError.unsupportedProtocolVersion(level: 9, name: "MQTT").reasonCode.rawValue == 0x84)
        #expect(MQTTWireError.topicNameInvalid("").reasonCode == .topicNameInvalid)
        #expect(MQTTWireError.topicAliasInvalid("").reasonCode == .topicAliasInvalid)
        #expect(ReasonCode(MQTTWireError.packetTooLarge("")) == ReasonCode(0x95))
        #expect(MQTTWireError.malformedPacket("").unsupportedProtocolResponseVersion == nil)
    }
}

@Suite("Encoder refusals")
struct EncoderRefusalTests {
    @Test("packets a version cannot express are refused and leave the buffer untouched")
    func refusals() {
        let refused: [(MQTTPacket, ProtocolVersion)] = [
            (.auth(.init()), .v3_1_1),
            (.connect(.init(protocolVersion: .v3_1_1, clientIdentifier: "c", password: payload([1]))), .v3_1_1),
            (.connect(.init(protocolVersion: .v5, clientIdentifier: "c")), .v3_1_1),
            (.publish(.init(topic: "t", payload: payload([]), qos: .atLeastOnce)), .v5),
            (.subscribe(.init(packetIdentifier: 1, subscriptions: [])), .v5),
            (.unsubscribe(.init(packetIdentifier: 1, filters: [])), .v3_1_1),
            (.publish(.init(topic: String(repeating: "t", count: 70_000), payload: payload([]))), .v5),
        ]
        for (packet, version) in refused {
            var out = ByteBuffer(bytes: [0xAA])
            #expect(throws: MQTTWireError.self) { try out.writeMQTTPacket(packet, version: version) }
            #expect(Array(out.readableBytesView) == [0xAA])
        }
    }

    @Test("a packet above the largest remaining length is refused as too large")
    func tooLarge() {
        var out = ByteBuffer()
        #expect { try out.writeMQTTPublishFixedHeader(qos: .atMostOnce, retain: false, dup: false,
            remainingLength: 268_435_456) } throws: { ($0 as? MQTTWireError)?.code == .packetTooLarge }
        #expect(out.readableBytes == 0)
    }

    @Test("[MQTT-3.3.1-2] DUP is never written for QoS 0")
    func noDupAtQoS0() throws {
        let packet = MQTTPacket.publish(.init(topic: "t", payload: payload([]), dup: true, packetIdentifier: 5))
        #expect(try encode(packet, .v3_1_1) == [0x30, 0x03, 0x00, 0x01, 0x74])
    }
}
