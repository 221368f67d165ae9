import MQTTWire
import NIOCore
import NIOTestUtils
import Testing

@Suite("Streaming decoder")
struct MQTTPacketDecoderTests {
    @Test("ByteToMessageDecoderVerifier: byte by byte, all at once, many per read", arguments: ProtocolVersion.allCases)
    func verifier(version: ProtocolVersion) throws {
        let pairs = try RoundTripCase.samplePackets(version).map { packet in
            (buffer(try encode(packet, version)), [packet])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            MQTTPacketDecoder(version: version)
        }
    }

    @Test("a server-mode parser fed one byte at a time decodes a session", arguments: ProtocolVersion.allCases)
    func serverDripFeed(version: ProtocolVersion) throws {
        let packets = [MQTTPacket.connect(.init(protocolVersion: version, clientIdentifier: "drip"))]
            + RoundTripCase.samplePackets(version).filter { $0.type != .connect }
        var bytes: [UInt8] = []
        for packet in packets { bytes += try encode(packet, version) }

        var parser = MQTTPacketParser()
        var stream = ByteBuffer()
        var decoded: [MQTTPacket] = []
        for byte in bytes {
            stream.writeInteger(byte)
            while let packet = try parser.parse(&stream) { decoded.append(packet) }
        }
        #expect(decoded == packets)
        #expect(stream.readableBytes == 0)
        #expect(parser.version == version)
    }

    @Test("every split of a packet gives nil and leaves the reader index at the packet's start")
    func partialPacketsLeaveReaderIndex() throws {
        let bytes = try encode(RoundTripCase.samplePackets(.v5)[0], .v5)
        for cut in 0..<bytes.count {
            var parser = MQTTPacketParser()
            var input = buffer(Array(bytes.prefix(cut)))
            #expect(try parser.parse(&input) == nil)
            #expect(input.readableBytes == cut)
        }
    }

    @Test("many packets in one buffer come out in order")
    func manyInOneBuffer() throws {
        let packets = (1...500).map { index in
            MQTTPacket.publish(
                .init(topic: "t/\(index)", payload: payload([UInt8(index % 256)]), qos: .atLeastOnce,
                    packetIdentifier: UInt16(index))
            )
        }
        var stream = ByteBuffer()
        for packet in packets { try stream.writeMQTTPacket(packet, version: .v3_1_1) }
        var parser = MQTTPacketParser(version: .v3_1_1)
        var decoded: [MQTTPacket] = []
        while let packet = try parser.parse(&stream) { decoded.append(packet) }
        #expect(decoded == packets)
    }

    @Test("a packet above the maximum packet size is refused from its fixed header, before its body")
    func oversizeRefusedEarly() throws {
        var parser = MQTTPacketParser(version: .v5, maximumPacketSize: 100)
        // PUBLISH announcing 200 bytes: only the three header bytes have arrived.
        var header = buffer([0x30, 0xC8, 0x01])
        #expect { try parser.parse(&header) } throws: { error in
            (error as? MQTTWireError)?.code == .packetTooLarge && (error as? MQTTWireError)?.reasonCode.rawValue == 0x95
        }

        // Exactly at the limit is accepted: 1 + 1 + 98 bytes.
        let publish = MQTTPacket.publish(.init(topic: "t", payload: payload(Array(repeating: 1, count: 94))))
        var atLimit = buffer(try encode(publish, .v5))
        #expect(atLimit.readableBytes == 100)
        #expect(try parser.parse(&atLimit) == publish)
    }

    @Test("a server refuses an oversize CONNECT too")
    func oversizeConnect() {
        var parser = MQTTPacketParser(maximumPacketSize: 16)
        var header = buffer([0x10, 0x7F])
        #expect(throws: MQTTWireError.self) { try parser.parse(&header) }
    }

    @Test("the payload is a slice of the received bytes")
    func payloadIsSlice() throws {
        var input = buffer([0x30, 0x06, 0x00, 0x01, 0x74, 0x41, 0x42, 0x43])
        var parser = MQTTPacketParser(version: .v3_1_1)
        guard case .publish(let publish) = try parser.parse(&input) else {
            Issue.record("not a PUBLISH")
            return
        }
        #expect(Array(publish.payload.readableBytesView) == ascii("ABC"))
    }

    @Test("[MQTT-3.3.2-2] a repeated topic is taken from the last PUBLISH; a different one is still checked")
    func repeatedTopic() throws {
        func publish(_ topic: [UInt8]) -> [UInt8] {
            [0x30, UInt8(2 + topic.count + 1), 0x00, UInt8(topic.count)] + topic + [0x58]
        }
        var parser = MQTTPacketParser(version: .v3_1_1)
        var input = buffer(publish(ascii("a/b/c")) + publish(ascii("a/b/c")) + publish(ascii("a/b/d")) + publish(ascii("a/b/d")))
        var topics: [String] = []
        while let packet = try parser.parse(&input) {
            guard case .publish(let decoded) = packet else { Issue.record("not a PUBLISH"); return }
            topics.append(decoded.topic)
        }
        #expect(topics == ["a/b/c", "a/b/c", "a/b/d", "a/b/d"])
        // Same length as the last topic but with a wildcard, or with invalid UTF-8: refused as before.
        var wildcard = buffer(publish(ascii("a/b/+")))
        #expect { try parser.parse(&wildcard) } throws: { ($0 as? MQTTWireError)?.code == .topicNameInvalid }
        var invalid = buffer(publish([0x61, 0x2F, 0x62, 0x2F, 0xFF]))
        #expect { try parser.parse(&invalid) } throws: { ($0 as? MQTTWireError)?.code == .invalidUTF8 }
        // A shorter topic that is a prefix of the last one is its own topic.
        var prefix = buffer(publish(ascii("a/b")))
        guard case .publish(let shorter)? = try parser.parse(&prefix) else { Issue.record("not a PUBLISH"); return }
        #expect(shorter.topic == "a/b")
    }
}
