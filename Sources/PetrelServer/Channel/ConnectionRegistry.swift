import NIOCore
import Synchronization

/// The open connections, so that a graceful shutdown can say goodbye to each. Touched when a connection opens
/// or closes, never per message.
final class ConnectionRegistry: Sendable {
    private let connections = Mutex<[ObjectIdentifier: ConnectionWaker]>([:])

    func add(_ waker: ConnectionWaker) {
        connections.withLock { $0[ObjectIdentifier(waker)] = waker }
    }

    func remove(_ waker: ConnectionWaker) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(waker)) }
    }

    var count: Int { connections.withLock { $0.count } }

    func all() -> [ConnectionWaker] {
        connections.withLock { Array($0.values) }
    }
}
