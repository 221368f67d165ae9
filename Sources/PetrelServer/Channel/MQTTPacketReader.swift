import MQTTWire
import NIOCore

/// Turns the bytes of one connection into `MQTTPacket`s with an `MQTTPacketParser`, as
/// `ByteToMessageHandler(MQTTPacketDecoder)` would, but holding nothing between reads except the bytes of an
/// incomplete packet. `ByteToMessageHandler` keeps a state object and a queue allocated up front, about 560
/// bytes per idle connection.
///
/// A packet is passed on as soon as it is complete; a PUBLISH payload is a slice of the bytes read, not a copy.
/// The first malformed packet is passed on as an `MQTTWireError` through `errorCaught`, and every byte after it
/// is dropped: the connection handler answers and closes.
final class MQTTPacketReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = MQTTPacket

    private var parser: MQTTPacketParser
    /// Bytes received and not parsed yet: the start of an incomplete packet (and, during a re-entrant read, what
    /// came after it). Nil when everything received was parsed.
    private var unread: ByteBuffer?
    /// True while `channelRead` passes packets on, so that a re-entrant read only appends its bytes.
    private var parsing = false
    private var failed = false

    init(maximumPacketSize: Int) {
        self.parser = MQTTPacketParser(maximumPacketSize: maximumPacketSize)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        var incoming = self.unwrapInboundIn(data)
        if var unread = self.unread.take() {
            // Only the unparsed tail is kept, so the buffer does not grow with every read of a busy connection.
            unread.discardReadBytes()
            unread.writeBuffer(&incoming)
            self.unread = unread
        } else {
            self.unread = incoming
        }
        guard !self.parsing else { return }
        self.parsing = true
        defer { self.parsing = false }
        while !self.failed, var buffer = self.unread.take() {
            let packet: MQTTPacket?
            do {
                packet = try self.parser.parse(&buffer)
            } catch {
                self.failed = true
                context.fireErrorCaught(error)
                return
            }
            guard let packet else {
                self.unread = buffer
                return
            }
            // Put back before passing the packet on: a re-entrant read appends behind it.
            if buffer.readableBytes > 0 { self.unread = buffer }
            context.fireChannelRead(self.wrapInboundOut(packet))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An incomplete packet at the end of the stream is dropped: the connection is gone.
        self.unread = nil
        context.fireChannelInactive()
    }
}
