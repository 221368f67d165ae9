import Logging
import Metrics
import MQTTWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PetrelCore
import ServiceLifecycle
import Synchronization

/// The MQTT broker as a `Service`: its listeners on a multi-threaded event loop group (one loop per core by
/// default), the engine's timer, and a graceful shutdown that says goodbye to every client.
///
/// Each listener (`ListenerConfiguration`) is an address and a transport; the transport's `TransportPipeline`
/// builds what goes in front of the one MQTT handler. Plain TCP connections may hibernate (Linux): their
/// listeners are then the `ConnectionPark`'s, which accepts connections and hands them to NIO, since it must
/// know their sockets. NIO's `ServerBootstrap` accepts every other connection; a TLS or WebSocket connection
/// keeps state in its pipeline and does not hibernate.
public final class MQTTServer: Service {
    public let configuration: ServerConfiguration
    public let broker: Broker
    public let tls: TLSContextStore?
    private let logger: Logger
    private let boundAddresses = AsyncStreamBox()
    /// What the connections received and sent, per event loop.
    public let traffic: TrafficCounters
    private let phase = Atomic<UInt8>(Phase.starting.rawValue)
    /// Bounds on open connections; nil when none is set.
    private let limits: ConnectionLimits?
    #if os(Linux)
    private let currentPark = NIOLockedValueBox<ConnectionPark?>(nil)
    #endif

    /// `tls` serves the `mqtts` and `wss` listeners; its `reload()` takes effect for new connections.
    public init(configuration: ServerConfiguration, broker: Broker? = nil, tls: TLSContextStore? = nil, logger: Logger) {
        self.configuration = configuration
        self.broker = broker ?? Broker(configuration: configuration.broker, now: .now())
        self.tls = tls
        self.logger = logger
        self.traffic = TrafficCounters(loops: configuration.eventLoopThreads)
        self.limits =
            configuration.maximumConnections > 0 || configuration.maximumConnectionsPerAddress > 0
            ? ConnectionLimits(
                maximumConnections: configuration.maximumConnections,
                maximumPerAddress: configuration.maximumConnectionsPerAddress,
                logger: logger
            ) : nil
    }

    /// New bounds on open connections for the connections to come; false when the server started without any
    /// (both 0), whose accept path has no place to check them (a restart sets them).
    public func updateConnectionLimits(maximumConnections: Int, maximumPerAddress: Int) -> Bool {
        guard let limits else { return maximumConnections == 0 && maximumPerAddress == 0 }
        limits.update(maximumConnections: maximumConnections, maximumPerAddress: maximumPerAddress)
        return true
    }

    /// Connections closed on arrival because `maximumConnections` or `maximumConnectionsPerAddress` was reached.
    public var connectionsRefusedByLimits: Int { limits?.refused ?? 0 }

    /// Where the server is in its life, for readiness probes.
    public enum Phase: UInt8, Sendable {
        /// Binding its listeners.
        case starting
        /// Every listener is bound: clients are served.
        case ready
        /// A graceful shutdown has begun: no new connections.
        case stopping
        case stopped
    }

    public var currentPhase: Phase { Phase(rawValue: phase.load(ordering: .acquiring)) ?? .stopped }

