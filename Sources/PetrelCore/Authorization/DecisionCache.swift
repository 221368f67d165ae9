import DequeModule
import NIOCore
import Synchronization

/// An external service's answers kept for a while, shared by every connection: it is asked once per client and
/// topic (or set of credentials) within `timeToLive`, not on every packet. Bounded: past `capacity` entries the
/// oldest answer is forgotten first, so a client that publishes to ever new topics cannot grow it without end.
public final class DecisionCache<Key: Hashable & Sendable, Decision: Sendable>: Sendable {
    private struct Entry {
        var decision: Decision
        var expires: NIODeadline
        /// Which insertion this is, so that an older position in `order` does not evict a newer answer.
        var sequence: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var order: Deque<(key: Key, sequence: UInt64)> = []
        var nextSequence: UInt64 = 0
    }

    public let timeToLive: TimeAmount
    public let capacity: Int
    private let state = Mutex(State())

    /// A `timeToLive` of zero or less (or a `capacity` below one) keeps nothing.
    public init(timeToLive: TimeAmount, capacity: Int) {
        self.timeToLive = timeToLive
        self.capacity = capacity
    }

    private var keepsNothing: Bool { self.timeToLive <= .zero || self.capacity < 1 }

    /// The answer for `key` while it is fresh; nil when there is none or it has expired.
    public func decision(for key: Key, now: NIODeadline) -> Decision? {
        guard !self.keepsNothing else { return nil }
        return self.state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            guard entry.expires > now else {
                state.entries[key] = nil
                return nil
            }
            return entry.decision
        }
    }

    public func store(_ decision: Decision, for key: Key, now: NIODeadline) {
        guard !self.keepsNothing else { return }
        self.state.withLock { state in
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.entries[key] = Entry(decision: decision, expires: now + self.timeToLive, sequence: sequence)
            state.order.append((key, sequence))
            // `order` holds one position per insertion; stale ones (a key stored again, or expired and
            // looked up) are dropped as they reach the front, and it is compacted when they pile up.
            while state.entries.count > self.capacity, let oldest = state.order.popFirst() {
                if state.entries[oldest.key]?.sequence == oldest.sequence {
                    state.entries[oldest.key] = nil
                }
            }
            if state.order.count > 2 * self.capacity {
                state.order = Deque(state.order.filter { state.entries[$0.key]?.sequence == $0.sequence })
            }
        }
    }

    public var count: Int { self.state.withLock { $0.entries.count } }
}
