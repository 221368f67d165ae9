import Dispatch
import Foundation
import GRDB
import Metrics
import MQTTWire
import NIOCore
import PetrelCore
import Synchronization

/// How much a QoS 1/2 acknowledgement promises.
public enum StorageDurability: String, Sendable, CaseIterable {
    /// The acknowledgement is sent once the message is committed and fsync'd (`synchronous=FULL`). Commits
    /// start as soon as a publisher waits and group whatever arrived meanwhile.
    case sync
    /// Group commit every `commitInterval` or `commitBatch` writes, whichever comes first (fsync'd too);
    /// acknowledgements wait for their batch.
    case batched
    /// Acknowledged at memory speed, written in the background without fsync: a crash may lose the last
    /// moments.
    case none
}

/// Settings of a `SQLiteBrokerStore`.
public struct SQLiteStoreConfiguration: Sendable {
    public var durability: StorageDurability = .batched
    public var commitInterval: Duration = .milliseconds(2)
    /// Writes that start a commit without waiting for the interval.
    public var commitBatch: Int = 1000
    /// Retained messages kept at most; a new retained topic beyond is refused (0x97).
    public var maximumRetainedMessages: Int = 1_000_000
    /// Payload and topic bytes of retained messages kept at most.
    public var maximumRetainedBytes: Int = 1 << 30
    /// Database size (bytes) above which QoS 1/2 messages are refused (0x97); nil for no bound.
    public var maximumDatabaseSize: Int? = nil

    public init() {}
}

/// A `BrokerStore` in a SQLite database (WAL) through GRDB. The engine's calls only append to an in-memory
/// batch under a mutex; a dedicated writer thread commits the batches, so event loops never wait for the disk.
/// Commit tickets complete when the writer has committed the writes they cover.
public final class SQLiteBrokerStore: BrokerStore {
    /// The database file name inside the data directory.
    public static let fileName = "petrel.sqlite"

    public let path: String
    public let configuration: SQLiteStoreConfiguration
    private let database: DatabaseQueue
    private let state: Mutex<WriterState>
    private let wakeWriter = DispatchSemaphore(value: 0)
    private let writerStopped = DispatchSemaphore(value: 0)
    private let onError: @Sendable (String) -> Void
    /// How long each batch commit takes (the metric `petrel_storage_commit_seconds`, through swift-metrics).
    private let commitDuration: Metrics.Timer
    /// Mirrors `pending.count` (written under the lock) so a full batch can be noticed without taking it again.
    private let pendingCount = Atomic<Int>(0)
    /// Set when a full batch woke the writer; cleared when the writer takes the batch.
    private let wakeSent = Atomic<Bool>(false)

    enum Operation: Sendable {
        case saveSession(StoredSession)
        case removeSession(String)
        case saveSubscription(String, StoredSubscription)
        case removeSubscription(String, String)
        case insertMessage(Int64, Message)
        case deleteMessage(Int64)
        case saveDelivery(String, StoredDelivery, messageID: Int64)
        case removeDelivery(String, UInt64)
        case storeInbound(String, UInt16)
        case releaseInbound(String, UInt16)
        case setRetained(Message)
        case removeRetained(String)
    }

    struct MessageEntry {
        var id: Int64
        var references: Int
        /// Kept so that its `ObjectIdentifier` is not reused while the entry exists.
        var message: Message
    }

    struct Waiter {
        var sequence: UInt64
        var callback: @Sendable (Bool) -> Void
    }

    struct WriterState {
        var pending: [Operation] = []
        /// Operations ever appended, and the count of them committed.
        var appended: UInt64 = 0
        var committed: UInt64 = 0
        var waiters: [Waiter] = []
        var failing = false
        var stopping = false
        var snapshot: BrokerStoreSnapshot?
        /// Message rows by the identity of the engine's `Message`, with the deliveries that reference them.
        var messages: [ObjectIdentifier: MessageEntry] = [:]
        var deliveries: [String: [UInt64: ObjectIdentifier]] = [:]
        var nextMessageID: Int64 = 1
        var retainedSizes: [String: Int] = [:]
        var retainedBytes = 0
        var databaseSize = 0
    }

