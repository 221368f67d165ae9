import MQTTWire
import NIOCore
import Testing

@Suite("ByteBuffer MQTT primitives")
struct ByteBufferMQTTTests {
    static let variableByteIntegers: [(Int, [UInt8])] = [
        (0, [0x00]),
        (127, [0x7F]),
        (128, [0x80, 0x01]),
        (16_383, [0xFF, 0x7F]),
        (16_384, [0x80, 0x80, 0x01]),
        (2_097_151, [0xFF, 0xFF, 0x7F]),
        (2_097_152, [0x80, 0x80, 0x80, 0x01]),
        (268_435_455, [0xFF, 0xFF, 0xFF, 0x7F]),
    ]

    @Test("variable byte integer boundaries [MQTT-1.5.5-1]", arguments: variableByteIntegers)
    func variableByteInteger(value: Int, bytes: [UInt8]) throws {
        var out = ByteBuffer()
        #expect(try out.writeMQTTVariableByteInteger(value) == bytes.count)
        #expect(Array(out.readableBytesView) == bytes)
        #expect(MQTTVariableByteInteger.encodedLength(value) == bytes.count)
        var input = buffer(bytes + [0xEE])
        #expect(try input.readMQTTVariableByteInteger() == value)
        #expect(input.readableBytes == 1)
        // Every proper prefix needs more bytes and leaves the reader index alone.
        for cut in 0..<bytes.count {
            var partial = buffer(Array(bytes.prefix(cut)))
            #expect(try partial.readMQTTVariableByteInteger() == nil)
            #expect(partial.readableBytes == cut)
        }
    }

