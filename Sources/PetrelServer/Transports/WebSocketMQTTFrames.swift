import NIOCore
import NIOWebSocket

/// Carries MQTT over an upgraded WebSocket connection (MQTT 5.0 section 6, RFC 6455): the payloads of binary
/// frames are the MQTT byte stream, whatever the frame boundaries (a packet may span frames, a frame may hold
/// several packets [MQTT-6.0.0-2]), and each buffer the MQTT handler writes goes out as one binary frame.
/// A text frame closes the connection [MQTT-6.0.0-1] with 1003; pings are answered; a close frame is echoed and
/// the connection ends.
final class WebSocketMQTTFrames: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    /// A close frame went out: nothing else may follow it (RFC 6455 section 5.5.1).
    private var closeSent = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            // A continuation can only follow a binary frame here: a text frame closes the connection.
            guard !closeSent else { return }
            let bytes = frame.unmaskedData
            if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        case .text:
            sendClose(.unacceptableData, context: context)
            context.close(promise: nil)
        case .ping:
            guard !closeSent else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            // The peer's close: echo its status code, then end the TCP connection (section 5.5.1).
            if !closeSent {
                closeSent = true
                var payload = frame.unmaskedData
                let code = payload.readInteger(as: UInt16.self)
                var echo = context.channel.allocator.buffer(capacity: 2)
                if let code { echo.writeInteger(code) }
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)), promise: nil)
            }
            context.close(promise: nil)
        default:
            sendClose(.protocolError, context: context)
            context.close(promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !closeSent else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let frame = WebSocketFrame(fin: true, opcode: .binary, data: unwrapOutboundIn(data))
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    /// The MQTT handler ends the connection (after its DISCONNECT, say): a close frame says so first.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input, context.channel.isActive {
            sendClose(.normalClosure, context: context)
        }
        context.close(mode: mode, promise: promise)
    }

    private func sendClose(_ code: WebSocketErrorCode, context: ChannelHandlerContext) {
        guard !closeSent else { return }
        closeSent = true
        var payload = context.channel.allocator.buffer(capacity: 2)
        payload.write(webSocketErrorCode: code)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)), promise: nil)
    }
}
