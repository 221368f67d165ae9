import AsyncHTTPClient
import Foundation
import Logging
import MQTTWire
import NIOCore
import NIOHTTP1
import PetrelAdmin
import PetrelCore
import PetrelServer
import Prometheus
import Testing

/// The token the admin API tests run with.
let adminTestToken = "test-token-0123456789abcdef"

/// A running broker with its HTTP listener and the admin API on, for the duration of `body`.
struct AdminAPIHarness: Sendable {
    let mqttPort: Int
    let httpPort: Int
    let server: MQTTServer
    let registry: PrometheusCollectorRegistry
    let logLevel: RuntimeLogLevel

    var broker: Broker { server.broker }

    struct Answer: Sendable {
        let status: UInt
        let body: String
        let contentType: String?

        /// The body as a JSON object (an empty one when it is not).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }

        /// `items` of a list answer.
        var items: [[String: Any]] { json["items"] as? [[String: Any]] ?? [] }

        var errorField: String? { json["field"] as? String }
    }

    /// One request; `token` nil sends no Authorization header.
    func request(
        _ method: HTTPMethod,
        _ path: String,
        body: String? = nil,
        token: String? = adminTestToken
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(httpPort)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let collected = try await response.body.collect(upTo: 8 << 20)
        return Answer(
            status: response.status.code, body: String(buffer: collected),
            contentType: response.headers.first(name: "content-type"))
    }

    func get(_ path: String, token: String? = adminTestToken) async throws -> Answer {
        try await request(.GET, path, token: token)
    }

    /// Polls `condition` every 10 ms for up to two seconds: the engine acts on connections asynchronously.
    func eventually(_ condition: @Sendable () async throws -> Bool) async throws -> Bool {
        for _ in 0..<200 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}

/// Runs a broker and an `AdminServer` with the API configured as given (on by default).
func withAdminAPI(
    token: String? = adminTestToken,
    effectiveConfiguration: (any Encodable & Sendable)? = [
        "storage": "memory", "admin_token_file": "/etc/petrel/token",
    ],
    configure: @escaping (inout ServerConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (AdminAPIHarness) async throws -> Void
) async throws {
    try await withTestServer(configure: configure) { port, server in
        var logger = Logger(label: "petrel.test")
        logger.logLevel = .critical
        let registry = PrometheusCollectorRegistry()
        let logLevel = RuntimeLogLevel(.info)
        let admin = AdminServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            broker: server.broker,
            server: server,
            registry: registry,
            version: "test",
            api: AdminAPIConfiguration(
                token: token, effectiveConfiguration: effectiveConfiguration, logLevel: logLevel),
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await admin.run() }
            let httpPort = await admin.listeningAddress().port ?? 0
            let harness = AdminAPIHarness(
                mqttPort: port, httpPort: httpPort, server: server, registry: registry, logLevel: logLevel)
            do {
                try await body(harness)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }
}

extension TestClient {
    /// SUBSCRIBE to one filter and wait for its SUBACK.
    func subscribe(_ filter: String, qos: QoS, packetIdentifier: UInt16 = 1) async throws {
        try await send(
            .subscribe(.init(packetIdentifier: packetIdentifier, subscriptions: [.init(filter: filter, qos: qos)])))
        guard case .suback = try await next() else {
            Issue.record("expected SUBACK")
            return
        }
    }
}

/// The value of the sample `series` in a Prometheus text exposition, or nil when absent.
func prometheusSample(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        if line[..<space] == series { return Double(line[line.index(after: space)...]) }
    }
    return nil
}
