import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The HTTP side of a WebSocket listener: the upgrade on the listener's path with an MQTT subprotocol, and a
/// clear HTTP error for every other request.
enum WebSocketUpgrade {
    /// Subprotocols a client may ask for, in the order the server prefers them: `mqtt` (MQTT 3.1.1 and 5.0,
    /// [MQTT-6.0.0-3]) and `mqttv3.1`, which MQTT 3.1 clients send.
    static let subprotocols = ["mqtt", "mqttv3.1"]

    /// The subprotocol to answer with, when the request names one the server speaks [MQTT-6.0.0-4].
    static func chosenSubprotocol(_ headers: HTTPHeaders) -> String? {
        let offered = headers[canonicalForm: "Sec-WebSocket-Protocol"].map { $0.lowercased() }
        return subprotocols.first { offered.contains($0) }
    }

    /// The request path without its query string.
    static func path(of uri: String) -> Substring {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    /// Sets up HTTP with the upgrade in front of the connection; `upgraded` builds the MQTT side once the
    /// `101 Switching Protocols` is sent. A connection that has not upgraded within `timeout` is closed.
    static func configure(
        _ channel: any Channel,
        path: String,
        maximumFrameSize: Int,
        timeout: TimeAmount,
        upgraded: @escaping @Sendable (any Channel) throws -> Void
    ) throws {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maximumFrameSize,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                guard Self.path(of: head.uri) == path, let subprotocol = Self.chosenSubprotocol(head.headers) else {
                    // Not upgraded: the request goes on to `WebSocketUpgradeRefusal`, which says why.
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                return channel.eventLoop.makeSucceededFuture(["Sec-WebSocket-Protocol": subprotocol])
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    let refusal = try pipeline.context(handlerType: WebSocketUpgradeRefusal.self)
                    pipeline.removeHandler(context: refusal, promise: nil)
                    try pipeline.addHandler(WebSocketMQTTFrames())
                    try upgraded(channel)
                }
            }
        )
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
            withErrorHandling: true
        )
        try pipeline.addHandler(WebSocketUpgradeRefusal(path: path, timeout: timeout))
    }
}

/// Answers the HTTP requests that did not become a WebSocket and closes the connection: 404 for another path,
/// 426 for a request without an upgrade, 400 for an upgrade without the MQTT subprotocol (or an invalid
/// one). Also bounds how long a connection may take to upgrade, as the connect timeout bounds CONNECT.
final class WebSocketUpgradeRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let path: String
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var answered = false

    init(path: String, timeout: TimeAmount) {
        self.path = path
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        let (status, message) = refusal(for: head)
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 1)
        body.writeString(message + "\n")
        var headers: HTTPHeaders = [
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": "\(body.readableBytes)",
            "Connection": "close",
        ]
        if status == .upgradeRequired {
            headers.add(name: "Upgrade", value: "websocket")
            headers.add(name: "Sec-WebSocket-Protocol", value: WebSocketUpgrade.subprotocols.joined(separator: ", "))
        }
        let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func refusal(for head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        guard WebSocketUpgrade.path(of: head.uri) == path else {
            return (.notFound, "MQTT over WebSockets is served at \(path)")
        }
        let upgrade = head.headers[canonicalForm: "Upgrade"].map { $0.lowercased() }
        guard upgrade.contains("websocket") else {
            return (.upgradeRequired, "This is an MQTT over WebSocket endpoint: upgrade to websocket")
        }
        guard WebSocketUpgrade.chosenSubprotocol(head.headers) != nil else {
            return (.badRequest, "Sec-WebSocket-Protocol must offer mqtt (or mqttv3.1)")
        }
        return (.badRequest, "Invalid WebSocket upgrade request")
    }
}
