import Foundation
import GRDB
import PetrelCore
import Testing

@testable import PetrelStorage

/// Topics and filters as deep as the wire allows (32,768 levels in 65,535 bytes) survive the store, its export and
/// import, and a broker starts on them.
@Suite("SQLite store: deep topics")
struct DeepTopicStorageTests {
    static let topic = "x" + String(repeating: "/y", count: 32_767)
    static let filter = "x" + String(repeating: "/+", count: 32_766) + "/#"

    private func databasePath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent(SQLiteBrokerStore.fileName)
    }

    /// A data directory holding one persistent session subscribed to `filter` and one retained message on `topic`.
    private func seededDirectory() throws -> String {
        let directory = temporaryDirectory()
        SQLiteBrokerStore.testOnlyCreate(directory)
        let queue = try DatabaseQueue(path: databasePath(directory))
        try queue.write { db in
            try db.execute(sql: "INSERT INTO session (client_id, protocol_version, expiry_interval) VALUES ('deep', 5, 4294967295)")
            try db.execute(
                sql: "INSERT INTO subscription (client_id, filter, qos, no_local, retain_as_published, retain_handling) VALUES ('deep', ?, 1, 0, 0, 0)",
                arguments: [Self.filter]
            )
            try db.execute(sql: "INSERT INTO retained (topic, payload, qos) VALUES (?, x'6b657074', 1)", arguments: [Self.topic])
        }
        try queue.close()
        return directory
    }

    @Test("a store with 32,768-level filters and topics exports, imports, and a broker starts on it")
    func exportImportAndStart() throws {
        let source = try seededDirectory()
        let target = temporaryDirectory()
        let exportPath = NSTemporaryDirectory() + "petrel-export-\(UUID().uuidString).jsonl"
        defer {
            for path in [source, target, exportPath] { try? FileManager.default.removeItem(atPath: path) }
        }
        #expect(FileManager.default.createFile(atPath: exportPath, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: exportPath))
        #expect(try StorageMaintenance(directory: source).export(to: handle) >= 3)
        try handle.close()
        #expect(try StorageMaintenance(directory: target, mustExist: false).importLines(from: Data(contentsOf: URL(fileURLWithPath: exportPath))) >= 3)

        do {
            let store = try SQLiteBrokerStore(directory: target)
            defer { store.close() }
            let snapshot = store.load()
            #expect(snapshot.session("deep")?.subscriptions.map(\.filter) == [Self.filter])
            #expect(snapshot.retained.map(\.topic) == [Self.topic])
        }
        // The default limit of levels applies to new packets, not to what is already stored.
        let store = try SQLiteBrokerStore(directory: target)
        defer { store.close() }
        let broker = Broker(store: store, now: .now())
        #expect(broker.statistics.sessions == 1)
        #expect(broker.statistics.retainedMessages == 1)
        _ = broker.tick(now: .now())
        broker.shutdown(now: .now())
    }

    @Test("an import line nested thousands of levels deep is refused with an error")
    func deeplyNestedImportLine() throws {
        let target = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: target) }
        let header = #"{"petrel_export": 1, "schema": "v1"}"#
        let nested = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let lines = header + "\n" + #"{"table": "retained", "row": "# + nested + "}\n"
        #expect(throws: StorageError.self) {
            try StorageMaintenance(directory: target, mustExist: false).importLines(from: Data(lines.utf8))
        }
    }
}
