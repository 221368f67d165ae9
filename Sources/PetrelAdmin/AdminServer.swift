import Hummingbird
import Logging
import NIOCore
import PetrelCore
import PetrelServer
import Prometheus
import ServiceLifecycle
import Synchronization

/// The HTTP listener for operators (`--http HOST:PORT`), on Hummingbird: `/health`, `/ready`, `/metrics` and,
/// with a token, the admin API under `/api/v1` (see `AdminAPI`).
///
/// It runs as a `Service` in the broker's `ServiceGroup`, listed before the MQTT server so that a graceful
/// shutdown stops it last: while the MQTT server says goodbye to its clients, `/ready` answers 503.
public final class AdminServer: Service {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port (the log line and `listeningAddress()` name it).
        public var port: Int

        public init(host: String = "127.0.0.1", port: Int = 8081) {
            self.host = host
            self.port = port
        }
    }

    public let configuration: Configuration
    private let server: MQTTServer
    private let registry: PrometheusCollectorRegistry
    private let collector: BrokerMetricsCollector
    private let logger: Logger
    private let api: AdminAPI
    private let bound = AddressBox()

    /// `registry` also holds what swift-metrics records (bootstrap `MetricsSystem` with a
    /// `PrometheusMetricsFactory` on it); `version` is reported as `petrel_build_info`.
    public init(
        configuration: Configuration,
        broker: Broker,
        server: MQTTServer,
        registry: PrometheusCollectorRegistry,
        version: String,
        api: AdminAPIConfiguration = .init(),
        logger: Logger
    ) {
        self.configuration = configuration
        self.server = server
        self.registry = registry
        self.collector = BrokerMetricsCollector(broker: broker, server: server, registry: registry, version: version)
        self.logger = logger
        self.api = AdminAPI(broker: broker, configuration: api, logger: logger)
    }

    public func run() async throws {
        let router = Router()
        // First: Hummingbird applies a router's middleware to the routes added after it.
        router.add(middleware: AdminAPIMiddleware(token: api.configuration.token, registry: registry))
        api.add(to: router)
        HealthRoutes(server: server).add(to: router)
        MetricsRoute(registry: registry, collector: collector).add(to: router)
        let logger = self.logger
        let bound = self.bound
        let application = Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "Petrel",
                reuseAddress: true
            ),
            onServerRunning: { channel in
                if let address = channel.localAddress {
                    logger.notice("Listening for HTTP on http://\(address.ipAddress ?? "?"):\(address.port ?? 0)")
                    bound.set(address)
                }
            },
            logger: Self.quieter(logger)
        )
        try await application.run()
    }

    /// The address the listener is bound to, once it is (for tests that bind port 0).
    public func listeningAddress() async -> SocketAddress {
        await bound.wait()
    }

    /// Hummingbird logs each request at debug and its own start at info; the broker's log keeps its own lines.
    private static func quieter(_ logger: Logger) -> Logger {
        var logger = logger
        if logger.logLevel < .notice { logger.logLevel = .notice }
        return logger
    }
}

/// The bound address, handed from the server's start to whoever waits for it.
private final class AddressBox: Sendable {
    private struct State {
        var address: SocketAddress?
        var waiters: [CheckedContinuation<SocketAddress, Never>] = []
    }

    private let state = Mutex(State())

    func set(_ address: SocketAddress) {
        let waiters = state.withLock { state in
            state.address = address
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
    }

    func wait() async -> SocketAddress {
        await withCheckedContinuation { continuation in
            let known: SocketAddress? = state.withLock { state in
                if let address = state.address { return address }
                state.waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }
}
