import Logging
import MQTTWire
import NIOCore
import NIOPosix
import PetrelCore
import PetrelServer
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// Runs an in-process broker on a free loopback port for the duration of `body`, then shuts it down gracefully.
func withTestBroker<T: Sendable>(
    configure: (inout ServerConfiguration) -> Void = { _ in },
    store: (any BrokerStore)? = nil,
    _ body: @Sendable (_ port: Int) async throws -> T
) async throws -> T {
    try await withTestServer(configure: configure, store: store) { port, _ in try await body(port) }
}

/// `withTestBroker`, with the server at hand too.
func withTestServer<T: Sendable>(
    configure: (inout ServerConfiguration) -> Void = { _ in },
    store: (any BrokerStore)? = nil,
    _ body: @Sendable (_ port: Int, _ server: MQTTServer) async throws -> T
) async throws -> T {
    var configuration = ServerConfiguration()
    configuration.hosts = ["127.0.0.1"]
    configuration.port = 0
    configuration.eventLoopThreads = 2
    configure(&configuration)
    var logger = Logger(label: "petrel.test")
    logger.logLevel = .critical
    let broker = store.map { Broker(configuration: configuration.broker, store: $0, now: .now()) }
    let server = MQTTServer(configuration: configuration, broker: broker, logger: logger)
    return try await testGracefulShutdown { trigger in
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await server.run()
                return nil
            }
            let port = await server.listeningAddresses().first?.port ?? 0
            do {
                let result = try await body(port, server)
                trigger.triggerGracefulShutdown()
                var value: T? = result
                for try await next in group where next != nil { value = next }
                return value!
            } catch {
                trigger.triggerGracefulShutdown()
                group.cancelAll()
                throw error
            }
        }
    }
}

/// A minimal MQTT client over NIO for end-to-end tests: sends packets and collects every packet received.
final class TestClient: Sendable {
    let channel: any Channel
    let version: ProtocolVersion
    private let inbox: Inbox

    /// Received packets and whether the connection is closed; polled by `next(timeout:)`.
    private final class Inbox: ChannelInboundHandler, Sendable {
        typealias InboundIn = MQTTPacket
        struct State {
            var packets: [MQTTPacket] = []
            var closed = false
        }
        let state = Mutex(State())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let packet = unwrapInboundIn(data)
            state.withLock { $0.packets.append(packet) }
        }
        func channelInactive(context: ChannelHandlerContext) {
            state.withLock { $0.closed = true }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // With half-closure allowed, the broker's end of the stream arrives as this event.
            if case .inputClosed? = event as? ChannelEvent { state.withLock { $0.closed = true } }
            context.fireUserInboundEventTriggered(event)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// `allowHalfClosure`: the client's own side stays open when the broker's stream ends, so that it can go on
    /// writing.
    static func connect(port: Int, version: ProtocolVersion, allowHalfClosure: Bool = false) async throws -> TestClient {
        let inbox = Inbox()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: allowHalfClosure)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(MQTTPacketDecoder(version: version))
                    )
                    try channel.pipeline.syncOperations.addHandler(inbox)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return TestClient(channel: channel, version: version, inbox: inbox)
    }

    /// A client that sent CONNECT and got a CONNACK accepting it (recorded as an issue otherwise).
    static func connected(
        port: Int,
        version: ProtocolVersion,
        id: String,
        cleanStart: Bool = true,
        keepAlive: UInt16 = 60,
        will: MQTTPacket.Will? = nil,
        properties: MQTTProperties = .init(),
        allowHalfClosure: Bool = false
    ) async throws -> TestClient {
        let client = try await connect(port: port, version: version, allowHalfClosure: allowHalfClosure)
        try await client.send(
            .connect(
                .init(
                    protocolVersion: version,
                    clientIdentifier: id,
                    cleanStart: cleanStart,
                    keepAlive: keepAlive,
                    will: will,
                    properties: properties
                )
            )
        )
        guard case .connack(let connack) = try await client.next() else {
            Issue.record("expected CONNACK")
            return client
        }
        #expect(connack.reasonCode == .success)
        return client
    }

    private init(channel: any Channel, version: ProtocolVersion, inbox: Inbox) {
        self.channel = channel
        self.version = version
        self.inbox = inbox
    }

    func send(_ packet: MQTTPacket) async throws {
        var buffer = channel.allocator.buffer(capacity: 64)
        try buffer.writeMQTTPacket(packet, version: version)
        try await channel.writeAndFlush(buffer)
    }

    func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
    }

    /// The next packet received; nil when the connection closed first. Throws `TestTimeout` after `timeout`.
    func next(timeout: Duration = .seconds(5)) async throws -> MQTTPacket? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let result: (MQTTPacket?, Bool) = inbox.state.withLock { state in
                if !state.packets.isEmpty { return (state.packets.removeFirst(), false) }
                return (nil, state.closed)
            }
            if let packet = result.0 { return packet }
            if result.1 { return nil }
            guard clock.now < deadline else { throw TestTimeout() }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func close() async {
        try? await channel.close()
    }
}

struct TestTimeout: Error {}
