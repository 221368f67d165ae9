import MQTTWire
import NIOCore
import PetrelCore
import Testing

/// A connection the broker ends while its client is still sending is closed without a reset: the client's
/// writes keep succeeding, and it reads the DISCONNECT and then the end of the stream.
@Suite("Lingering close")
struct LingeringCloseTests {
    @Test("A client that keeps writing past Receive Maximum still reads DISCONNECT 0x93, then an orderly close")
    func receiveMaximumExceededWhileWriting() async throws {
        try await withTestBroker(configure: { $0.broker.receiveMaximum = 2 }) { port in
            let client = try await TestClient.connected(port: port, version: .v5, id: "flood", allowHalfClosure: true)
            var burst = client.channel.allocator.buffer(capacity: 300_000)
            for identifier in 1...2_000 {
                let publish = MQTTPacket.Publish(
                    topic: "t",
                    payload: ByteBuffer(repeating: 0x2E, count: 100),
                    qos: .exactlyOnce,
                    packetIdentifier: UInt16(identifier)
                )
                try burst.writeMQTTPacket(.publish(publish), version: .v5)
            }
            // Several megabytes, long after the third PUBLISH exceeded the limit: not one write may fail (closing at
            // once, the broker's kernel would answer them with a reset).
            for _ in 0..<10 {
                try await client.channel.writeAndFlush(burst)
            }
            var disconnect: MQTTPacket.Disconnect?
            while let packet = try await client.next() {
                if case .disconnect(let received) = packet {
                    disconnect = received
                    break
                }
            }
            #expect(disconnect?.reasonCode == .receiveMaximumExceeded)
            // Then the end of the stream, not a reset.
            #expect(try await client.next() == nil)
            await client.close()
        }
    }
}