    /// Runs until graceful shutdown (SIGTERM/SIGINT through the ServiceGroup) or cancellation.
    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        let loops = Array(group.makeIterator())
        let broker = self.broker
        let logger = self.logger
        let traffic = self.traffic
        let connections = Dictionary(
            uniqueKeysWithValues: loops.enumerated().map { index, loop in
                (
                    ObjectIdentifier(loop),
                    NIOLoopBoundBox.makeBoxSendingValue(
                        EventLoopConnections(traffic: traffic.loops[index % traffic.loops.count]),
                        eventLoop: loop
                    )
                )
            }
        )
        // One repeating task per loop looks at the connections whose connect timeout or keep alive may have run out.
        // How late it runs is the loop's lag: the time a ready event waits behind the work in front of it.
        let interval = configuration.connectionTimeoutCheckInterval
        let lag = Metrics.Timer(label: "petrel_event_loop_lag_seconds", preferredDisplayUnit: .seconds)
        let checks = loops.map { loop in
            let box = connections[ObjectIdentifier(loop)]!
            let previous = NIOLoopBoundBox.makeBoxSendingValue(NIODeadline.now(), eventLoop: loop)
            return loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let now = NIODeadline.now()
                lag.recordNanoseconds(max(0, (now - previous.value - interval).nanoseconds))
                previous.value = now
                box.value.checkDeadlines(now: now)
            }
        }
        // Sessions that expired and delayed wills that came due while the broker was down are dealt with before
        // any client can connect, not at the first timer tick [MQTT-3.1.2-23].
        runEngineTimers()

        var boundChannels: [any Channel] = []
        let schedulers = DeliverySchedulers(group: group)
        let connectionFactory = ConnectionFactory(
            broker: broker,
            schedulers: schedulers,
            connections: connections,
            maximumPacketSize: Int(configuration.broker.maximumPacketSize),
            channelOptions: channelOptions,
            limits: limits,
            logger: logger
        )
        let listeners = configuration.allListeners
        #if os(Linux)
        var park: ConnectionPark?
        #endif
        do {
            if listeners.contains(where: { $0.transport.usesTLS }), tls == nil {
                throw ListenerConfigurationError(
                    listeners.first { $0.transport.usesTLS }!.url(),
                    "TLS listeners need a certificate and a key"
                )
            }
            #if os(Linux)
            // Plain TCP connections may hibernate: the park accepts them, so that it knows their sockets.
            if let idleTime = configuration.hibernateAfter, listeners.contains(where: { $0.transport == .mqtt }) {
                let connectionPark = try ConnectionPark(logger: logger)
                park = connectionPark
                currentPark.withLockedValue { $0 = connectionPark }
                let hibernation = ConnectionHibernation(
                    idleTime: idleTime,
                    channelOptions: channelOptions,
                    park: connectionPark
                )
                connectionPark.start { socket in
                    connectionFactory.accept(socket, on: group.next(), hibernation: hibernation)
                }
            }
            #endif
            for listener in listeners {
                #if os(Linux)
                if listener.transport == .mqtt, let park {
                    announce(listener, at: try park.listen(host: listener.host, port: listener.port))
                    continue
                }
                #endif
                let pipeline = TransportPipeline(
                    listener: listener,
                    tls: tls,
                    maximumPacketSize: Int(configuration.broker.maximumPacketSize),
                    upgradeTimeout: configuration.broker.connectTimeout,
                    logger: logger
                )
                let bootstrap = makeBootstrap(group: group, factory: connectionFactory, pipeline: pipeline)
                let channel = try await bootstrap.bind(host: listener.host, port: listener.port).get()
                boundChannels.append(channel)
                announce(listener, at: channel.localAddress)
            }
        } catch {
            logger.error("Cannot listen", metadata: ["error": "\(error)"])
            for channel in boundChannels { try? await channel.close() }
            #if os(Linux)
            park?.stop()
            #endif
            for check in checks { check.cancel() }
            try? await group.shutdownGracefully()
            phase.store(Phase.stopped.rawValue, ordering: .releasing)
            throw error
        }

        phase.store(Phase.ready.rawValue, ordering: .releasing)
        let ticker = group.next().scheduleRepeatedTask(
            initialDelay: configuration.brokerTickInterval,
            delay: configuration.brokerTickInterval
        ) { _ in
            self.runEngineTimers()
        }

        // Wait for the signal to stop, then stop accepting, say goodbye and wait (bounded) for clients to go.
        try? await gracefulShutdown()
        phase.store(Phase.stopping.rawValue, ordering: .releasing)
        logger.notice("Shutting down")
        ticker.cancel()
        for channel in boundChannels { try? await channel.close() }
        #if os(Linux)
        park?.stopListening()
        #endif
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
        #if os(Linux)
        park?.stop()
        #endif
        broker.shutdown(now: .now())
        try await group.shutdownGracefully()
        phase.store(Phase.stopped.rawValue, ordering: .releasing)
        logger.notice("Stopped")
    }

    private var channelOptions: ConnectionChannelOptions {
        ConnectionChannelOptions(
            writeBufferWaterMark: .init(
                low: configuration.writeBufferLowWatermark,
                high: configuration.writeBufferHighWatermark
            )
        )
    }

    /// The log line names the transport and the port bound (port 0 picks one): `mqtts://127.0.0.1:8883`.
    private func announce(_ listener: ListenerConfiguration, at address: SocketAddress?) {
        var shown = listener
        if let ip = address?.ipAddress { shown.host = ip }
        logger.notice(
            "Listening for MQTT on \(shown.url(port: address?.port))",
            metadata: ["net.transport": "\(listener.transport.rawValue)"]
        )
        if let address { boundAddresses.append(address) }
    }

    /// The engine's timers (delayed wills, session expiry, message expiry): their log lines, and wake-ups of
    /// the sessions that got messages.
    private func runEngineTimers() {
        let result = broker.tick(now: .now())
        for record in result.logs { log(record) }
        for waker in result.wake { waker.wake() }
    }

    /// Connections hibernating right now (see `ServerConfiguration.hibernateAfter`).
    public var hibernatingConnectionCount: Int {
        #if os(Linux)
        currentPark.withLockedValue { $0?.parkedCount } ?? 0
        #else
        0
        #endif
    }

    /// The addresses the listeners are bound to, in order, once they are (for tests that bind port 0).
    public func listeningAddresses() async -> [SocketAddress] {
        await boundAddresses.wait(count: configuration.allListeners.count)
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
        factory: ConnectionFactory,
        pipeline: TransportPipeline
    ) -> ServerBootstrap {
        let options = factory.channelOptions
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: options.writeBufferWaterMark)
            .childChannelOption(.maxMessagesPerRead, value: options.maxMessagesPerRead)
            .childChannelOption(.recvAllocator, value: options.receiveAllocator)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let limits = factory.limits {
                        // Failing the initializer closes the new channel before it is registered.
                        guard let slot = limits.admit(channel.remoteAddress) else { throw ConnectionLimitReached() }
                        channel.closeFuture.whenComplete { _ in slot.release() }
                    }
                    try pipeline.configure(channel) { channel in
                        try factory.addHandler(
                            to: channel,
                            socket: -1,
                            hibernation: nil,
                            transport: pipeline.transport,
                            outboundHeadroom: pipeline.outboundHeadroom
                        )
                    }
                }
            }
    }

    private func log(_ record: LogRecord) {
        var metadata = Logger.Metadata()
        for (key, value) in record.metadata { metadata[key] = "\(value)" }
        logger.log(level: Logger.Level(record.level), "\(record.message)", metadata: metadata)
    }
}

