import NIOCore

/// One subscription of one session, as operators see it.
public struct SubscriptionSnapshot: Sendable, Hashable {
    public var clientIdentifier: String
    /// The filter as subscribed, `$share/{name}/` prefix included for a shared subscription.
    public var filter: String
    /// The options as granted: `options.qos` is the granted QoS.
    public var options: MQTTPacket.SubscriptionOptions
    /// The v5 Subscription Identifier, when the SUBSCRIBE carried one.
    public var subscriptionIdentifier: UInt32?
}

/// A copy of one session's state, taken under its lock: what the admin API shows of a client or a session.
public struct SessionSnapshot: Sendable {
    public var clientIdentifier: String
    /// The user its connections authenticated as; nil when anonymous or not known yet (a session restored from
    /// an older store whose client has not connected since).
    public var username: String?
    public var protocolVersion: ProtocolVersion
    /// Seconds the session outlives its connection; 0 ends it with the connection; `UInt32.max` never expires.
    public var expiryInterval: UInt32
    /// The attached connection; nil when no client is connected.
    public var connection: ConnectionDescription?
    /// Seconds until a disconnected session expires; nil while connected or when it never expires.
    public var expiresInSeconds: Int64?
    /// Sorted by filter.
    public var subscriptions: [SubscriptionSnapshot]
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    public var inflightMessages: Int
    /// The most messages in flight at once (the client's Receive Maximum and `maximumInflightMessages`).
    public var inflightLimit: Int
    /// Messages waiting in the queue, and their bytes as charged against the queue limits.
    public var queuedMessages: Int
    public var queuedBytes: Int
    /// Whether a will waits to be published (with its delay, or when the connection ends abnormally).
    public var hasWill: Bool

    public var isConnected: Bool { self.connection != nil }
}

/// A subscribed filter and how many sessions hold it.
public struct TopicSubscriberCount: Sendable, Hashable {
    public var filter: String
    public var subscribers: Int
}

/// One page of a longer list, and the length of the whole list (after filtering).
public struct QueryPage<Item: Sendable>: Sendable {
    public var items: [Item]
    public var total: Int

    /// `offset` items skipped, at most `limit` kept; both must be 0 or more.
    public init(of all: [Item], offset: Int, limit: Int) {
        precondition(offset >= 0 && limit >= 0, "offset and limit are checked by the caller")
        self.total = all.count
        let start = min(offset, all.count)
        let end = start + min(limit, all.count - start)
        self.items = Array(all[start..<end])
    }
}

/// Read-only queries for operators (the admin API). Each takes the registry lock once to copy the session list,
/// then each session's lock on its own, never two at once, as `totals()` does: a query never holds up routing
/// for longer than one session's copy.
extension Broker {
    /// Every session, connected or not, sorted by client identifier. `matching` keeps those whose client
    /// identifier, user name or (connected) address contains it; `connectedOnly` keeps connected ones.
    public func sessionSnapshots(matching: String? = nil, connectedOnly: Bool = false, now: NIODeadline)
        -> [SessionSnapshot]
    {
        let sessions = self.registry.withLock { Array($0.sessions.values) }
        var snapshots: [SessionSnapshot] = []
        snapshots.reserveCapacity(sessions.count)
        for session in sessions {
            guard let snapshot = session.snapshot(now: now) else { continue }
            if connectedOnly && !snapshot.isConnected { continue }
            if let matching, !matching.isEmpty, !snapshot.matches(matching) { continue }
            snapshots.append(snapshot)
        }
        snapshots.sort { $0.clientIdentifier < $1.clientIdentifier }
        return snapshots
    }

    /// The session of `clientIdentifier`, or nil when there is none.
    public func sessionSnapshot(clientIdentifier: String, now: NIODeadline) -> SessionSnapshot? {
        let session = self.registry.withLock { $0.sessions[clientIdentifier] }
        return session?.snapshot(now: now)
    }

    /// Every subscription of every session, sorted by client identifier then filter. `matching` keeps those whose
    /// filter or client identifier contains it.
    public func subscriptionSnapshots(matching: String? = nil) -> [SubscriptionSnapshot] {
        let sessions = self.registry.withLock { Array($0.sessions.values) }
        var subscriptions: [SubscriptionSnapshot] = []
        for session in sessions {
            for subscription in session.subscriptionSnapshots() {
                if let matching, !matching.isEmpty,
                    !subscription.filter.contains(matching), !subscription.clientIdentifier.contains(matching)
                {
                    continue
                }
                subscriptions.append(subscription)
            }
        }
        subscriptions.sort { ($0.clientIdentifier, $0.filter) < ($1.clientIdentifier, $1.filter) }
        return subscriptions
    }

