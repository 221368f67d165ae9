import Logging
import MQTTWire
import NIOCore
import PetrelCore

/// Writing what the engine sends: packets are encoded into one gathered buffer per batch and flushed once,
/// PUBLISH headers are encoded per receiver around a payload shared with the publisher, and nothing larger
/// than the client's Maximum Packet Size goes out.
extension MQTTConnectionHandler {
    /// Larger payloads are written as their own slice of the publisher's buffer rather than copied.
    static let gatherLimit = 2048

    private func takeGatheredBuffer(context: ChannelHandlerContext) -> ByteBuffer {
        if let buffer = gathered.take() { return buffer }
        var buffer = context.channel.allocator.buffer(capacity: outboundHeadroom + lastGatheredBytes)
        if outboundHeadroom > 0 {
            buffer.moveWriterIndex(forwardBy: outboundHeadroom)
            buffer.moveReaderIndex(forwardBy: outboundHeadroom)
        }
        return buffer
    }

    /// Hands the gathered bytes to the channel (before a large payload, or at the flush).
    private func writeGathered(context: ChannelHandlerContext) {
        guard let buffer = gathered.take() else { return }
        guard buffer.readableBytes > 0 else { return }
        lastGatheredBytes = max(256, min(buffer.readableBytes, 1 << 16))
        connections.traffic.bytesOut.add(buffer.readableBytes)
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    func write(_ outbound: OutboundPacket, context: ChannelHandlerContext) {
        let version = machine.protocolVersion ?? refusalVersion ?? .v3_1_1
        connections.traffic.packetsOut.add(1)
        switch outbound {
        case .packet(let packet):
            var buffer = takeGatheredBuffer(context: context)
            let start = buffer.writerIndex
            let fits: Bool
            do {
                try buffer.writeMQTTPacket(packet, version: version)
                if let limit = machine.maximumOutboundPacketSize, buffer.writerIndex - start > Int(limit) {
                    // Leave out the Reason String and User Properties first [MQTT-3.1.2-25]; drop the packet
                    // only if it still does not fit.
                    buffer.moveWriterIndex(to: start)
                    if let smaller = packet.withoutProblemInformation {
                        try buffer.writeMQTTPacket(smaller, version: version)
                        fits = buffer.writerIndex - start <= Int(limit)
                    } else {
                        fits = false
                    }
                } else {
                    fits = true
                }
            } catch {
                buffer.moveWriterIndex(to: start)
                gathered = buffer
                logger.error("cannot encode packet", metadata: metadata(["mqtt.packet": "\(packet.type)", "error": "\(error)"]))
                return
            }
            guard fits else {
                buffer.moveWriterIndex(to: start)
                gathered = buffer
                perform(machine.outboundPacketTooLarge(packet), context: context)
                return
            }
            gathered = buffer
            needsFlush = true
        case .publish(let delivery):
            writePublish(delivery, version: version, context: context)
        }
    }

    private func writePublish(_ delivery: OutboundPublish, version: ProtocolVersion, context: ChannelHandlerContext) {
        let delivery = machine.prepareForSending(delivery)
        let payload = delivery.message.payload
        var buffer = takeGatheredBuffer(context: context)
        let start = buffer.writerIndex
        let headerLength: Int
        do {
            headerLength = try PublishEncoding.writeHeader(delivery, version: version, into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            gathered = buffer
            logger.error("cannot encode PUBLISH", metadata: metadata(["mqtt.topic": "\(delivery.message.topic)", "error": "\(error)"]))
            return
        }
        if let limit = machine.maximumOutboundPacketSize, headerLength + payload.readableBytes > Int(limit) {
            // [MQTT-3.1.2-25]: a packet above the client's Maximum Packet Size is discarded, as if delivered.
            buffer.moveWriterIndex(to: start)
            gathered = buffer
            perform(machine.outboundPublishTooLarge(delivery, now: .now()), context: context)
            return
        }
        needsFlush = true
        connections.traffic.sent(qos: delivery.qos, payloadBytes: payload.readableBytes)
        if payload.readableBytes <= Self.gatherLimit {
            buffer.writeImmutableBuffer(payload)
            gathered = buffer
        } else {
            gathered = buffer
            writeGathered(context: context)
            connections.traffic.bytesOut.add(payload.readableBytes)
            context.write(wrapOutboundOut(payload), promise: nil)
        }
    }

    func flushIfNeeded(context: ChannelHandlerContext) {
        writeGathered(context: context)
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }
}
