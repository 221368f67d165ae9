import ArgumentParser
import PetrelStorage

enum StorageKind: String, ExpressibleByArgument, CaseIterable {
    case sqlite
    case memory
}

extension StorageDurability: ExpressibleByArgument {}

/// The `serve` options that choose and bound the store.
struct StorageOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Directory of the database (created when missing).", valueName: "dir"))
    var dataDir: String = "./petrel-data"

    @Option(name: .long, help: "Where state lives: sqlite (durable, in --data-dir) or memory (lost at exit).")
    var storage: StorageKind = .sqlite

    @Option(name: .long, help: "When a QoS 1/2 acknowledgement is sent: sync (after fsync), batched (after its group commit), none (at once).")
    var durability: StorageDurability = .batched

    @Option(name: .long, help: "batched: at most one group commit per this many milliseconds while busy; none: background commit period.")
    var commitIntervalMs: Int = 2

    @Option(name: .long, help: "Writes that start a group commit without waiting for the interval.")
    var commitBatch: Int = 1000

    @Option(name: .long, help: "Retained messages kept at most; a new retained topic beyond is refused.")
    var maxRetainedMessages: Int = 1_000_000

    @Option(name: .long, help: "Bytes (topic and payload) of retained messages kept at most.")
    var maxRetainedBytes: Int = 1 << 30

    @Option(name: .long, help: "Database size in bytes above which QoS 1/2 messages are refused (default: no bound).")
    var maxDatabaseSize: Int?

    func validate() throws {
        guard commitIntervalMs >= 1 else { throw ValidationError("--commit-interval-ms must be at least 1") }
        guard commitBatch >= 1 else { throw ValidationError("--commit-batch must be at least 1") }
        guard maxRetainedMessages >= 0 else { throw ValidationError("--max-retained-messages must not be negative") }
        guard maxRetainedBytes >= 0 else { throw ValidationError("--max-retained-bytes must not be negative") }
        if let maxDatabaseSize, maxDatabaseSize < 65536 {
            throw ValidationError("--max-database-size must be at least 65536 bytes")
        }
    }

    var sqliteConfiguration: SQLiteStoreConfiguration {
        var configuration = SQLiteStoreConfiguration()
        configuration.durability = durability
        configuration.commitInterval = .milliseconds(commitIntervalMs)
        configuration.commitBatch = commitBatch
        configuration.maximumRetainedMessages = maxRetainedMessages
        configuration.maximumRetainedBytes = maxRetainedBytes
        configuration.maximumDatabaseSize = maxDatabaseSize
        return configuration
    }
}
