import MQTTWire
import NIOCore
import NIOEmbedded
import Testing

@testable import PetrelServer

/// The reader in front of the connection handler: any split of the byte stream gives the same packets.
@Suite("Packet reader")
struct MQTTPacketReaderTests {
    /// A session as a server receives it: CONNECT, then packets of every kind a client sends.
    static func session(_ version: ProtocolVersion) -> [MQTTPacket] {
        var publishProperties = MQTTProperties()
        if version == .v5 { publishProperties.contentType = "text/plain" }
        return [
            .connect(.init(protocolVersion: version, clientIdentifier: "reader", keepAlive: 30)),
            .subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "a/+", qos: .atLeastOnce)])),
            .publish(.init(topic: "a/b", payload: ByteBuffer(string: "small"), qos: .atLeastOnce, packetIdentifier: 2)),
            .publish(
                .init(
                    topic: "a/large",
                    payload: ByteBuffer(repeating: 0x5A, count: 5000),
                    properties: publishProperties
                )
            ),
            .puback(.init(packetIdentifier: 7)),
            .pingreq,
            .publish(.init(topic: "a/empty", payload: ByteBuffer())),
            .unsubscribe(.init(packetIdentifier: 3, filters: ["a/+"])),
        ]
    }

    static func bytes(_ packets: [MQTTPacket], _ version: ProtocolVersion) throws -> [UInt8] {
        var buffer = ByteBuffer()
        for packet in packets { try buffer.writeMQTTPacket(packet, version: version) }
        return Array(buffer.readableBytesView)
    }

    /// Feeds `chunks` one read each and returns what came out of the reader.
    static func read(_ chunks: [ArraySlice<UInt8>]) throws -> [MQTTPacket] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MQTTPacketReader(maximumPacketSize: 1 << 20))
        var packets: [MQTTPacket] = []
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
            while let packet = try channel.readInbound(as: MQTTPacket.self) { packets.append(packet) }
        }
        _ = try channel.finish()
        return packets
    }

    @Test("all at once, one byte per read, and every split in two", arguments: [ProtocolVersion.v3_1_1, .v5])
    func splits(version: ProtocolVersion) throws {
        let packets = Self.session(version)
        let bytes = try Self.bytes(packets, version)
        #expect(try Self.read([bytes[...]]) == packets)
        #expect(try Self.read(bytes.indices.map { bytes[$0...$0] }) == packets)
        for cut in stride(from: 1, to: bytes.count, by: 7) {
            #expect(try Self.read([bytes[..<cut], bytes[cut...]]) == packets, "split at \(cut)")
        }
    }

    @Test("reads of a busy connection that each end inside a packet")
    func unevenReads() throws {
        let packets = Self.session(.v5) + Array(repeating: Self.session(.v5).dropFirst(), count: 20).joined()
        let bytes = try Self.bytes(packets, .v5)
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        var size = 3
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            chunks.append(bytes[start..<end])
            start = end
            size = size * 3 % 1021 + 1
        }
        #expect(try Self.read(chunks) == packets)
    }

    @Test("a malformed packet is passed on as an MQTTWireError and the bytes after it are dropped")
    func malformed() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MQTTPacketReader(maximumPacketSize: 1 << 20))
        var bytes = try Self.bytes([.connect(.init(protocolVersion: .v5, clientIdentifier: "bad"))], .v5)
        // PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4].
        bytes += [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]
        #expect(throws: MQTTWireError.self) { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        guard case .connect = try channel.readInbound(as: MQTTPacket.self) else {
            Issue.record("expected the CONNECT before the malformed packet")
            return
        }
        try channel.writeInbound(ByteBuffer(bytes: try Self.bytes([.pingreq], .v5)))
        #expect(try channel.readInbound(as: MQTTPacket.self) == nil)
        _ = try channel.finish()
    }

    @Test("a packet above the maximum size is refused from its fixed header")
    func tooLarge() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MQTTPacketReader(maximumPacketSize: 100))
        let connect = try Self.bytes([.connect(.init(protocolVersion: .v3_1_1, clientIdentifier: "big"))], .v3_1_1)
        try channel.writeInbound(ByteBuffer(bytes: connect))
        // The fixed header of a PUBLISH announcing 1,000 bytes, without its body.
        #expect(throws: MQTTWireError.self) { try channel.writeInbound(ByteBuffer(bytes: [0x30, 0xE8, 0x07])) }
        _ = try channel.finish()
    }
}
