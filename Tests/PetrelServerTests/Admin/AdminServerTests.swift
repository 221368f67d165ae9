import AsyncHTTPClient
import Logging
import MQTTWire
import NIOCore
import PetrelAdmin
import PetrelCore
import PetrelServer
import Prometheus
import Testing

/// The operators' HTTP listener against a running broker: health, readiness and the metrics a client moves.
@Suite("Admin HTTP listener")
struct AdminServerTests {
    private static var quiet: Logger {
        var logger = Logger(label: "petrel.test")
        logger.logLevel = .critical
        return logger
    }

    /// The HTTP listener of `server`, on a free port.
    private static func admin(for server: MQTTServer) -> AdminServer {
        AdminServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            broker: server.broker,
            server: server,
            registry: PrometheusCollectorRegistry(),
            version: "test",
            logger: quiet
        )
    }

    /// Runs an `AdminServer` on a free port next to the test broker for the duration of `body`.
    private func withAdmin(
        configure: @escaping (inout ServerConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (_ mqttPort: Int, _ httpPort: Int, _ server: MQTTServer) async throws -> Void
    ) async throws {
        try await withTestServer(configure: configure) { port, server in
            let admin = Self.admin(for: server)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await admin.run() }
                let httpPort = await admin.listeningAddress().port ?? 0
                do {
                    try await body(port, httpPort, server)
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    private func get(_ port: Int, _ path: String) async throws -> (status: UInt, body: String, contentType: String?) {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"),
            timeout: .seconds(5)
        )
        let body = try await response.body.collect(upTo: 4 << 20)
        return (response.status.code, String(buffer: body), response.headers.first(name: "content-type"))
    }

    /// The value of the sample `name{labels}` in a text exposition, or nil when absent.
    private func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            if line[..<space] == series { return Double(line[line.index(after: space)...]) }
        }
        return nil
    }

    @Test("/health answers 200 and /ready 200 once the listeners are bound")
    func healthAndReady() async throws {
        try await withAdmin { _, http, server in
            #expect(server.currentPhase == .ready)
            let health = try await get(http, "/health")
            #expect(health.status == 200)
            let ready = try await get(http, "/ready")
            #expect(ready.status == 200)
            #expect(ready.body == "ready\n")
            #expect(try await get(http, "/nothing-here").status == 404)
        }
    }

    @Test("/metrics is the Prometheus text format and its counters move as a client publishes")
    func metricsMove() async throws {
        try await withAdmin { mqtt, http, _ in
            let before = try await get(http, "/metrics")
            #expect(before.status == 200)
            #expect(before.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(sample(before.body, #"petrel_build_info{version="test"}"#) == 1)
            #expect(sample(before.body, #"petrel_messages_received_total{qos="1"}"#) == 0)

            let subscriber = try await TestClient.connected(port: mqtt, version: .v5, id: "metrics-sub")
            try await subscriber.send(
                .subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "m/#", qos: .atLeastOnce)]))
            )
            _ = try await subscriber.next()
            let publisher = try await TestClient.connected(port: mqtt, version: .v3_1_1, id: "metrics-pub")
            for id in 1...3 {
                try await publisher.send(
                    .publish(.init(topic: "m/x", payload: ByteBuffer(string: "hello"), qos: .atLeastOnce, packetIdentifier: UInt16(id)))
                )
                _ = try await publisher.next()
                _ = try await subscriber.next()
            }
            try await publisher.send(.publish(.init(topic: "m/r", payload: ByteBuffer(string: "kept"), retain: true)))
            _ = try await subscriber.next()

            let after = try await get(http, "/metrics").body
            #expect(sample(after, #"petrel_messages_received_total{qos="1"}"#) == 3)
            #expect(sample(after, #"petrel_messages_received_bytes_total{qos="1"}"#) == 15)
            #expect(sample(after, #"petrel_messages_received_total{qos="0"}"#) == 1)
            #expect(sample(after, #"petrel_messages_sent_total{qos="1"}"#) == 3)
            #expect(sample(after, #"petrel_connections{listener="mqtt",protocol="5"}"#) == 1)
            #expect(sample(after, #"petrel_connections{listener="mqtt",protocol="3.1.1"}"#) == 1)
            #expect(sample(after, #"petrel_sessions{state="online"}"#) == 2)
            #expect(sample(after, "petrel_subscriptions") == 1)
            #expect(sample(after, "petrel_retained_messages") == 1)
            #expect(sample(after, "petrel_retained_bytes") == 4)
            #expect((sample(after, "petrel_network_received_bytes_total") ?? 0) > 60)
            #expect((sample(after, "petrel_connections_accepted_total") ?? 0) == 2)

            await publisher.close()
            try await Task.sleep(for: .milliseconds(200))
            let closed = try await get(http, "/metrics").body
            #expect(sample(closed, #"petrel_connections{listener="mqtt",protocol="3.1.1"}"#) == 0)
            #expect(sample(closed, #"petrel_messages_received_total{qos="1"}"#) == 3)
            await subscriber.close()
        }
    }

    @Test("Failed logins are counted")
    func failuresCounted() async throws {
        try await withAdmin(configure: { configuration in
            configuration.broker.authenticator = PasswordAuthenticator(file: PasswordFile(), allowAnonymous: false)
            configuration.broker.loginThrottle = nil
        }) { mqtt, http, _ in
            let client = try await TestClient.connect(port: mqtt, version: .v5)
            try await client.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "nobody")))
            guard case .connack(let connack) = try await client.next() else {
                Issue.record("expected CONNACK")
                return
            }
            #expect(connack.reasonCode != .success)
            let text = try await get(http, "/metrics").body
            #expect(sample(text, "petrel_authentication_failures_total") == 1)
        }
    }

    @Test("/ready answers 503 while the MQTT listeners are not serving")
    func notReady() async throws {
        // Never run: its listeners are not bound.
        let server = MQTTServer(configuration: ServerConfiguration(), logger: Self.quiet)
        let admin = Self.admin(for: server)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await admin.run() }
            let port = await admin.listeningAddress().port ?? 0
            let ready = try await get(port, "/ready")
            #expect(ready.status == 503)
            #expect(try await get(port, "/health").status == 200)
            group.cancelAll()
        }
    }
}
