import Logging
import MQTTWire
import NIOCore
import NIOEmbedded
import PetrelCore
import Testing

@testable import PetrelServer

/// The connection handler parses the bytes of each read itself: any split of the byte stream between reads
/// must give the same answers as the whole stream in one read.
@Suite("Connection framing")
struct ConnectionFramingTests {
    /// A session as a client sends it: CONNECT, a subscription to its own topics, QoS 1 and QoS 0 PUBLISH packets
    /// of several sizes (one cut anywhere, one larger than a first read), PINGREQ.
    static func session(_ version: ProtocolVersion) throws -> [UInt8] {
        var packets: [MQTTPacket] = [
            .connect(.init(protocolVersion: version, clientIdentifier: "framing", keepAlive: 30)),
            .subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "f/+", qos: .atLeastOnce)])),
        ]
        for index in 0..<6 {
            let size = [0, 5, 63, 64, 300, 5000][index]
            packets.append(
                .publish(
                    .init(
                        topic: "f/\(index)",
                        payload: ByteBuffer(repeating: UInt8(index), count: size),
                        qos: index.isMultiple(of: 2) ? .atLeastOnce : .atMostOnce,
                        packetIdentifier: index.isMultiple(of: 2) ? UInt16(10 + index) : nil
                    )
                )
            )
        }
        packets.append(.pingreq)
        var buffer = ByteBuffer()
        for packet in packets { try buffer.writeMQTTPacket(packet, version: version) }
        return Array(buffer.readableBytesView)
    }

    /// Feeds `chunks` to a fresh connection, one read each, and returns every byte it wrote back.
    static func answers(to chunks: [ArraySlice<UInt8>]) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let broker = Broker(configuration: .init(), now: .now())
        let handler = MQTTConnectionHandler(
            broker: broker,
            waker: ConnectionWaker(scheduler: DeliveryScheduler(eventLoop: loop)),
            connections: EventLoopConnections(),
            remoteAddress: "127.0.0.1:1",
            maximumPacketSize: 1 << 20,
            logger: Logger(label: "framing")
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        var written: [UInt8] = []
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
            loop.run()
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                written += buffer.readableBytesView
            }
        }
        _ = try? channel.finish()
        return written
    }

    @Test("one read, one byte per read, every split in two, uneven reads", arguments: [ProtocolVersion.v3_1_1, .v5])
    func splits(version: ProtocolVersion) throws {
        let bytes = try Self.session(version)
        let expected = try Self.answers(to: [bytes[...]])
        // CONNACK, SUBACK, three PUBACKs, six deliveries and PINGRESP: well over 5,000 bytes.
        #expect(expected.count > 5000)
        #expect(try Self.answers(to: bytes.indices.map { bytes[$0...$0] }) == expected)
        for cut in stride(from: 1, to: bytes.count, by: 37) {
            #expect(try Self.answers(to: [bytes[..<cut], bytes[cut...]]) == expected, "split at \(cut)")
        }
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        var size = 3
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            chunks.append(bytes[start..<end])
            start = end
            size = size * 3 % 1021 + 1
        }
        #expect(try Self.answers(to: chunks) == expected)
    }

    @Test("a malformed packet after a cut one is answered and closes the connection [MQTT-4.13.1-1]")
    func malformedAfterCut() throws {
        var bytes = try Self.session(.v5)
        // PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4].
        bytes += [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]
        let whole = try Self.answers(to: [bytes[...]])
        let dripped = try Self.answers(to: bytes.indices.map { bytes[$0...$0] })
        #expect(whole == dripped)
        // The last packet written is DISCONNECT 0x81 Malformed Packet.
        var parser = MQTTPacketParser(version: .v5)
        var written = ByteBuffer(bytes: whole)
        var last: MQTTPacket?
        while let packet = try parser.parse(&written) { last = packet }
        guard case .disconnect(let disconnect) = last else {
            Issue.record("expected DISCONNECT, got \(String(describing: last))")
            return
        }
        #expect(disconnect.reasonCode == .malformedPacket)
    }
}
