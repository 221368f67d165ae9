import Logging
import NIOCore
import Synchronization

/// Bounds the open connections, in all and per client address, as Mosquitto's `max_connections` does: a
/// connection beyond a bound is closed as soon as it is accepted, before it costs more than its socket. The
/// first refusal of a burst is logged as a warning, the others at debug level; all are counted.
final class ConnectionLimits: Sendable {
    /// 0 sets no bound. Changeable while running (a reloaded configuration): new connections see the new bound.
    private let bounds: Mutex<(connections: Int, perAddress: Int)>
    var maximumConnections: Int { bounds.withLock { $0.connections } }
    var maximumPerAddress: Int { bounds.withLock { $0.perAddress } }
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var total = 0
        var perAddress: [String: Int] = [:]
        var refusing = false
        var refused = 0
    }

    init(maximumConnections: Int, maximumPerAddress: Int, logger: Logger) {
        self.bounds = Mutex((maximumConnections, maximumPerAddress))
        self.logger = logger
    }

    func update(maximumConnections: Int, maximumPerAddress: Int) {
        bounds.withLock { $0 = (maximumConnections, maximumPerAddress) }
    }

    /// Connections refused so far.
    var refused: Int { self.state.withLock { $0.refused } }

    /// A slot for a new connection from `address`, or nil when a bound is reached (close the connection).
    func admit(_ address: SocketAddress?) -> ConnectionSlot? {
        let host = address?.ipAddress ?? "unknown"
        let (maximumConnections, maximumPerAddress) = bounds.withLock { $0 }
        let outcome: (admitted: Bool, reason: String?, first: Bool) = self.state.withLock { state in
            let fromAddress = state.perAddress[host, default: 0]
            var reason: String?
            if maximumConnections > 0, state.total >= maximumConnections {
                reason = "\(maximumConnections) connections open"
            } else if maximumPerAddress > 0, fromAddress >= maximumPerAddress {
                reason = "\(maximumPerAddress) connections open from this address"
            }
            guard let reason else {
                state.total += 1
                state.perAddress[host] = fromAddress + 1
                state.refusing = false
                return (true, nil, false)
            }
            state.refused += 1
            let first = !state.refusing
            state.refusing = true
            return (false, reason, first)
        }
        guard outcome.admitted else {
            let metadata: Logger.Metadata = ["net.peer": "\(host)", "petrel.reason": "\(outcome.reason ?? "")"]
            if outcome.first {
                logger.warning("Connection refused: limit reached", metadata: metadata)
            } else {
                logger.debug("Connection refused: limit reached", metadata: metadata)
            }
            return nil
        }
        return ConnectionSlot(limits: self, host: host)
    }

    fileprivate func release(_ host: String) {
        self.state.withLock { state in
            state.total -= 1
            if let count = state.perAddress[host], count > 1 {
                state.perAddress[host] = count - 1
            } else {
                state.perAddress[host] = nil
            }
        }
    }
}

/// One admitted connection's place within the limits, given back once (`release`, or when it goes away).
final class ConnectionSlot: Sendable {
    private let limits: ConnectionLimits
    private let host: String
    private let released = Atomic<Bool>(false)

    fileprivate init(limits: ConnectionLimits, host: String) {
        self.limits = limits
        self.host = host
    }

    func release() {
        guard !self.released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.limits.release(self.host)
    }

    deinit { self.release() }
}

/// Fails the set-up of a connection beyond the limits, which closes it.
struct ConnectionLimitReached: Error {}