    @Test("a fifth variable byte integer byte is malformed")
    func variableByteIntegerOverflow() {
        for bytes: [UInt8] in [[0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x80, 0x80, 0x80, 0x80]] {
            var input = buffer(bytes)
            #expect(throws: MQTTWireError.self) { try input.readMQTTVariableByteInteger() }
        }
        var out = ByteBuffer()
        #expect(throws: MQTTWireError.packetTooLarge("268435456 does not fit a variable byte integer")) {
            try out.writeMQTTVariableByteInteger(268_435_456)
        }
        #expect(out.readableBytes == 0)
    }

    @Test("a non-minimal variable byte integer is malformed [MQTT-1.5.5-1]",
        arguments: [[0x80, 0x00], [0xFF, 0x80, 0x00], [0x80, 0x80, 0x80, 0x00]] as [[UInt8]])
    func variableByteIntegerNonMinimal(bytes: [UInt8]) {
        var input = buffer(bytes)
        #expect { try input.readMQTTVariableByteInteger() } throws: { error in
            (error as? MQTTWireError)?.code == .malformedPacket
        }
    }

    @Test("UTF-8 strings round trip, BOM kept [MQTT-1.5.4-3]",
        arguments: ["", "a/b", "ü€𝄞", "\u{FEFF}bom", String(repeating: "x", count: 65_535)])
    func stringRoundTrip(string: String) throws {
        var out = ByteBuffer()
        #expect(try out.writeMQTTString(string) == 2 + string.utf8.count)
        #expect(try out.readMQTTString() == string)
        #expect(out.readableBytes == 0)
    }

    static let invalidUTF8: [(String, [UInt8])] = [
        ("U+0000 [MQTT-1.5.4-2]", [0x61, 0x00]),
        ("surrogate U+D800 [MQTT-1.5.4-1]", [0xED, 0xA0, 0x80]),
        ("surrogate U+DFFF [MQTT-1.5.4-1]", [0xED, 0xBF, 0xBF]),
        ("bad continuation [MQTT-1.5.4-1]", [0xC3, 0x28]),
        ("lone continuation [MQTT-1.5.4-1]", [0x80]),
        ("overlong two bytes [MQTT-1.5.4-1]", [0xC0, 0xAF]),
        ("overlong three bytes [MQTT-1.5.4-1]", [0xE0, 0x80, 0xAF]),
        ("above U+10FFFF [MQTT-1.5.4-1]", [0xF4, 0x90, 0x80, 0x80]),
        ("truncated sequence [MQTT-1.5.4-1]", [0xE2, 0x82]),
        ("invalid lead byte [MQTT-1.5.4-1]", [0xFF]),
    ]

    @Test("ill-formed UTF-8 is refused", arguments: invalidUTF8)
    func invalidString(name: String, bytes: [UInt8]) {
        var input = buffer([0x00, UInt8(bytes.count)] + bytes)
        #expect { try input.readMQTTString() } throws: { error in
            (error as? MQTTWireError)?.code == .invalidUTF8 && (error as? MQTTWireError)?.reasonCode == .malformedPacket
        }
    }

    @Test("a partial string needs more bytes and leaves the reader index alone")
    func partialString() throws {
        for bytes: [UInt8] in [[], [0x00], [0x00, 0x03, 0x61, 0x62]] {
            var input = buffer(bytes)
            #expect(try input.readMQTTString() == nil)
            #expect(input.readableBytes == bytes.count)
        }
        var pair = buffer([0x00, 0x01, 0x6B, 0x00, 0x02, 0x76])
        #expect(try pair.readMQTTStringPair() == nil)
        #expect(pair.readableBytes == 6)
    }

    @Test("strings and binary data longer than 65,535 bytes are refused")
    func tooLong() {
        var out = ByteBuffer()
        #expect(throws: MQTTWireError.self) { try out.writeMQTTString(String(repeating: "x", count: 65_536)) }
        #expect(throws: MQTTWireError.self) {
            try out.writeMQTTBinaryData(ByteBuffer(repeating: 0, count: 65_536))
        }
        #expect(out.readableBytes == 0)
    }

    @Test("binary data, two- and four-byte integers and string pairs")
    func otherPrimitives() throws {
        var out = ByteBuffer()
        #expect(try out.writeMQTTBinaryData(payload([1, 2, 3])) == 5)
        #expect(out.writeMQTTTwoByteInteger(0x1234) == 2)
        #expect(out.writeMQTTFourByteInteger(0x1234_5678) == 4)
        #expect(try out.writeMQTTStringPair(UserProperty(name: "k", value: "v")) == 6)
        #expect(Array(out.readableBytesView)
            == [0, 3, 1, 2, 3, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0, 1, 0x6B, 0, 1, 0x76])
        #expect(out.readMQTTBinaryData() == payload([1, 2, 3]))
        #expect(out.readMQTTTwoByteInteger() == 0x1234)
        #expect(out.readMQTTFourByteInteger() == 0x1234_5678)
        #expect(try out.readMQTTStringPair() == UserProperty(name: "k", value: "v"))
    }

    @Test(
        "[MQTT-3.3.1-1] a PUBLISH header written from its parts is the header of the packet without properties",
        arguments: [ProtocolVersion.v3_1_1, .v5], [QoS.atMostOnce, .atLeastOnce, .exactlyOnce]
    )
    func publishHeaderFromParts(version: ProtocolVersion, qos: QoS) throws {
        for (retain, dup) in [(false, false), (true, false), (false, true), (true, true)] {
            for payloadLength in [0, 5, 200, 20_000] {
                let topic = String(repeating: "t/", count: payloadLength % 7 + 1) + "ü"
                let identifier: UInt16? = qos == .atMostOnce ? nil : 0x1234
                let packet = MQTTPacket.Publish(
                    topic: topic,
                    payload: ByteBuffer(),
                    qos: qos,
                    retain: retain,
                    dup: dup && qos != .atMostOnce,
                    packetIdentifier: identifier
                )
                var expected = ByteBuffer()
                let expectedLength = try expected.writeMQTTPublishHeader(packet, payloadLength: payloadLength, version: version)
                var actual = ByteBuffer()
                let actualLength = try actual.writeMQTTPublishHeader(
                    topic: topic,
                    qos: qos,
                    retain: retain,
                    dup: dup,
                    packetIdentifier: identifier,
                    payloadLength: payloadLength,
                    version: version
                )
                #expect(actual == expected)
                #expect(actualLength == expectedLength)
            }
        }
    }

    @Test("[MQTT-2.2.1-2] a QoS 1 PUBLISH header without a packet identifier is refused and nothing is written")
    func publishHeaderFromPartsNeedsIdentifier() {
        var out = ByteBuffer(bytes: [0xAA])
        #expect(throws: MQTTWireError.self) {
            try out.writeMQTTPublishHeader(
                topic: "t", qos: .atLeastOnce, retain: false, dup: false, packetIdentifier: nil, payloadLength: 1, version: .v5
            )
        }
        #expect(Array(out.readableBytesView) == [0xAA])
    }
}