/// Makes the handler of each new connection.
private struct ConnectionFactory: Sendable {
    let broker: Broker
    let schedulers: DeliverySchedulers
    let connections: [ObjectIdentifier: NIOLoopBoundBox<EventLoopConnections>]
    let maximumPacketSize: Int
    let channelOptions: ConnectionChannelOptions
    /// Bounds on open connections; nil when none is set.
    let limits: ConnectionLimits?
    let logger: Logger

    /// A connection accepted by the park: NIO wraps its socket into a channel on `loop`.
    func accept(_ socket: CInt, on loop: any EventLoop, hibernation: ConnectionHibernation) {
        let logger = self.logger
        channelOptions.clientBootstrap(on: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.addHandler(to: channel, socket: socket, hibernation: hibernation)
                }
            }
            .withConnectedSocket(socket)
            .whenFailure { error in
                logger.debug("cannot set up an accepted connection", metadata: ["error": "\(error)"])
            }
    }

    /// Called on the channel's event loop.
    func addHandler(
        to channel: any Channel,
        socket: CInt,
        hibernation: ConnectionHibernation?,
        transport: ListenerConfiguration.Transport = .mqtt,
        outboundHeadroom: Int = 0
    ) throws {
        guard let loopConnections = connections[ObjectIdentifier(channel.eventLoop)]?.value else {
            preconditionFailure("a connection on an event loop outside the server's group")
        }
        // A connection the park accepted takes its slot here and keeps it in its handler, which outlives the
        // channels of its hibernation; others hold theirs through their channel (see `makeBootstrap`).
        var slot: ConnectionSlot?
        if socket >= 0, let limits {
            guard let admitted = limits.admit(channel.remoteAddress) else { throw ConnectionLimitReached() }
            slot = admitted
        }
        let waker = ConnectionWaker(scheduler: schedulers.scheduler(for: channel.eventLoop))
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        // A WebSocket over TLS gets its MQTT handler after the handshake: what the certificate proved is known.
        var transportUser = ConnectionStateMachine.TransportUser.fromConnect
        if let events = try? channel.pipeline.syncOperations.handler(type: TLSConnectionEvents.self),
            events.useIdentityAsUsername, let identity = events.identity
        {
            transportUser = .proven(identity.username)
        }
        let handler = MQTTConnectionHandler(
            broker: broker,
            waker: waker,
            connections: loopConnections,
            remoteAddress: remote,
            maximumPacketSize: maximumPacketSize,
            socket: socket,
            hibernation: hibernation,
            transportUser: transportUser,
            outboundHeadroom: outboundHeadroom,
            slot: slot,
            transport: transport,
            logger: logger
        )
        try channel.pipeline.syncOperations.addHandler(handler)
    }
}
