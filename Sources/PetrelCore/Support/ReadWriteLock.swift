#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A value guarded by a `pthread_rwlock_t`: many readers at once, one writer alone.
///
/// Used for read-mostly shared structures (the subscription trie, the retained index) that every PUBLISH reads
/// from several event loops at once: readers never serialise behind each other, only behind a writer.
///
/// `@unchecked Sendable` is sound because `value` is only ever touched inside `withReadLock` (shared access,
/// the closure gets a borrowed copy and cannot mutate the stored value) or `withWriteLock` (exclusive access),
/// both of which hold the rwlock for the whole closure; the lock itself lives in stable heap memory allocated
/// in `init` and freed in `deinit`, when no other reference to the instance can exist. `Value: Sendable` makes
/// handing the value out to other threads inside the closures safe.
final class ReadWriteLocked<Value: Sendable>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var value: Value
    /// Bumped by every `withWriteLock`, while the lock is held: a reader that saw version `v` under the read lock
    /// and sees `v` again later knows that the value has not changed since (see `RouteCache`).
    private let writes = Atomic<UInt64>(0)

    init(_ value: Value) {
        self.value = value
        self.lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        self.lock.initialize(to: pthread_rwlock_t())
        let result = pthread_rwlock_init(self.lock, nil)
        precondition(result == 0, "pthread_rwlock_init failed: \(result)")
    }

    deinit {
        let result = pthread_rwlock_destroy(self.lock)
        precondition(result == 0, "pthread_rwlock_destroy failed: \(result)")
        self.lock.deinitialize(count: 1)
        self.lock.deallocate()
    }

    /// Runs `body` with shared access; other readers may run at the same time.
    func withReadLock<Result>(_ body: (borrowing Value) throws -> Result) rethrows -> Result {
        let result = pthread_rwlock_rdlock(self.lock)
        precondition(result == 0, "pthread_rwlock_rdlock failed: \(result)")
        defer { pthread_rwlock_unlock(self.lock) }
        return try body(self.value)
    }

    /// Runs `body` with exclusive access.
    func withWriteLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        let result = pthread_rwlock_wrlock(self.lock)
        precondition(result == 0, "pthread_rwlock_wrlock failed: \(result)")
        defer {
            self.writes.wrappingAdd(1, ordering: .releasing)
            pthread_rwlock_unlock(self.lock)
        }
        return try body(&self.value)
    }

    /// The number of `withWriteLock` calls so far; read under the read lock it names the state the reader sees.
    var version: UInt64 { self.writes.load(ordering: .acquiring) }
}