    /// Each subscribed filter (a shared one with its `$share/{name}/` prefix) with the number of sessions holding
    /// it, sorted by filter. `matching` keeps filters containing it.
    public func subscribedTopics(matching: String? = nil) -> [TopicSubscriberCount] {
        var counts: [String: Int] = [:]
        for subscription in self.subscriptionSnapshots() {
            if let matching, !matching.isEmpty, !subscription.filter.contains(matching) { continue }
            counts[subscription.filter, default: 0] += 1
        }
        return counts.map { TopicSubscriberCount(filter: $0.key, subscribers: $0.value) }.sorted {
            $0.filter < $1.filter
        }
    }

    /// Retained messages not expired, sorted by topic: all of them (`$SYS` ones too) without `filter`, else those
    /// an MQTT subscription to `filter` would receive (so `#` leaves out `$` topics [MQTT-4.7.2-1]). The caller
    /// checks that `filter` is a valid topic filter.
    public func retainedMessageList(filter: String?, now: NIODeadline) -> [Message] {
        var messages: [Message] = []
        self.retainedIndex.withReadLock { index in
            if let filter {
                index.forEachMatch(filter: filter) { _, message in
                    if !message.isExpired(at: now) { messages.append(message) }
                }
            } else {
                index.forEach { _, message in
                    if !message.isExpired(at: now) { messages.append(message) }
                }
            }
        }
        messages.sort { $0.topic < $1.topic }
        return messages
    }

    /// The retained message of `topic`, unless there is none or it has expired.
    public func retainedMessage(topic: String, now: NIODeadline) -> Message? {
        guard let message = self.retainedIndex.withReadLock({ $0.message(topic: topic) }) else { return nil }
        return message.isExpired(at: now) ? nil : message
    }
}

// MARK: - Session copies

extension Session {
    /// A copy of the state operators see; nil once the session has ended.
    func snapshot(now: NIODeadline) -> SessionSnapshot? {
        self.state.withLock { state -> SessionSnapshot? in
            guard !state.ended else { return nil }
            var expiresIn: Int64?
            if state.owner == nil, state.expiryInterval != .max, let disconnectedAt = state.disconnectedAt {
                let deadline = disconnectedAt + .seconds(Int64(state.expiryInterval))
                expiresIn = max(0, (deadline - now).nanoseconds / 1_000_000_000)
            }
            return SessionSnapshot(
                clientIdentifier: self.clientIdentifier,
                username: state.username,
                protocolVersion: state.protocolVersion,
                expiryInterval: state.expiryInterval,
                connection: state.owner?.connection,
                expiresInSeconds: expiresIn,
                subscriptions: Self.subscriptionSnapshots(of: self.clientIdentifier, state),
                inflightMessages: state.inflight.count,
                inflightLimit: state.inflightLimit,
                queuedMessages: state.queue.count,
                queuedBytes: state.queuedBytes,
                hasWill: state.willStorage != nil
            )
        }
    }

    func subscriptionSnapshots() -> [SubscriptionSnapshot] {
        self.state.withLock { state in
            state.ended ? [] : Self.subscriptionSnapshots(of: self.clientIdentifier, state)
        }
    }

    private static func subscriptionSnapshots(of clientIdentifier: String, _ state: borrowing SessionState)
        -> [SubscriptionSnapshot]
    {
        state.subscriptions.values.map {
            SubscriptionSnapshot(
                clientIdentifier: clientIdentifier,
                filter: $0.filter,
                options: $0.options,
                subscriptionIdentifier: $0.subscriptionIdentifier
            )
        }.sorted { $0.filter < $1.filter }
    }
}

extension SessionSnapshot {
    /// Whether the client identifier, the user name or the connection's address contains `text`.
    func matches(_ text: String) -> Bool {
        self.clientIdentifier.contains(text) || (self.username?.contains(text) ?? false)
            || (self.connection?.remoteAddress.contains(text) ?? false)
    }
}
