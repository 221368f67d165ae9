import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore
@testable import PetrelServer

@Suite("Publish encoding")
struct PublishEncodingTests {
    private func message() -> Message {
        Message(topic: "sensors/one", payload: ByteBuffer(string: "payload"), qos: .atLeastOnce, retain: false)
    }

    private func bytes(_ encoded: PublishEncoding.Encoded) -> [UInt8] {
        var header = encoded.header
        var payload = encoded.payload
        return header.readBytes(length: header.readableBytes)! + payload.readBytes(length: payload.readableBytes)!
    }

    private func reference(_ delivery: OutboundPublish, _ version: ProtocolVersion) throws -> [UInt8] {
        var buffer = ByteBuffer()
        _ = try buffer.writeMQTTPacket(.publish(delivery.packet(for: version)), version: version)
        return buffer.readBytes(length: buffer.readableBytes)!
    }

    @Test("[MQTT-3.3.2-11] aliased deliveries encode their own header; the cached full-topic header is not changed")
    func aliasedHeaders() throws {
        let message = self.message()
        let allocator = ByteBufferAllocator()
        let plain = OutboundPublish(message: message, qos: .atLeastOnce, retain: false, packetIdentifier: 1)
        #expect(try self.bytes(PublishEncoding.encode(plain, version: .v5, allocator: allocator)) == self.reference(plain, .v5))

        var first = OutboundPublish(message: message, qos: .atLeastOnce, retain: false, packetIdentifier: 2)
        first.topicAlias = 3
        #expect(try self.bytes(PublishEncoding.encode(first, version: .v5, allocator: allocator)) == self.reference(first, .v5))

        var aliased = OutboundPublish(message: message, qos: .atLeastOnce, retain: false, packetIdentifier: 3)
        aliased.topicAlias = 3
        aliased.omitsTopic = true
        let aliasedBytes = try self.bytes(PublishEncoding.encode(aliased, version: .v5, allocator: allocator))
        #expect(aliasedBytes == (try self.reference(aliased, .v5)))
        #expect(aliased.packet(for: .v5).topic.isEmpty)

        // The next plain delivery still gets the full topic from the cache, with its own packet identifier.
        let again = OutboundPublish(message: message, qos: .atLeastOnce, retain: false, packetIdentifier: 4)
        #expect(try self.bytes(PublishEncoding.encode(again, version: .v5, allocator: allocator)) == self.reference(again, .v5))
    }

    @Test("3.1.1 deliveries never carry an alias and keep the topic")
    func v311IgnoresAlias() throws {
        var delivery = OutboundPublish(message: self.message(), qos: .atMostOnce, retain: false)
        delivery.topicAlias = 1
        delivery.omitsTopic = true
        #expect(delivery.packet(for: .v3_1_1).topic == "sensors/one")
        let encoded = try PublishEncoding.encode(delivery, version: .v3_1_1, allocator: ByteBufferAllocator())
        #expect(self.bytes(encoded) == (try self.reference(delivery, .v3_1_1)))
    }
}
