import Foundation
import GRDB
import MQTTWire
import NIOCore
import PetrelCore
import Testing

@testable import PetrelStorage

@Suite("SQLite store: schema, bad files, bounds")
struct SQLiteStoreTests {
    private func databasePath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent(SQLiteBrokerStore.fileName)
    }

    @Test("a database of the first schema version is migrated with its data")
    func migrationFromFirstVersion() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = try DatabaseQueue(path: databasePath(directory))
        try StorageSchema.migrator.migrate(queue, upTo: StorageSchema.versions[0])
        try queue.write { db in
            try db.execute(sql: "INSERT INTO session (client_id, protocol_version, expiry_interval) VALUES ('old', 4, 100)")
            try db.execute(sql: "INSERT INTO message (id, topic, payload, qos, retain) VALUES (3, 't', x'6869', 1, 0)")
            try db.execute(sql: """
                INSERT INTO delivery (client_id, sequence, message_id, qos, retain, subscription_identifiers, state)
                VALUES ('old', 1, 3, 1, 0, '', 0)
                """)
            try db.execute(sql: "INSERT INTO retained (topic, payload, qos) VALUES ('r', x'6f6b', 0)")
        }
        try queue.close()

        let store = try SQLiteBrokerStore(directory: directory)
        defer { store.close() }
        let snapshot = store.load()
        #expect(snapshot.session("old")?.session.protocolVersion == .v3_1_1)
        // Stored before disconnect times were: counted as connected when the broker stopped.
        #expect(snapshot.session("old")?.session.disconnectedAt == nil)
        #expect(snapshot.session("old")?.deliveries.map { String(buffer: $0.message.payload) } == ["hi"])
        #expect(snapshot.retained.map(\.topic) == ["r"])
        let applied = try DatabaseQueue(path: databasePath(directory)).read { try StorageSchema.migrator.appliedIdentifiers($0) }
        #expect(applied == Set(StorageSchema.versions))
    }

    @Test("a database written by a newer schema is refused with a clear message")
    func newerSchemaRefused() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        SQLiteBrokerStore.testOnlyCreate(directory)
        let queue = try DatabaseQueue(path: databasePath(directory))
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')") }
        try queue.close()
        let error = try #require(throws: StorageError.self) { try SQLiteBrokerStore(directory: directory) }
        #expect(error.code == .newerSchema)
        #expect(error.description.contains("newer version"))
    }

    @Test("a file that is not a database is refused")
    func garbageFile() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: databasePath(directory)))
        let error = try #require(throws: StorageError.self) { try SQLiteBrokerStore(directory: directory) }
        #expect(error.code == .corrupt)
    }

    @Test("a truncated database is refused")
    func truncatedFile() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let store = try SQLiteBrokerStore(directory: directory)
            for index in 0..<3000 {
                store.retainedSet(message("r/\(index)", String(repeating: "x", count: 200), retain: true))
            }
            store.close()
        }
        let path = databasePath(directory)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        #expect(throws: StorageError.self) { try SQLiteBrokerStore(directory: directory) }
    }

    @Test("bounds on retained messages and database size answer 0x97")
    func bounds() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = SQLiteStoreConfiguration()
        configuration.maximumRetainedMessages = 2
        configuration.maximumRetainedBytes = 100
        let store = try SQLiteBrokerStore(directory: directory, configuration: configuration)
        defer { store.close() }
        store.retainedSet(message("a", "1", retain: true))
        store.retainedSet(message("b", "1", retain: true))
        #expect(store.refusal(for: message("c", "1", retain: true)) == .quotaExceeded)
        // Replacing an existing topic, or a message that is not retained, is fine.
        #expect(store.refusal(for: message("a", "2", retain: true)) == nil)
        #expect(store.refusal(for: message("c", "1")) == nil)
        #expect(store.refusal(for: message("a", String(repeating: "x", count: 100), retain: true)) == .quotaExceeded)
        store.retainedRemoved(topic: "b")
        #expect(store.refusal(for: message("c", "1", retain: true)) == nil)

        var tight = SQLiteStoreConfiguration()
        tight.maximumDatabaseSize = 4096
        let other = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        let small = try SQLiteBrokerStore(directory: other, configuration: tight)
        defer { small.close() }
        #expect(small.refusal(for: message("t", "x")) == .quotaExceeded)
    }
}

extension SQLiteBrokerStore {
    /// Creates an empty, current database in `directory`.
    static func testOnlyCreate(_ directory: String) {
        if let store = try? SQLiteBrokerStore(directory: directory) { store.close() }
    }
}
