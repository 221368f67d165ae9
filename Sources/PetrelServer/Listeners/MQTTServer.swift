import Logging
import MQTTWire
import NIOCore
import NIOPosix
import PetrelCore
import ServiceLifecycle

/// The MQTT broker as a `Service`: TCP listeners on a multi-threaded event loop group (one loop per core by
/// default), the engine's timer, and a graceful shutdown that says goodbye to every client.
public final class MQTTServer: Service {
    public let configuration: ServerConfiguration
    public let broker: Broker
    private let logger: Logger
    private let boundAddresses = AsyncStreamBox()

    public init(configuration: ServerConfiguration, broker: Broker? = nil, logger: Logger) {
        self.configuration = configuration
        self.broker = broker ?? Broker(configuration: configuration.broker, now: .now())
        self.logger = logger
    }

    /// Runs until graceful shutdown (SIGTERM/SIGINT through the ServiceGroup) or cancellation.
    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        let loops = Array(group.makeIterator())
        let connections = Dictionary(
            uniqueKeysWithValues: loops.map { loop in
                (ObjectIdentifier(loop), NIOLoopBoundBox.makeBoxSendingValue(EventLoopConnections(), eventLoop: loop))
            }
        )
        // One repeating task per loop looks at the connections whose connect timeout or keep alive may have run out.
        let interval = configuration.connectionTimeoutCheckInterval
        let checks = loops.map { loop in
            let box = connections[ObjectIdentifier(loop)]!
            return loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                box.value.checkDeadlines(now: .now())
            }
        }
        var listeners: [any Channel] = []
        let schedulers = DeliverySchedulers(group: group)
        do {
            for host in configuration.hosts {
                let bootstrap = makeBootstrap(group: group, schedulers: schedulers, connections: connections)
                let channel = try await bootstrap.bind(host: host, port: configuration.port).get()
                listeners.append(channel)
                let address = Self.describe(channel.localAddress, host: host, port: configuration.port)
                logger.notice("Listening for MQTT on \(address)", metadata: ["net.listener": "mqtt+tcp"])
                boundAddresses.append(channel.localAddress)
            }
        } catch {
            logger.error("Cannot listen", metadata: ["error": "\(error)"])
            for channel in listeners { try? await channel.close() }
            for check in checks { check.cancel() }
            try? await group.shutdownGracefully()
            throw error
        }

        let broker = self.broker
        let ticker = group.next().scheduleRepeatedTask(
            initialDelay: configuration.brokerTickInterval,
            delay: configuration.brokerTickInterval
        ) { _ in
            let result = broker.tick(now: .now())
            for record in result.logs { self.log(record) }
            for waker in result.wake { waker.wake() }
        }

        // Wait for the signal to stop, then stop accepting, say goodbye and wait (bounded) for clients to go.
        try? await gracefulShutdown()
        logger.notice("Shutting down")
        ticker.cancel()
        for channel in listeners { try? await channel.close() }
        let goodbyes = loops.map { loop in
            let box = connections[ObjectIdentifier(loop)]!
            return loop.submit { box.value.shutdownAll() }
        }
        _ = try? await EventLoopFuture.whenAllComplete(goodbyes, on: group.next()).get()
        let deadline = NIODeadline.now() + configuration.shutdownGracePeriod
        while NIODeadline.now() < deadline, await Self.count(connections, on: loops) > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for check in checks { check.cancel() }
        broker.shutdown(now: .now())
        try await group.shutdownGracefully()
        logger.notice("Stopped")
    }

    /// The addresses the listeners are bound to, in order, once they are (for tests that bind port 0).
    public func listeningAddresses() async -> [SocketAddress] {
        await boundAddresses.wait(count: configuration.hosts.count)
    }

    /// The connections still open on every loop.
    private static func count(
        _ connections: [ObjectIdentifier: NIOLoopBoundBox<EventLoopConnections>],
        on loops: [any EventLoop]
    ) async -> Int {
        var total = 0
        for loop in loops {
            let box = connections[ObjectIdentifier(loop)]!
            total += (try? await loop.submit { box.value.count }.get()) ?? 0
        }
        return total
    }

    private func makeBootstrap(
        group: MultiThreadedEventLoopGroup,
        schedulers: DeliverySchedulers,
        connections: [ObjectIdentifier: NIOLoopBoundBox<EventLoopConnections>]
    ) -> ServerBootstrap {
        let broker = self.broker
        let logger = self.logger
        let maximumPacketSize = Int(configuration.broker.maximumPacketSize)
        let watermark = ChannelOptions.Types.WriteBufferWaterMark(
            low: configuration.writeBufferLowWatermark,
            high: configuration.writeBufferHighWatermark
        )
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: watermark)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // The channel keeps its last receive buffer for the next read: start at the minimum (NIO's default is
            // 2 KiB) so that an idle connection holds 64 bytes; a busy one grows it on every full read, up to 64 KiB
            // within a few reads of one readable event (`maxMessagesPerRead`).
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64, maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let loopConnections = connections[ObjectIdentifier(channel.eventLoop)]?.value else {
                        preconditionFailure("a connection on an event loop outside the server's group")
                    }
                    let waker = ConnectionWaker(scheduler: schedulers.scheduler(for: channel.eventLoop))
                    let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
                    let handler = MQTTConnectionHandler(
                        broker: broker,
                        waker: waker,
                        connections: loopConnections,
                        remoteAddress: remote,
                        maximumPacketSize: maximumPacketSize,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
    }

    /// `HOST:PORT`, with IPv6 addresses in brackets (`[::1]:1883`).
    static func describe(_ address: SocketAddress?, host: String, port: Int) -> String {
        let ip = address?.ipAddress ?? host
        let shownPort = address?.port ?? port
        return ip.contains(":") ? "[\(ip)]:\(shownPort)" : "\(ip):\(shownPort)"
    }

    private func log(_ record: LogRecord) {
        var metadata = Logger.Metadata()
        for (key, value) in record.metadata { metadata[key] = "\(value)" }
        logger.log(level: Logger.Level(record.level), "\(record.message)", metadata: metadata)
    }
}
