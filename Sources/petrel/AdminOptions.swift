import ArgumentParser
import Foundation
import Metrics
import PetrelAdmin
import Prometheus

/// `--http HOST:PORT`: the operators' HTTP listener (metrics, health, readiness), and `--admin-token-file`, which
/// turns on the admin API there.
struct AdminOptions: ParsableArguments {
    @Option(
        name: .customLong("http"),
        help: ArgumentHelp(
            "Serve /metrics (Prometheus), /health and /ready over HTTP here, e.g. 127.0.0.1:8081 (off by default).",
            valueName: "host:port"
        )
    )
    var address: String?

    @Option(
        name: .customLong("admin-token-file"),
        help: ArgumentHelp(
            "With --http: serve the admin API under /api/v1 to requests with 'Authorization: Bearer <token>', the token being this file's content.",
            valueName: "file"
        )
    )
    var tokenFile: String?

    func validate() throws {
        if let address { _ = try Self.parse(address) }
        if tokenFile != nil, address == nil { throw ValidationError("--admin-token-file needs --http HOST:PORT") }
    }

    /// The shortest token accepted: a bearer token is all that guards the API, so it must not be guessable.
    static let minimumTokenLength = 16

    /// The admin token: the file's content without surrounding white space (a trailing newline is usual). Read
    /// at start only; a missing, unreadable or too short file stops the start.
    func loadToken() throws -> String? {
        guard let tokenFile else { return nil }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: tokenFile))
        } catch {
            throw ValidationError("--admin-token-file: cannot read '\(tokenFile)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--admin-token-file: '\(tokenFile)' is not UTF-8 text")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= Self.minimumTokenLength, !token.contains(where: \.isWhitespace) else {
            throw ValidationError(
                "--admin-token-file: the token in '\(tokenFile)' must be at least \(Self.minimumTokenLength) characters without spaces"
            )
        }
        return token
    }

    var configuration: AdminServer.Configuration? {
        guard let address, let (host, port) = try? Self.parse(address) else { return nil }
        return .init(host: host, port: port)
    }

    /// `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for 127.0.0.1.
    static func parse(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("--http needs HOST:PORT (e.g. 127.0.0.1:8081), not '\(address)'")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// Everything swift-metrics records from now on lands in `registry`, with buckets fit for what is timed.
    static func bootstrapMetrics(into registry: PrometheusCollectorRegistry) {
        var factory = PrometheusMetricsFactory(registry: registry)
        let fine: [Duration] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.durationHistogramBuckets = [
            "petrel_event_loop_lag_seconds": fine,
            "petrel_storage_commit_seconds": fine,
        ]
        MetricsSystem.bootstrap(factory)
    }
}
