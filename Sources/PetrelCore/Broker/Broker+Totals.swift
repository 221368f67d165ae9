/// What the broker holds right now, summed over its sessions and subscriptions: for metrics and `$SYS`, which
/// read it every few seconds. Counting walks every session (each locked on its own, never two at once) rather
/// than keeping counters that every queued message would have to update.
public struct BrokerTotals: Sendable, Hashable {
    /// Sessions with a connection attached.
    public var sessionsOnline = 0
    /// Sessions kept for a client that is not connected (persistent sessions).
    public var sessionsOffline = 0
    /// Subscriptions of every session, shared ones included.
    public var subscriptions = 0
    /// Shared subscription groups (`$share/{name}/{filter}` with at least one member).
    public var sharedSubscriptionGroups = 0
    /// Messages waiting in session queues (not sent yet).
    public var queuedMessages = 0
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    public var inflightMessages = 0
    /// The longest queue of one session.
    public var longestQueue = 0

    public init() {}
}

extension Broker {
    /// Sums the sessions' state; costs one lock per session and one read of the shared trie.
    public func totals() -> BrokerTotals {
        let sessions = self.registry.withLock { Array($0.sessions.values) }
        var totals = BrokerTotals()
        for session in sessions {
            session.state.withLock { state in
                guard !state.ended else { return }
                if state.owner != nil {
                    totals.sessionsOnline += 1
                } else {
                    totals.sessionsOffline += 1
                }
                totals.subscriptions += state.subscriptions.count
                totals.queuedMessages += state.queue.count
                totals.inflightMessages += state.inflight.count
                totals.longestQueue = max(totals.longestQueue, state.queue.count)
            }
        }
        totals.sharedSubscriptionGroups = self.sharedTrie.withReadLock { $0.count }
        return totals
    }
}
