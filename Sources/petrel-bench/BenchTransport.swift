import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOWebSocket

/// How the load generator reaches the broker: MQTT over TCP, TLS, WebSockets or WebSockets over TLS.
enum BenchTransport: String, ExpressibleByArgument, CaseIterable, Sendable, Codable {
    case mqtt, mqtts, ws, wss

    var usesTLS: Bool { self == .mqtts || self == .wss }
    var usesWebSockets: Bool { self == .ws || self == .wss }
}

/// What a connection needs besides the MQTT client: the TLS context (made once per run: contexts are costly)
/// and the WebSocket path.
struct TransportSetup: Sendable {
    let transport: BenchTransport
    let tls: NIOSSLContext?
    let path: String
    let host: String

    init(transport: BenchTransport, caFile: String?, path: String, host: String) throws {
        self.transport = transport
        self.path = path
        self.host = host
        if transport.usesTLS {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile { configuration.trustRoots = .file(caFile) }
            configuration.certificateVerification = caFile == nil ? .none : .noHostnameVerification
            self.tls = try NIOSSLContext(configuration: configuration)
        } else {
            self.tls = nil
        }
    }

    /// Builds the pipeline in front of the MQTT client; `addClient` runs at once, or once the WebSocket upgrade
    /// is done (the client then starts from `handlerAdded`, the channel being active already).
    func configure(_ channel: any Channel, addClient: @escaping @Sendable (any Channel) throws -> Void) throws {
        let pipeline = channel.pipeline.syncOperations
        if let tls {
            try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
        }
        guard transport.usesWebSockets else { return try addClient(channel) }
        let requestKey = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let upgrader = NIOWebSocketClientUpgrader(
            requestKey: Data(requestKey).base64EncodedString(),
            maxFrameSize: 1 << 24,
            automaticErrorHandling: true,
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let requester = try channel.pipeline.syncOperations.context(handlerType: UpgradeRequester.self)
                    channel.pipeline.syncOperations.removeHandler(context: requester, promise: nil)
                    try channel.pipeline.syncOperations.addHandler(WebSocketClientFrames())
                    try addClient(channel)
                }
            }
        )
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Sec-WebSocket-Protocol", value: "mqtt")
        let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        let requester = UpgradeRequester(request: request)
        try pipeline.addHTTPClientHandlers(
            withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
        )
        try pipeline.addHandler(requester)
    }
}

/// Sends the upgrade request once the connection is up; removed by the upgrade.
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let request: HTTPRequestHead

    init(request: HTTPRequestHead) { self.request = request }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { channelActive(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A response that is not the upgrade: the broker refused it.
        context.close(promise: nil)
    }
}

/// Client frames are masked (RFC 6455 section 5.3); the broker's frames carry the MQTT byte stream.
private final class WebSocketClientFrames: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            context.fireChannelRead(wrapInboundOut(frame.unmaskedData))
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: unwrapOutboundIn(data))
        context.write(wrapOutboundOut(frame), promise: promise)
    }
}
