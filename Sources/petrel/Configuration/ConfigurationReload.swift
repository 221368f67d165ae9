import Logging
import PetrelServer
import Synchronization

/// SIGHUP with `--config`: the file and the environment are read again, under the same command line. What can
/// change while the broker runs is put in use (the log level, the connection limits, the queue, publish rate
/// and subscription limits); any other key that changed is named as needing a restart. A file that no longer
/// reads is refused as a whole.
final class ConfigurationReload: Sendable {
    /// The process's own arguments (after its name): the same command line is layered over the new file.
    private let commandLine: [String]
    private let environment: [String: String]
    private let level: RuntimeLogLevel
    private let server: MQTTServer
    private let current: Mutex<[String: String]>

    /// Keys put in use at once.
    static let reloadable: Set<String> = [
        "log-level", "max-connections", "max-connections-per-address", "max-queued-messages", "max-queued-bytes",
        "max-publish-rate", "max-subscriptions",
    ]

    init(commandLine: [String], environment: [String: String], level: RuntimeLogLevel, server: MQTTServer) throws {
        self.commandLine = commandLine
        self.environment = environment
        self.level = level
        self.server = server
        self.current = Mutex(try Self.effective(commandLine, environment).options)
    }

    /// Reads the configuration again; returns what changed, for the log line.
    func reload() throws -> Logger.Metadata {
        let (new, serve) = try Self.effective(commandLine, environment)
        let old = current.withLock { $0 }
        let changed = Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }.sorted()
        var metadata: Logger.Metadata = [:]
        // A key the file no longer sets is back at its default: the values come from the parsed options.
        level.current = serve.logLevel
        server.broker.limits.update(
            maximumQueuedMessages: serve.maxQueuedMessages,
            maximumQueuedBytes: serve.maxQueuedBytes,
            maximumPublishRate: serve.maxPublishRate,
            maximumSubscriptionsPerSession: serve.maxSubscriptions
        )
        var restart = changed.filter { !Self.reloadable.contains($0) }
        if !server.updateConnectionLimits(
            maximumConnections: serve.maxConnections,
            maximumPerAddress: serve.maxConnectionsPerAddress
        ) {
            restart.append("max-connections (the broker started without connection limits)")
        }
        let applied = changed.filter { Self.reloadable.contains($0) }
        metadata["petrel.changed"] = .string(
            applied.isEmpty ? "nothing" : applied.map { "\($0): \(old[$0] ?? "-") -> \(new[$0] ?? "-")" }.joined(separator: ", ")
        )
        if !restart.isEmpty {
            metadata["petrel.restart_needed"] = .string(restart.joined(separator: ", "))
        }
        current.withLock { $0 = new }
        return metadata
    }

    /// The options as keys and values, and as `serve` parses them (refused as a whole, as at start).
    private static func effective(_ commandLine: [String], _ environment: [String: String]) throws -> (options: [String: String], serve: Serve) {
        let arguments = ServeArguments()
        let expanded = try arguments.expand(commandLine, environment: environment)
        let serveArguments = ServeArguments.serveArguments(expanded)?.rest ?? []
        let serve = try Serve.parse(serveArguments)
        return (Dictionary(arguments.options(serveArguments), uniquingKeysWith: { $1 }), serve)
    }
}
