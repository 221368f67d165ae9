import MQTTWire
import NIOCore

/// Turns the bytes of one connection into `MQTTPacket`s with an `MQTTPacketParser`, as
/// `ByteToMessageHandler(MQTTPacketDecoder)` would, but holding nothing between reads except the start of an
/// incomplete packet. `ByteToMessageHandler` keeps a state object and a queue allocated up front, about 560
/// bytes per idle connection.
///
/// The packets complete in a read are parsed in place: a PUBLISH payload is a slice of the bytes read, not a
/// copy. Only the bytes of a packet split between reads are copied, into storage of the reader's own, so that
/// the channel can reuse its receive buffer for the next read: NIO allocates another one, and keeps both, while
/// anything else holds it.
///
/// The first malformed packet is passed on as an `MQTTWireError` through `errorCaught`, and every byte after it
/// is dropped: the connection handler answers and closes.
///
/// Not re-entrant: no handler after it may fire a read while it passes a packet on (`MQTTConnectionHandler` never
/// does). A re-entrant read fails the connection rather than reorder bytes.
final class MQTTPacketReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = MQTTPacket

    private var parser: MQTTPacketParser
    /// The start of a packet that was incomplete at the end of a read, in storage of its own; nil when every
    /// byte received was parsed.
    private var partial: ByteBuffer?
    private var parsing = false
    private var failed = false

    init(maximumPacketSize: Int) {
        self.parser = MQTTPacketParser(maximumPacketSize: maximumPacketSize)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        var incoming = self.unwrapInboundIn(data)
        guard !self.parsing else {
            assertionFailure("re-entrant read in MQTTPacketReader")
            self.fail(ReentrantRead(), context: context)
            return
        }
        self.parsing = true
        defer { self.parsing = false }
        self.parse(&incoming, context: context)
    }

    struct ReentrantRead: Error {}

    func channelInactive(context: ChannelHandlerContext) {
        // An incomplete packet at the end of the stream is dropped: the connection is gone.
        self.partial = nil
        context.fireChannelInactive()
    }

    // MARK: - Parsing

    private func parse(_ incoming: inout ByteBuffer, context: ChannelHandlerContext) {
        if var partial = self.partial.take() {
            // Complete the split packet with as few bytes of this read as it needs; the rest is parsed in place.
            while true {
                // Until the fixed header is complete its length is unknown: one byte at a time (at most four).
                let take = min(max(1, Self.missingBytes(in: partial) ?? 1), incoming.readableBytes)
                guard take > 0, let bytes = incoming.readSlice(length: take) else {
                    self.partial = partial
                    return
                }
                partial.writeImmutableBuffer(bytes)
                let packet: MQTTPacket?
                do {
                    packet = try self.parser.parse(&partial)
                } catch {
                    self.fail(error, context: context)
                    return
                }
                if let packet {
                    if partial.readableBytes > 0 {
                        // Not expected (exactly the missing bytes were added), but no byte may be lost.
                        partial.writeImmutableBuffer(incoming)
                        incoming = partial
                    }
                    context.fireChannelRead(self.wrapInboundOut(packet))
                    break
                }
            }
        }
        while !self.failed, incoming.readableBytes > 0 {
            let packet: MQTTPacket?
            do {
                packet = try self.parser.parse(&incoming)
            } catch {
                self.fail(error, context: context)
                return
            }
            guard let packet else {
                self.partial = Self.copy(incoming, allocator: context.channel.allocator)
                return
            }
            context.fireChannelRead(self.wrapInboundOut(packet))
        }
    }

    /// The bytes `buffer` lacks for the packet at its front; nil while its fixed header is incomplete (or
    /// malformed, which the parser reports).
    private static func missingBytes(in buffer: ByteBuffer) -> Int? {
        guard let (remainingLength, lengthBytes) = try? buffer.getMQTTVariableByteInteger(at: buffer.readerIndex + 1)
        else { return nil }
        return 1 + lengthBytes + remainingLength - buffer.readableBytes
    }

    private static func copy(_ bytes: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var copy = allocator.buffer(capacity: bytes.readableBytes)
        copy.writeImmutableBuffer(bytes)
        return copy
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        self.failed = true
        self.partial = nil
        context.fireErrorCaught(error)
    }
}
