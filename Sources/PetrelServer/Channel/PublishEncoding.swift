import MQTTWire
import NIOCore
import PetrelCore

/// Encodes one delivery of a shared `Message` as a small per-subscriber header followed by the payload buffer,
/// which is the very slice the publisher's PUBLISH arrived in: the payload is never copied, whatever the fan-out.
///
/// The header (fixed header, topic, packet identifier, MQTT 5 properties) is encoded once per message and
/// protocol version and kept in `Message.encodingCache`. Subscribers whose header differs only in the flag bits
/// and the packet identifier get a copy of the cached bytes with those patched; a QoS 0 delivery with the
/// cached flags shares the cached buffer itself.
enum PublishEncoding {
    struct Encoded {
        var header: ByteBuffer
        var payload: ByteBuffer
        var totalLength: Int { header.readableBytes + payload.readableBytes }
    }

    static func encode(
        _ delivery: OutboundPublish,
        version: ProtocolVersion,
        allocator: ByteBufferAllocator
    ) throws -> Encoded {
        let message = delivery.message
        let payload = message.payload
        // Per-subscriber properties (subscription identifiers, remaining expiry, a topic alias with or without
        // the topic) make the header unique: such deliveries encode their own header. The cached header always
        // carries the full topic and no alias, so the cache key needs only the version and the packet id.
        let shareable = !version.isV5
            || (delivery.subscriptionIdentifiers.isEmpty && delivery.messageExpiryInterval == nil && delivery.topicAlias == nil)
        guard shareable else {
            var header = allocator.buffer(capacity: 64 + message.topic.utf8.count)
            try header.writeMQTTPublishHeader(delivery.packet(for: version), payloadLength: payload.readableBytes, version: version)
            return Encoded(header: header, payload: payload)
        }

        let hasPacketIdentifier = delivery.qos != .atMostOnce
        let key = Int(version.rawValue) << 1 | (hasPacketIdentifier ? 1 : 0)
        let cached: ByteBuffer
        if let hit = message.encodingCache.value(for: key) {
            cached = hit
        } else {
            var header = allocator.buffer(capacity: 64 + message.topic.utf8.count)
            try header.writeMQTTPublishHeader(delivery.packet(for: version), payloadLength: payload.readableBytes, version: version)
            message.encodingCache.set(header, for: key)
            cached = header
        }

        let flags = 0x30 | (delivery.dup ? 0x08 : 0) | delivery.qos.rawValue << 1 | (delivery.retain ? 0x01 : 0)
        if !hasPacketIdentifier, cached.getInteger(at: cached.readerIndex, as: UInt8.self) == flags {
            return Encoded(header: cached, payload: payload)
        }
        var header = allocator.buffer(capacity: cached.readableBytes)
        header.writeImmutableBuffer(cached)
        header.setInteger(flags, at: header.readerIndex)
        if let packetIdentifier = delivery.packetIdentifier, hasPacketIdentifier {
            // The packet identifier follows the fixed header and the topic (2-byte length + bytes).
            let offset = header.readerIndex + remainingLengthEnd(header) + 2 + message.topic.utf8.count
            header.setInteger(packetIdentifier, at: offset)
        }
        return Encoded(header: header, payload: payload)
    }

    /// Length of the fixed header (type byte plus the remaining-length variable byte integer) of `header`.
    private static func remainingLengthEnd(_ header: ByteBuffer) -> Int {
        var index = 1
        while index < 5, let byte = header.getInteger(at: header.readerIndex + index, as: UInt8.self) {
            index += 1
            if byte & 0x80 == 0 { break }
        }
        return index
    }
}