    /// Opens (creating when missing) the database in `directory`, migrates it to the current schema and reads
    /// everything into the snapshot `load()` returns. Throws `StorageError` with a clear description when the
    /// directory or file cannot be used.
    public init(
        directory: String,
        configuration: SQLiteStoreConfiguration = .init(),
        onError: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        try Self.createDirectory(directory)
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        self.path = path
        self.configuration = configuration
        self.onError = onError
        self.commitDuration = Metrics.Timer(label: "petrel_storage_commit_seconds", preferredDisplayUnit: .seconds)
        self.database = try Self.open(path: path, durability: configuration.durability)
        var state = WriterState()
        let snapshot = try Self.load(self.database, into: &state)
        state.snapshot = snapshot
        state.databaseSize = (try? self.database.read { try Self.databaseSize($0) }) ?? 0
        self.state = Mutex(state)
        let thread = Thread { [self] in self.writerLoop() }
        thread.name = "petrel-storage-writer"
        thread.start()
    }

    static func createDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.cannotCreateDirectory, "cannot create the data directory \(directory): \(error.localizedDescription)")
        }
    }

    /// Opens and migrates the database; refuses one written by a newer schema.
    static func open(path: String, durability: StorageDurability) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.label = "petrel-storage"
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: durability == .none ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = FULL")
        }
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw describe(error, path: path, opening: true)
        }
        do {
            let migrator = StorageSchema.migrator
            if try database.read({ try migrator.hasBeenSuperseded($0) }) {
                throw StorageError(
                    .newerSchema,
                    "the database \(path) was written by a newer version of Petrel (its schema has migrations this "
                        + "binary does not know); upgrade Petrel or use another --data-dir"
                )
            }
            try migrator.migrate(database)
        } catch let error as StorageError {
            throw error
        } catch {
            throw describe(error, path: path, opening: true)
        }
        return database
    }

    static func describe(_ error: any Error, path: String, opening: Bool) -> StorageError {
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                return StorageError(.corrupt, "the database \(path) is corrupt or not a Petrel database (\(error.message ?? "\(error)")); move it away or restore it from an export")
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
                return StorageError(.cannotOpen, "cannot open the database \(path) for writing (\(error.message ?? "\(error)")): check that the data directory and its files are writable")
            case .SQLITE_FULL:
                return StorageError(.cannotOpen, "the disk holding \(path) is full")
            case .SQLITE_IOERR:
                return StorageError(.corrupt, "I/O error reading \(path) (\(error.message ?? "\(error)")): the file may be truncated or the disk failing")
            default:
                break
            }
        }
        return StorageError(.cannotOpen, "cannot use the database \(path): \(error)")
    }

    /// Bytes in use: pages minus free pages (the file does not shrink when rows go, but their pages are reused).
    static func databaseSize(_ db: Database) throws -> Int {
        let pages = (try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0) - (try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
        let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
        return pages * pageSize
    }

    // MARK: - BrokerStore

    public func load() -> BrokerStoreSnapshot {
        self.state.withLock { state in
            defer { state.snapshot = nil }
            return state.snapshot ?? BrokerStoreSnapshot()
        }
    }

    public func sessionSaved(_ session: StoredSession) {
        self.append(.saveSession(session))
    }

    public func sessionRemoved(clientIdentifier: String) {
        self.state.withLock { state in
            if let owned = state.deliveries.removeValue(forKey: clientIdentifier) {
                for key in owned.values { Self.release(key, &state) }
            }
            self.append(.removeSession(clientIdentifier), &state)
        }
        self.wakeIfFull()
    }

    public func subscriptionSaved(clientIdentifier: String, _ subscription: StoredSubscription) {
        self.append(.saveSubscription(clientIdentifier, subscription))
    }

    public func subscriptionRemoved(clientIdentifier: String, filter: String) {
        self.append(.removeSubscription(clientIdentifier, filter))
    }

    public func deliverySaved(clientIdentifier: String, _ delivery: StoredDelivery) {
        self.state.withLock { state in
            let key = ObjectIdentifier(delivery.message)
            let previous = state.deliveries[clientIdentifier]?[delivery.sequence]
            if previous != key {
                if var entry = state.messages[key] {
                    entry.references += 1
                    state.messages[key] = entry
                } else {
                    let id = state.nextMessageID
                    state.nextMessageID += 1
                    state.messages[key] = MessageEntry(id: id, references: 1, message: delivery.message)
                    self.append(.insertMessage(id, delivery.message), &state)
                }
                state.deliveries[clientIdentifier, default: [:]][delivery.sequence] = key
                if let previous { Self.release(previous, &state) }
            }
            let id = state.messages[key]!.id
            self.append(.saveDelivery(clientIdentifier, delivery, messageID: id), &state)
        }
        self.wakeIfFull()
    }

    public func deliveryRemoved(clientIdentifier: String, sequence: UInt64) {
        self.state.withLock { state in
            if let key = state.deliveries[clientIdentifier]?.removeValue(forKey: sequence) {
                self.append(.removeDelivery(clientIdentifier, sequence), &state)
                Self.release(key, &state)
            }
        }
        self.wakeIfFull()
    }

    public func inboundQoS2Stored(clientIdentifier: String, packetIdentifier: UInt16) {
        self.append(.storeInbound(clientIdentifier, packetIdentifier))
    }

    public func inboundQoS2Released(clientIdentifier: String, packetIdentifier: UInt16) {
        self.append(.releaseInbound(clientIdentifier, packetIdentifier))
    }

    public func retainedSet(_ message: Message) {
        self.state.withLock { state in
            let size = message.payload.readableBytes + message.topic.utf8.count
            state.retainedBytes += size - (state.retainedSizes.updateValue(size, forKey: message.topic) ?? 0)
            self.append(.setRetained(message), &state)
        }
        self.wakeIfFull()
    }

    public func retainedRemoved(topic: String) {
        self.state.withLock { state in
            state.retainedBytes -= state.retainedSizes.removeValue(forKey: topic) ?? 0
            self.append(.removeRetained(topic), &state)
        }
        self.wakeIfFull()
    }

    public func commitTicket() -> (any StoreCommitTicket)? {
        guard self.configuration.durability != .none else { return nil }
        let sequence: UInt64? = self.state.withLock { state in
            state.appended == state.committed ? nil : state.appended
        }
        guard let sequence else { return nil }
        self.wakeWriter.signal()
        return Ticket(store: self, sequence: sequence)
    }

    public func refusal(for message: Message) -> ReasonCode? {
        self.state.withLock { state in
            if state.failing { return .unspecifiedError }
            if let limit = self.configuration.maximumDatabaseSize, state.databaseSize >= limit { return .quotaExceeded }
            if message.retain, message.payload.readableBytes > 0 {
                let size = message.payload.readableBytes + message.topic.utf8.count
                let previous = state.retainedSizes[message.topic]
                if previous == nil, state.retainedSizes.count >= self.configuration.maximumRetainedMessages {
                    return .quotaExceeded
                }
                if state.retainedBytes - (previous ?? 0) + size > self.configuration.maximumRetainedBytes {
                    return .quotaExceeded
                }
            }
            return nil
        }
    }

    /// Waits until everything written so far is committed (or the commit failed), then returns.
    public func flush() {
        let done = DispatchSemaphore(value: 0)
        let sequence = self.state.withLock { $0.appended }
        self.whenCommitted(sequence) { _ in done.signal() }
        self.wakeWriter.signal()
        _ = done.wait(timeout: .now() + .seconds(30))
    }

    /// Commits what is pending, stops the writer thread and checkpoints the WAL into the database file.
    public func close() {
        self.flush()
        let running = self.state.withLock { state in
            defer { state.stopping = true }
            return !state.stopping
        }
        guard running else { return }
        self.wakeWriter.signal()
        _ = self.writerStopped.wait(timeout: .now() + .seconds(30))
        try? self.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    /// Counts for tests and diagnostics: message bodies referenced by deliveries, and retained messages.
    public var storedMessageCount: Int { self.state.withLock { $0.messages.count } }
    public var retainedCount: Int { self.state.withLock { $0.retainedSizes.count } }

    // MARK: - Batching

    private func append(_ operation: Operation) {
        self.state.withLock { self.append(operation, &$0) }
        self.wakeIfFull()
    }

    private static func append(_ operation: Operation, _ state: inout WriterState) {
        state.pending.append(operation)
        state.appended += 1
    }

    private func append(_ operation: Operation, _ state: inout WriterState) {
        Self.append(operation, &state)
        self.pendingCount.store(state.pending.count, ordering: .relaxed)
        // The first write of a batch wakes an idle writer (which otherwise sleeps up to a second).
        if state.pending.count == 1 { self.wakeWriter.signal() }
    }

    /// Wakes the writer when the batch reached `commitBatch` writes (read from the lock-free mirror the appends
    /// keep, so the engine's calls take the store's lock once).
    private func wakeIfFull() {
        if self.pendingCount.load(ordering: .relaxed) >= self.configuration.commitBatch,
            self.wakeSent.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        {
            self.wakeWriter.signal()
        }
    }

    /// Drops one delivery's reference to a message row; the row goes with the last one.
    private static func release(_ key: ObjectIdentifier, _ state: inout WriterState) {
        guard var entry = state.messages[key] else { return }
        entry.references -= 1
        if entry.references > 0 {
            state.messages[key] = entry
        } else {
            state.messages[key] = nil
            self.append(.deleteMessage(entry.id), &state)
        }
    }

    struct Ticket: StoreCommitTicket {
        let store: SQLiteBrokerStore
        let sequence: UInt64

        func whenCommitted(_ callback: @escaping @Sendable (Bool) -> Void) {
            self.store.whenCommitted(self.sequence, callback)
        }
    }

    private func whenCommitted(_ sequence: UInt64, _ callback: @escaping @Sendable (Bool) -> Void) {
        let done = self.state.withLock { state in
            if state.committed >= sequence { return true }
            state.waiters.append(Waiter(sequence: sequence, callback: callback))
            return false
        }
        if done { callback(true) }
    }

    // MARK: - The writer thread

    private func writerLoop() {
        let interval = self.configuration.commitInterval
        let nanoseconds = interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000
        var retryDelay = 0
        var lastCommit = DispatchTime.now()
        let spacing = DispatchTimeInterval.nanoseconds(Int(max(nanoseconds, 100_000)))
        while true {
            if retryDelay > 0 {
                _ = self.wakeWriter.wait(timeout: .now() + .milliseconds(retryDelay))
            } else {
                // Woken by the first write of a batch, a waiting acknowledgement or a full batch; idle otherwise.
                _ = self.wakeWriter.wait(timeout: .now() + .seconds(1))
            }
            if self.configuration.durability != .sync {
                // At most one commit per interval (counted from the start of the previous one), unless the batch
                // is full: an idle writer commits at once, a busy one groups what arrives within the interval.
                let earliest = lastCommit + spacing
                let now = DispatchTime.now()
                if now < earliest, self.pendingCount.load(ordering: .relaxed) < self.configuration.commitBatch {
                    let nanoseconds = earliest.uptimeNanoseconds - now.uptimeNanoseconds
                    usleep(useconds_t(min(nanoseconds / 1000, 1_000_000)))
                }
            }
            let (batch, upTo, stopping) = self.state.withLock { state in
                let batch = state.pending
                state.pending.removeAll(keepingCapacity: true)
                self.pendingCount.store(0, ordering: .relaxed)
                self.wakeSent.store(false, ordering: .relaxed)
                return (batch, state.appended, state.stopping)
            }
            if batch.isEmpty {
                if stopping { break }
                continue
            }
            lastCommit = DispatchTime.now()
            do {
                let size = try self.database.write { db in
                    for operation in batch { try Self.apply(operation, db) }
                    return try Self.databaseSize(db)
                }
                self.commitDuration.recordNanoseconds(
                    Int64(DispatchTime.now().uptimeNanoseconds - lastCommit.uptimeNanoseconds)
                )
                retryDelay = 0
                let ready: [Waiter] = self.state.withLock { state in
                    state.committed = upTo
                    state.databaseSize = size
                    state.failing = false
                    var ready: [Waiter] = []
                    state.waiters.removeAll { waiter in
                        guard waiter.sequence <= upTo else { return false }
                        ready.append(waiter)
                        return true
                    }
                    return ready
                }
                for waiter in ready { waiter.callback(true) }
            } catch {
                // Keep the batch for another try; fail the acknowledgements that wait for it, and refuse new
                // QoS 1/2 messages until a commit succeeds again.
                let failed: [Waiter] = self.state.withLock { state in
                    state.pending.insert(contentsOf: batch, at: 0)
                    state.failing = true
                    var failed: [Waiter] = []
                    state.waiters.removeAll { waiter in
                        guard waiter.sequence <= upTo else { return false }
                        failed.append(waiter)
                        return true
                    }
                    return failed
                }
                self.onError("storage commit failed, retrying: \(Self.describe(error, path: self.path, opening: false))")
                for waiter in failed { waiter.callback(false) }
                retryDelay = min(max(retryDelay * 2, 100), 2000)
                if stopping { break }
            }
        }
        self.writerStopped.signal()
    }

    private static func apply(_ operation: Operation, _ db: Database) throws {
        let engineNow = NIODeadline.now()
        switch operation {
        case .saveSession(let session):
            let will = session.will
            let disconnectedAt = session.disconnectedAt.map {
                StorageCoding.wallClock($0, engineNow: engineNow, wallNow: StorageCoding.wallClockMilliseconds())
            }
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO session
                    (client_id, protocol_version, expiry_interval, will_topic, will_payload, will_qos, will_retain,
                     will_properties, disconnected_at_ms, owner, owner_known)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    session.clientIdentifier, Int(session.protocolVersion.rawValue), Int64(session.expiryInterval),
                    will?.topic, will.map { Data(StorageCoding.bytes($0.payload)) }, will.map { Int($0.qos.rawValue) },
                    will?.retain, will.flatMap { StorageCoding.encode($0.properties) }.map { Data($0) },
                    disconnectedAt, session.owner ?? nil, session.owner != nil,
                ])
        case .removeSession(let client):
            for table in ["session", "subscription", "delivery", "inbound_qos2"] {
                try db.cachedStatement(sql: "DELETE FROM \(table) WHERE client_id = ?").execute(arguments: [client])
            }
        case .saveSubscription(let client, let subscription):
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO subscription
                    (client_id, filter, qos, no_local, retain_as_published, retain_handling, subscription_identifier)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    client, subscription.filter, Int(subscription.options.qos.rawValue), subscription.options.noLocal,
                    subscription.options.retainAsPublished, Int(subscription.options.retainHandling.rawValue),
                    subscription.subscriptionIdentifier.map { Int64($0) },
                ])
        case .removeSubscription(let client, let filter):
            try db.cachedStatement(sql: "DELETE FROM subscription WHERE client_id = ? AND filter = ?")
                .execute(arguments: [client, filter])
        case .insertMessage(let id, let message):
            let wallNow = StorageCoding.wallClockMilliseconds()
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO message (id, topic, payload, qos, retain, properties, expires_at_ms, publisher)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    id, message.topic, Data(StorageCoding.bytes(message.payload)), Int(message.qos.rawValue),
                    message.retain, StorageCoding.encode(message.properties).map { Data($0) },
                    message.expiresAt.map { StorageCoding.wallClock($0, engineNow: engineNow, wallNow: wallNow) },
                    message.publisherClientIdentifier,
                ])
        case .deleteMessage(let id):
            try db.cachedStatement(sql: "DELETE FROM message WHERE id = ?").execute(arguments: [id])
        case .saveDelivery(let client, let delivery, let messageID):
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO delivery
                    (client_id, sequence, message_id, qos, retain, subscription_identifiers, packet_id, state,
                     shared_subscription)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    client, Int64(bitPattern: delivery.sequence), messageID, Int(delivery.qos.rawValue), delivery.retain,
                    StorageCoding.encodeIdentifiers(delivery.subscriptionIdentifiers),
                    delivery.packetIdentifier.map { Int($0) }, Self.code(delivery.state), delivery.sharedSubscription,
                ])
        case .removeDelivery(let client, let sequence):
            try db.cachedStatement(sql: "DELETE FROM delivery WHERE client_id = ? AND sequence = ?")
                .execute(arguments: [client, Int64(bitPattern: sequence)])
        case .storeInbound(let client, let packetIdentifier):
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?, ?)")
                .execute(arguments: [client, Int(packetIdentifier)])
        case .releaseInbound(let client, let packetIdentifier):
            try db.cachedStatement(sql: "DELETE FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?")
                .execute(arguments: [client, Int(packetIdentifier)])
        case .setRetained(let message):
            let wallNow = StorageCoding.wallClockMilliseconds()
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at_ms, publisher)
                VALUES (?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    message.topic, Data(StorageCoding.bytes(message.payload)), Int(message.qos.rawValue),
                    StorageCoding.encode(message.properties).map { Data($0) },
                    message.expiresAt.map { StorageCoding.wallClock($0, engineNow: engineNow, wallNow: wallNow) },
                    message.publisherClientIdentifier,
                ])
        case .removeRetained(let topic):
            try db.cachedStatement(sql: "DELETE FROM retained WHERE topic = ?").execute(arguments: [topic])
        }
    }

    static func code(_ state: DeliveryState) -> Int {
        switch state {
        case .queued: 0
        case .publishSent: 1
        case .pubrecReceived: 2
        }
    }

    static func deliveryState(_ code: Int) throws -> DeliveryState {
        switch code {
        case 0: .queued
        case 1: .publishSent
        case 2: .pubrecReceived
        default: throw StorageError(.corrupt, "unknown delivery state \(code)")
        }
    }

    // MARK: - Loading

    struct RetainedLoad: Sendable {
        var messages: [Message] = []
        var sizes: [String: Int] = [:]
        var bytes = 0
    }

    private final class RetainedLoadBox: Sendable {
        let result = Mutex<Result<RetainedLoad, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    /// Reads sessions on this thread while two other threads read the halves of the retained messages on
    /// read-only connections (retained messages are the largest part of a start).
    private static func load(_ database: DatabaseQueue, into state: inout WriterState) throws -> BrokerStoreSnapshot {
        let path = database.path
        let boxes = [RetainedLoadBox(), RetainedLoadBox()]
        do {
            let maximum = try database.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(MAX(rowid), 0) FROM retained") } ?? 0
            let split = maximum / 2
            for (index, box) in boxes.enumerated() {
                let range = index == 0 ? (Int64.min, split) : (split, Int64.max)
                let thread = Thread {
                    let result = Result<RetainedLoad, any Error> {
                        var configuration = Configuration()
                        configuration.readonly = true
                        let reader = try DatabaseQueue(path: path, configuration: configuration)
                        defer { try? reader.close() }
                        return try reader.read { try Self.readRetained($0, after: range.0, upTo: range.1) }
                    }
                    box.result.withLock { $0 = result }
                    box.done.signal()
                }
                thread.name = "petrel-storage-load"
                thread.start()
            }
        } catch {
            throw Self.describe(error, path: database.path, opening: true)
        }
        do {
            var snapshot = try database.read { db in try Self.read(db, into: &state) }
            for box in boxes { box.done.wait() }
            var first = try boxes[0].result.withLock { $0! }.get()
            let second = try boxes[1].result.withLock { $0! }.get()
            first.messages.append(contentsOf: second.messages)
            first.sizes.merge(second.sizes) { $1 }
            snapshot.retained = first.messages
            state.retainedSizes = first.sizes
            state.retainedBytes = first.bytes + second.bytes
            return snapshot
        } catch let error as StorageError {
            for box in boxes { box.done.wait() }
            throw error
        } catch {
            for box in boxes { box.done.wait() }
            throw Self.describe(error, path: database.path, opening: true)
        }
    }

    private static func qos(_ value: Int) throws -> QoS {
        guard let qos = QoS(rawValue: UInt8(clamping: value)) else { throw StorageError(.corrupt, "invalid QoS \(value)") }
        return qos
    }

    private static func read(_ db: Database, into state: inout WriterState) throws -> BrokerStoreSnapshot {
        let engineNow = NIODeadline.now()
        let wallNow = StorageCoding.wallClockMilliseconds()
        let allocator = ByteBufferAllocator()
        func buffer(_ data: Data?) -> ByteBuffer {
            guard let data else { return allocator.buffer(capacity: 0) }
            var buffer = allocator.buffer(capacity: data.count)
            buffer.writeBytes(data)
            return buffer
        }

        var sessions: [String: StoredSessionState] = [:]
        let sessionRows = try Row.fetchCursor(db, sql: """
            SELECT client_id, protocol_version, expiry_interval, will_topic, will_payload, will_qos, will_retain,
                will_properties, disconnected_at_ms, owner, owner_known
            FROM session
            """)
        while let row = try sessionRows.next() {
            let client: String = row[0]
            guard let version = ProtocolVersion(rawValue: UInt8(clamping: row[1] as Int)) else {
                throw StorageError(.corrupt, "invalid protocol version for session \(client)")
            }
            var will: MQTTPacket.Will?
            if let topic: String = row[3] {
                will = MQTTPacket.Will(
                    topic: topic,
                    payload: try row.withUnsafeData(atIndex: 4) { buffer($0) },
                    qos: try qos(row[5] ?? 0),
                    retain: row[6] ?? false,
                    properties: try StorageCoding.decodeProperties((row[7] as Data?).map { [UInt8]($0) }, context: .will)
                )
            }
            let session = StoredSession(
                clientIdentifier: client,
                protocolVersion: version,
                expiryInterval: UInt32(clamping: row[2] as Int64),
                will: will,
                disconnectedAt: (row[8] as Int64?).map { StorageCoding.engineClock($0, engineNow: engineNow, wallNow: wallNow) },
                owner: (row[10] as Bool) ? .some(row[9] as String?) : nil
            )
            sessions[client] = StoredSessionState(session: session)
        }

        let subscriptionRows = try Row.fetchCursor(db, sql: """
            SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, subscription_identifier
            FROM subscription
            """)
        while let row = try subscriptionRows.next() {
            let client: String = row[0]
            guard sessions[client] != nil else { continue }
            let options = MQTTPacket.SubscriptionOptions(
                qos: try qos(row[2]),
                noLocal: row[3],
                retainAsPublished: row[4],
                retainHandling: MQTTPacket.RetainHandling(rawValue: UInt8(clamping: row[5] as Int)) ?? .sendOnSubscribe
            )
            let identifier: Int64? = row[6]
            sessions[client]!.subscriptions.append(
                StoredSubscription(filter: row[1], options: options, subscriptionIdentifier: identifier.map { UInt32(clamping: $0) })
            )
        }

        var messages: [Int64: Message] = [:]
        let messageRows = try Row.fetchCursor(db, sql: """
            SELECT id, topic, payload, qos, retain, properties, expires_at_ms, publisher FROM message
            """)
        while let row = try messageRows.next() {
            let id: Int64 = row[0]
            let expires: Int64? = row[6]
            messages[id] = Message(
                topic: row[1],
                payload: try row.withUnsafeData(atIndex: 2) { buffer($0) },
                qos: try qos(row[3]),
                retain: row[4],
                properties: try StorageCoding.decodeProperties((row[5] as Data?).map { [UInt8]($0) }, context: .publish),
                expiresAt: expires.map { StorageCoding.engineClock($0, engineNow: engineNow, wallNow: wallNow) },
                publisherClientIdentifier: row[7]
            )
            state.nextMessageID = max(state.nextMessageID, id + 1)
        }

        let deliveryRows = try Row.fetchCursor(db, sql: """
            SELECT client_id, sequence, message_id, qos, retain, subscription_identifiers, packet_id, state,
                shared_subscription
            FROM delivery ORDER BY client_id, sequence
            """)
        var orphans: [(String, UInt64)] = []
        while let row = try deliveryRows.next() {
            let client: String = row[0]
            let sequence = UInt64(bitPattern: row[1] as Int64)
            guard sessions[client] != nil, let message = messages[row[2] as Int64] else {
                orphans.append((client, sequence))
                continue
            }
            let packetIdentifier: Int? = row[6]
            let delivery = StoredDelivery(
                sequence: sequence,
                message: message,
                qos: try qos(row[3]),
                retain: row[4],
                subscriptionIdentifiers: StorageCoding.decodeIdentifiers(row[5]),
                packetIdentifier: packetIdentifier.map { UInt16(clamping: $0) },
                state: try deliveryState(row[7]),
                sharedSubscription: row[8]
            )
            sessions[client]!.deliveries.append(delivery)
            let key = ObjectIdentifier(message)
            if var entry = state.messages[key] {
                entry.references += 1
                state.messages[key] = entry
            } else {
                state.messages[key] = MessageEntry(id: row[2], references: 1, message: message)
            }
            state.deliveries[client, default: [:]][sequence] = key
        }
        // Rows nothing refers to any more (left by an interrupted removal) are dropped at the next commit.
        for (client, sequence) in orphans { Self.append(.removeDelivery(client, sequence), &state) }
        let referenced = Set(state.messages.values.map(\.id))
        for id in messages.keys where !referenced.contains(id) { Self.append(.deleteMessage(id), &state) }

        let inboundRows = try Row.fetchCursor(db, sql: "SELECT client_id, packet_id FROM inbound_qos2 ORDER BY client_id, packet_id")
        while let row = try inboundRows.next() {
            let client: String = row[0]
            guard sessions[client] != nil else { continue }
            sessions[client]!.inboundQoS2PacketIdentifiers.append(UInt16(clamping: row[1] as Int))
        }

        return BrokerStoreSnapshot(sessions: Array(sessions.values), retained: [])
    }

    private static func readRetained(_ db: Database, after lower: Int64, upTo upper: Int64) throws -> RetainedLoad {
        let engineNow = NIODeadline.now()
        let wallNow = StorageCoding.wallClockMilliseconds()
        let allocator = ByteBufferAllocator()
        func buffer(_ data: Data?) -> ByteBuffer {
            guard let data else { return allocator.buffer(capacity: 0) }
            var buffer = allocator.buffer(capacity: data.count)
            buffer.writeBytes(data)
            return buffer
        }
        var load = RetainedLoad()
        let retainedRows = try Row.fetchCursor(db, sql: """
            SELECT topic, payload, qos, properties, expires_at_ms, publisher FROM retained WHERE rowid > ? AND rowid <= ?
            """, arguments: [lower, upper])
        while let row = try retainedRows.next() {
            let expires: Int64? = row[4]
            let message = Message(
                topic: row[0],
                payload: try row.withUnsafeData(atIndex: 1) { buffer($0) },
                qos: try qos(row[2]),
                retain: true,
                properties: try StorageCoding.decodeProperties((row[3] as Data?).map { [UInt8]($0) }, context: .publish),
                expiresAt: expires.map { StorageCoding.engineClock($0, engineNow: engineNow, wallNow: wallNow) },
                publisherClientIdentifier: row[5]
            )
            load.messages.append(message)
            let size = message.payload.readableBytes + message.topic.utf8.count
            load.sizes[message.topic] = size
            load.bytes += size
        }
        return load
    }
}
