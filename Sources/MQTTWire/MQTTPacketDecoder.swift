import NIOCore

/// A `ByteToMessageDecoder` that turns a byte stream into `MQTTPacket`s with an `MQTTPacketParser`.
///
/// Wrap it in a `ByteToMessageHandler`. Errors are `MQTTWireError`s thrown into the pipeline; the handler that
/// sees one answers with `error.reasonCode` and closes the connection.
public struct MQTTPacketDecoder: ByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket

    public private(set) var parser: MQTTPacketParser

    /// Server side: learns the protocol version from CONNECT.
    public init(maximumPacketSize: Int = MQTTPacketParser.largestPossiblePacketSize) {
        self.parser = MQTTPacketParser(maximumPacketSize: maximumPacketSize)
    }

    /// Client side, or anywhere the version is known.
    public init(version: ProtocolVersion, maximumPacketSize: Int = MQTTPacketParser.largestPossiblePacketSize) {
        self.parser = MQTTPacketParser(version: version, maximumPacketSize: maximumPacketSize)
    }

    public init(parser: MQTTPacketParser) {
        self.parser = parser
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let packet = try self.parser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(packet))
        return .continue
    }

    /// At end of stream the complete packets still buffered are delivered; a partial one is left for
    /// `ByteToMessageHandler` to report as left-over data.
    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        try self.decode(context: context, buffer: &buffer)
    }
}
