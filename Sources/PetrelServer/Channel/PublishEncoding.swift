import MQTTWire
import NIOCore
import PetrelCore

/// Encodes one delivery of a shared `Message` as a small per-subscriber header followed by the payload buffer,
/// which is the very slice the publisher's PUBLISH arrived in.
///
/// A header without properties is written directly. One with MQTT 5 properties (fixed header, topic, packet
/// identifier, properties) is encoded once per message and protocol version and kept in `Message.encodingCache`. Subscribers whose header differs only in the flag bits
/// and the packet identifier get a copy of the cached bytes with those patched.
enum PublishEncoding {
    struct Encoded {
        var header: ByteBuffer
        var payload: ByteBuffer
        var totalLength: Int { header.readableBytes + payload.readableBytes }
    }

    /// The header and the payload as two buffers (the payload shared, not copied).
    static func encode(
        _ delivery: OutboundPublish,
        version: ProtocolVersion,
        allocator: ByteBufferAllocator
    ) throws -> Encoded {
        var header = allocator.buffer(capacity: 64 + delivery.message.topic.utf8.count)
        try writeHeader(delivery, version: version, into: &header)
        return Encoded(header: header, payload: delivery.message.payload)
    }

    /// Appends the PUBLISH header of `delivery` (everything but the payload) to `out`; returns its length.
    @discardableResult
    static func writeHeader(
        _ delivery: OutboundPublish,
        version: ProtocolVersion,
        into out: inout ByteBuffer
    ) throws -> Int {
        let message = delivery.message
        let payloadLength = message.payload.readableBytes
        // Without properties (every 3.1.1 delivery, most MQTT 5 ones) the header is the topic and a few bytes:
        // writing it afresh costs less than looking it up in the message's cache and patching it.
        if delivery.subscriptionIdentifiers.isEmpty && delivery.messageExpiryInterval == nil
            && delivery.topicAlias == nil && (!version.isV5 || message.properties.isEmpty)
        {
            return try out.writeMQTTPublishHeader(
                topic: message.topic,
                qos: delivery.qos,
                retain: delivery.retain,
                dup: delivery.dup,
                packetIdentifier: delivery.packetIdentifier,
                payloadLength: payloadLength,
                version: version
            )
        }
        // Per-subscriber properties (subscription identifiers, remaining expiry, a topic alias with or without
        // the topic) make the header unique: such deliveries encode their own header. The cached header always
        // carries the full topic and no alias, so the cache key needs only the version and the packet id.
        let shareable = !version.isV5
            || (delivery.subscriptionIdentifiers.isEmpty && delivery.messageExpiryInterval == nil && delivery.topicAlias == nil)
        guard shareable else {
            return try out.writeMQTTPublishHeader(delivery.packet(for: version), payloadLength: payloadLength, version: version)
        }

        let hasPacketIdentifier = delivery.qos != .atMostOnce
        let key = Int(version.rawValue) << 1 | (hasPacketIdentifier ? 1 : 0)
        let cached: ByteBuffer
        if let hit = message.encodingCache.value(for: key) {
            cached = hit
        } else {
            var header = ByteBufferAllocator().buffer(capacity: 16 + message.topic.utf8.count)
            try header.writeMQTTPublishHeader(delivery.packet(for: version), payloadLength: payloadLength, version: version)
            message.encodingCache.set(header, for: key)
            cached = header
        }

        let start = out.writerIndex
        let length = out.writeImmutableBuffer(cached)
        let flags = 0x30 | (delivery.dup ? 0x08 : 0) | delivery.qos.rawValue << 1 | (delivery.retain ? 0x01 : 0)
        out.setInteger(UInt8(flags), at: start)
        if let packetIdentifier = delivery.packetIdentifier, hasPacketIdentifier {
            // The packet identifier follows the fixed header and the topic (2-byte length + bytes).
            let offset = start + remainingLengthEnd(out, at: start) + 2 + message.topic.utf8.count
            out.setInteger(packetIdentifier, at: offset)
        }
        return length
    }

    /// Length of the fixed header (type byte plus the remaining-length variable byte integer) at `start`.
    private static func remainingLengthEnd(_ header: ByteBuffer, at start: Int) -> Int {
        var index = 1
        while index < 5, let byte = header.getInteger(at: start + index, as: UInt8.self) {
            index += 1
            if byte & 0x80 == 0 { break }
        }
        return index
    }
}
