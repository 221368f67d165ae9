import Logging
import PetrelServer
import Synchronization

/// SIGHUP with `--config`: the file and the environment are read again, under the same command line. What can
/// change while the broker runs is put in use (the log level, the connection limits); any other key that
/// changed is named as needing a restart. A file that no longer reads is refused as a whole.
final class ConfigurationReload: Sendable {
    /// The process's own arguments (after its name): the same command line is layered over the new file.
    private let commandLine: [String]
    private let environment: [String: String]
    private let level: RuntimeLogLevel
    private let server: MQTTServer
    private let current: Mutex<[String: String]>

    /// Keys put in use at once.
    static let reloadable: Set<String> = ["log-level", "max-connections", "max-connections-per-address"]

    init(commandLine: [String], environment: [String: String], level: RuntimeLogLevel, server: MQTTServer) throws {
        self.commandLine = commandLine
        self.environment = environment
        self.level = level
        self.server = server
        self.current = Mutex(try Self.effective(commandLine, environment))
    }

    /// Reads the configuration again; returns what changed, for the log line.
    func reload() throws -> Logger.Metadata {
        let new = try Self.effective(commandLine, environment)
        let old = current.withLock { $0 }
        let changed = Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }.sorted()
        var metadata: Logger.Metadata = [:]
        if changed.contains("log-level"), let newLevel = Logger.Level(rawValue: new["log-level"] ?? "info") {
            level.current = newLevel
        }
        if changed.contains("max-connections") || changed.contains("max-connections-per-address") {
            let connections = Int(new["max-connections"] ?? "0") ?? 0
            let perAddress = Int(new["max-connections-per-address"] ?? "0") ?? 0
            if !server.updateConnectionLimits(maximumConnections: connections, maximumPerAddress: perAddress) {
                metadata["petrel.restart_needed"] = "max-connections (the broker started without connection limits)"
            }
        }
        let applied = changed.filter { Self.reloadable.contains($0) }
        let restart = changed.filter { !Self.reloadable.contains($0) }
        metadata["petrel.changed"] = .string(
            applied.isEmpty ? "nothing" : applied.map { "\($0): \(old[$0] ?? "-") -> \(new[$0] ?? "-")" }.joined(separator: ", ")
        )
        if !restart.isEmpty, metadata["petrel.restart_needed"] == nil {
            metadata["petrel.restart_needed"] = .string(restart.joined(separator: ", "))
        }
        current.withLock { $0 = new }
        return metadata
    }

    private static func effective(_ commandLine: [String], _ environment: [String: String]) throws -> [String: String] {
        let arguments = ServeArguments()
        let expanded = try arguments.expand(commandLine, environment: environment)
        guard let (_, serveArguments) = ServeArguments.serveArguments(expanded) else { return [:] }
        _ = try Serve.parse(serveArguments)  // Refused as a whole, as at start.
        return Dictionary(arguments.options(serveArguments), uniquingKeysWith: { $1 })
    }
}
