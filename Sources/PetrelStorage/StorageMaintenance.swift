import Foundation
import GRDB

/// Operator tasks on a data directory: statistics, compaction, export and import as JSON lines.
public struct StorageMaintenance {
    public let directory: String
    public let path: String
    private let database: DatabaseQueue

    /// Opens an existing database (`mustExist`) or creates one, migrated to the current schema.
    public init(directory: String, mustExist: Bool = true) throws {
        self.directory = directory
        self.path = (directory as NSString).appendingPathComponent(SQLiteBrokerStore.fileName)
        if mustExist, !FileManager.default.fileExists(atPath: self.path) {
            throw StorageError(.cannotOpen, "no Petrel database in \(directory) (expected \(self.path))")
        }
        if !mustExist { try SQLiteBrokerStore.createDirectory(directory) }
        self.database = try SQLiteBrokerStore.open(path: self.path, durability: .sync)
    }

    public struct Statistics: Sendable {
        public var rows: [(table: String, count: Int)]
        public var fileBytes: Int
        public var walBytes: Int
        public var freePages: Int
        public var pageSize: Int
        public var schemaVersion: String
    }

    public func statistics() throws -> Statistics {
        try self.database.read { db in
            var rows: [(String, Int)] = []
            for table in StorageSchema.tables {
                rows.append((table, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0))
            }
            let applied = try StorageSchema.migrator.appliedMigrations(db)
            return Statistics(
                rows: rows,
                fileBytes: Self.fileSize(self.path),
                walBytes: Self.fileSize(self.path + "-wal"),
                freePages: try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0,
                pageSize: try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0,
                schemaVersion: applied.last ?? "none"
            )
        }
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Checkpoints the WAL and rebuilds the file without free pages. Returns the sizes before and after.
    public func compact() throws -> (before: Int, after: Int) {
        let before = Self.fileSize(self.path) + Self.fileSize(self.path + "-wal")
        try self.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            try db.execute(sql: "VACUUM")
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return (before, Self.fileSize(self.path) + Self.fileSize(self.path + "-wal"))
    }

    // MARK: - Export and import

    /// Writes a header line, then one line per row: `{"table": NAME, "row": {COLUMN: VALUE}}`. Blobs are
    /// `{"base64": "..."}`. Returns the number of rows written.
    @discardableResult
    public func export(to handle: FileHandle) throws -> Int {
        var count = 0
        try self.database.read { db in
            let applied = try StorageSchema.migrator.appliedMigrations(db)
            try Self.writeLine(["petrel_export": 1, "schema": applied.last ?? ""], to: handle)
            for table in StorageSchema.tables {
                let rows = try Row.fetchCursor(db, sql: "SELECT * FROM \(table)")
                while let row = try rows.next() {
                    var object: [String: Any] = [:]
                    for (column, value) in row {
                        object[column] = Self.json(value)
                    }
                    try Self.writeLine(["table": table, "row": object], to: handle)
                    count += 1
                }
            }
        }
        return count
    }

    /// Reads what `export` wrote into this database, which must hold no sessions, messages or retained
    /// messages. All or nothing: one transaction. Returns the number of rows imported.
    @discardableResult
    public func importLines(from data: Data) throws -> Int {
        let lines = data.split(separator: UInt8(ascii: "\n"))
        guard let first = lines.first,
            let header = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any],
            header["petrel_export"] != nil
        else {
            throw StorageError(.importFailed, "not a Petrel export: the first line must be its header")
        }
        if let schema = header["schema"] as? String, !StorageSchema.versions.contains(schema) {
            throw StorageError(.importFailed, "the export was written by a newer schema (\(schema)); upgrade Petrel")
        }
        var count = 0
        try self.database.write { db in
            for table in StorageSchema.tables {
                if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0 > 0 {
                    throw StorageError(.importFailed, "the database in \(self.directory) is not empty (table \(table)); import into a new --data-dir")
                }
            }
            for (index, line) in lines.dropFirst().enumerated() where !line.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    let table = object["table"] as? String, StorageSchema.tables.contains(table),
                    let row = object["row"] as? [String: Any], !row.isEmpty
                else {
                    throw StorageError(.importFailed, "line \(index + 2) is not a row of a known table")
                }
                let columns = row.keys.sorted()
                guard columns.allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } }) else {
                    throw StorageError(.importFailed, "line \(index + 2) names an invalid column")
                }
                let values = try columns.map { try Self.databaseValue(row[$0]!, line: index + 2) }
                let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
                do {
                    try db.execute(sql: sql, arguments: StatementArguments(values))
                } catch {
                    throw StorageError(.importFailed, "line \(index + 2): \(error)")
                }
                count += 1
            }
        }
        return count
    }

    private static func writeLine(_ object: [String: Any], to handle: FileHandle) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: data)
    }

    private static func json(_ value: DatabaseValue) -> Any {
        switch value.storage {
        case .null: return NSNull()
        case .int64(let int): return int
        case .double(let double): return double
        case .string(let string): return string
        case .blob(let data): return ["base64": data.base64EncodedString()]
        }
    }

    private static func databaseValue(_ value: Any, line: Int) throws -> DatabaseValue {
        switch value {
        case is NSNull: return .null
        case let string as String: return string.databaseValue
        case let object as [String: Any]:
            guard let text = object["base64"] as? String, let data = Data(base64Encoded: text) else {
                throw StorageError(.importFailed, "line \(line): invalid blob")
            }
            return data.databaseValue
        case let number as NSNumber:
            // Every numeric column of the schema is an integer.
            return number.int64Value.databaseValue
        default:
            throw StorageError(.importFailed, "line \(line): unsupported value \(value)")
        }
    }
}
