import DequeModule
import NIOCore
import Synchronization

/// A QoS 1/2 delivery that has been sent and not yet completed.
struct InflightDelivery: Sendable {
    var sequence: UInt64
    var message: Message
    var qos: QoS
    var retain: Bool
    var subscriptionIdentifiers: [UInt32]
    var packetIdentifier: UInt16
    /// `.publishSent` or `.pubrecReceived`.
    var state: DeliveryState
    /// Set when a shared subscription chose this session (spec 4.8.2).
    var sharedOrigin: SharedOrigin? = nil
    /// Unacknowledged when the session was resumed, and not resent yet because the client's Receive Maximum
    /// left no room [MQTT-3.3.4-9]; `drain` resends it (DUP) when a slot frees.
    var awaitingResend = false
}

/// A delivery waiting in the session queue.
struct QueuedDelivery: Sendable {
    var sequence: UInt64
    var message: Message
    var qos: QoS
    var retain: Bool
    var subscriptionIdentifiers: [UInt32]
    /// Whether the store was told about it (QoS 1/2 of a persistent session, or QoS 0 queued offline).
    var stored: Bool
    /// Set when a shared subscription chose this session (spec 4.8.2).
    var sharedOrigin: SharedOrigin? = nil
}

/// The connection a session is attached to: a token that only that connection knows, and its waker.
struct SessionOwner: Sendable {
    var token: UInt64
    var waker: any DeliveryWaker
    /// What operators see of the connection (the admin API); nil for connections attached without one.
    var connection: ConnectionDescription?
}

/// What a connection told the broker about itself at CONNECT, kept for operators' queries. A class, made once
/// per connection, so that a session carries one reference rather than the strings and fields inline.
public final class ConnectionDescription: Sendable {
    /// The peer's address and port, as the server wrote it.
    public let remoteAddress: String
    /// The listener's transport (`mqtt`, `mqtts`, `ws`, `wss`).
    public let listener: String
    /// The keep alive in force, in seconds (the client's, or Server Keep Alive); 0 is off.
    public let keepAlive: UInt16
    /// Clean Start (v5) or Clean Session (3.1.1) as the CONNECT set it.
    public let cleanStart: Bool

    public init(remoteAddress: String, listener: String, keepAlive: UInt16, cleanStart: Bool) {
        self.remoteAddress = remoteAddress
        self.listener = listener
        self.keepAlive = keepAlive
        self.cleanStart = cleanStart
    }
}

/// Everything a session holds, guarded by the session's mutex.
struct SessionState: Sendable {
    var protocolVersion: ProtocolVersion
    /// Seconds the session outlives its connection; 0 ends it with the connection; `UInt32.max` never expires.
    var expiryInterval: UInt32
    var subscriptions: [String: StoredSubscription] = [:]
    var queue = Deque<QueuedDelivery>()
    var queuedBytes = 0
    /// In send order [MQTT-4.4.0-1].
    var inflight = Deque<InflightDelivery>()
    var inflightIdentifiers = Set<UInt16>()
    /// min(maximumInflightMessages, client Receive Maximum) of the attached connection.
    var inflightLimit: Int
    var nextPacketIdentifier: UInt16 = 1
    var nextSequence: UInt64 = 1
    /// Inbound QoS 2 packet identifiers awaiting PUBREL.
    var inboundQoS2 = Set<UInt16>()
    var owner: SessionOwner?
    /// The owner's waker was handed out and `deliverPending` has not run since.
    var wakePending = false
    /// Some inflight entries may wait to be sent again (`awaitingResend`, set when a resumed session has more
    /// unacknowledged messages than the client's Receive Maximum): `drain` looks for them only then.
    var mayAwaitResend = false
    /// Removed from the broker (clean start replaced it, or it expired): accepts nothing more.
    var ended = false
    /// The token of the connection an operator asked to disconnect: it sends DISCONNECT 0x98 and closes when it
    /// next drains, whether it still owns the session or the session was removed meanwhile.
    var disconnectRequestedToken: UInt64?
    var disconnectedAt: NIODeadline?
    /// The user the session's connections authenticated as (nil: anonymous); not known for a session stored
    /// before the store kept it, until its client connects again.
    var username: String?
    var usernameKnown = false
    /// What the client of the session may receive, as of its last connection; nil without access rules, and
    /// for a session restored from the store until its client connects (its queue is checked then).
    var access: ClientAccess?
    /// A queue-full drop was logged and the queue has not moved since.
    var droppingBurst = false
    /// The will of the attached (or last) connection, mirrored to the store. Out of line: most clients have
    /// none, and an idle session should not carry its size.
    var will: MQTTPacket.Will? {
        get { self.willStorage?.value }
        set { self.willStorage = newValue.map(OutOfLine.init) }
    }
    /// The storage of `will` (internal, not private, so that the memberwise initializer stays internal).
    var willStorage: OutOfLine<MQTTPacket.Will>?

    var isPersistent: Bool { self.expiryInterval > 0 }

    /// The next packet identifier not in use by an inflight delivery [MQTT-2.2.1-3]. The caller guarantees
    /// `inflight.count < 65535`.
    mutating func allocatePacketIdentifier() -> UInt16 {
        while true {
            let candidate = self.nextPacketIdentifier
            self.nextPacketIdentifier = candidate == .max ? 1 : candidate + 1
            if !self.inflightIdentifiers.contains(candidate) {
                return candidate
            }
        }
    }
}

/// The state of one client's session, shared by the broker (routing into it from any event loop) and the
/// connection attached to it. Every access goes through its own mutex; no global lock is taken per message.
final class Session: Sendable {

    /// Whether the session outlives its connection (3.1.1 Clean Session 0, v5 Session Expiry Interval > 0).
    var isPersistent: Bool { self.state.withLock { $0.isPersistent } }
    let clientIdentifier: String
    let state: Mutex<SessionState>
    private let store: any BrokerStore
    private let counters: BrokerCounters

    init(
        clientIdentifier: String,
        state: SessionState,
        store: any BrokerStore,
        counters: BrokerCounters
    ) {
        self.clientIdentifier = clientIdentifier
        self.state = Mutex(state)
        self.store = store
        self.counters = counters
    }

    // MARK: - Persistence helpers (called with the lock held)

    private func record(_ state: borrowing SessionState) -> StoredSession {
        StoredSession(
            clientIdentifier: self.clientIdentifier,
            protocolVersion: state.protocolVersion,
            expiryInterval: state.expiryInterval,
            will: state.will,
            disconnectedAt: state.disconnectedAt,
            owner: state.usernameKnown ? .some(state.username) : nil
        )
    }

    /// Writes the whole session to the store (it just became persistent).
    private func persistAll(_ state: inout SessionState) {
        self.store.sessionSaved(self.record(state))
        for subscription in state.subscriptions.values {
            self.store.subscriptionSaved(clientIdentifier: self.clientIdentifier, subscription)
        }
        for delivery in state.inflight {
            self.store.deliverySaved(clientIdentifier: self.clientIdentifier, Self.stored(delivery))
        }
        for index in state.queue.indices where state.queue[index].qos != .atMostOnce {
            state.queue[index].stored = true
            self.store.deliverySaved(clientIdentifier: self.clientIdentifier, Self.stored(state.queue[index]))
        }
        for identifier in state.inboundQoS2 {
            self.store.inboundQoS2Stored(clientIdentifier: self.clientIdentifier, packetIdentifier: identifier)
        }
    }

    private static func stored(_ delivery: InflightDelivery) -> StoredDelivery {
        StoredDelivery(
            sequence: delivery.sequence,
            message: delivery.message,
            qos: delivery.qos,
            retain: delivery.retain,
            subscriptionIdentifiers: delivery.subscriptionIdentifiers,
            packetIdentifier: delivery.packetIdentifier,
            state: delivery.state,
            sharedSubscription: delivery.sharedOrigin?.subscription
        )
    }

    private static func stored(_ delivery: QueuedDelivery) -> StoredDelivery {
        StoredDelivery(
            sequence: delivery.sequence,
            message: delivery.message,
            qos: delivery.qos,
            retain: delivery.retain,
            subscriptionIdentifiers: delivery.subscriptionIdentifiers,
            packetIdentifier: nil,
            state: .queued,
            sharedSubscription: delivery.sharedOrigin?.subscription
        )
    }

    // MARK: - Ownership

    /// Attaches a connection (CONNECT continuing or creating this session). Returns the previous owner, whose
    /// connection must now close itself (session takeover). `will` is the connection's own copy, shared.
    func attach(
        token: UInt64,
        waker: any DeliveryWaker,
        protocolVersion: ProtocolVersion,
        expiryInterval: UInt32,
        inflightLimit: Int,
        will: OutOfLine<MQTTPacket.Will>?,
        access: ClientAccess? = nil,
        username: String? = nil,
        connection: ConnectionDescription? = nil
    ) -> SessionOwner? {
        self.state.withLock { state in
            state.access = access
            state.username = username
            state.usernameKnown = true
            let previous = state.owner
            let wasPersistent = state.isPersistent
            state.owner = SessionOwner(token: token, waker: waker, connection: connection)
            state.wakePending = false
            state.disconnectedAt = nil
            state.protocolVersion = protocolVersion
            state.expiryInterval = expiryInterval
            state.inflightLimit = max(1, min(inflightLimit, Int(UInt16.max)))
            state.willStorage = will
            self.storePersistenceChange(&state, wasPersistent: wasPersistent)
            return previous
        }
    }

    enum DetachOutcome {
        /// Detached; the session lives on for `expiryInterval` seconds (0: it ends now).
        case detached(expiryInterval: UInt32)
        /// Another connection took the session over, or it was replaced (`sessionEnded`).
        case notOwner(sessionEnded: Bool)
    }

    /// Detaches the connection holding `token`, keeping `will` (the will still pending, if any) in the record.
    func detach(token: UInt64, now: NIODeadline, will: MQTTPacket.Will?) -> DetachOutcome {
        self.state.withLock { state in
            guard state.owner?.token == token else { return .notOwner(sessionEnded: state.ended) }
            state.owner = nil
            state.wakePending = false
            state.disconnectedAt = now
            state.will = will
            // The disconnect time is stored so that a restart does not restart the expiry interval.
            if state.isPersistent { self.store.sessionSaved(self.record(state)) }
            return .detached(expiryInterval: state.expiryInterval)
        }
    }

    struct EndResult {
        var owner: SessionOwner?
        var filters: [String]
        var wasPersistent: Bool
        /// Shared-subscription messages not yet received by the client: queued, or sent and not acknowledged
        /// (a QoS 2 message whose PUBREC arrived is the client's already).
        var sharedOrphans: [SharedOrphan] = []
    }

    /// Marks the session ended (removed from the broker) and returns what the broker must clean up. With
    /// `onlyIfDetached`, a session a connection has (re)attached to is left alone and nil is returned.
    func end(onlyIfDetached: Bool) -> EndResult? {
        self.state.withLock { state -> EndResult? in
            if state.ended { return nil }
            if onlyIfDetached && state.owner != nil { return nil }
            var result = EndResult(
                owner: state.owner,
                filters: Array(state.subscriptions.keys),
                wasPersistent: state.isPersistent
            )
            for entry in state.inflight where entry.state == .publishSent {
                if let origin = entry.sharedOrigin {
                    result.sharedOrphans.append(SharedOrphan(message: entry.message, origin: origin, session: self))
                }
            }
            for entry in state.queue {
                if let origin = entry.sharedOrigin {
                    result.sharedOrphans.append(SharedOrphan(message: entry.message, origin: origin, session: self))
                }
            }
            state.ended = true
            state.owner = nil
            state.wakePending = false
            state.queue.removeAll()
            self.counters.releaseQueuedBytes(state.queuedBytes)
            state.queuedBytes = 0
            return result
        }
    }

    /// Asks the attached connection to disconnect: returns its waker (handed out even when a wake is pending, as
    /// this is rare and the drain it causes is what closes the connection), or nil when no connection is attached.
    func requestDisconnect() -> (any DeliveryWaker)? {
        self.state.withLock { state in
            guard let owner = state.owner, !state.ended else { return nil }
            state.disconnectRequestedToken = owner.token
            state.wakePending = true
            return owner.waker
        }
    }

    /// Whether an operator asked the connection holding `token` to disconnect.
    func isDisconnectRequested(token: UInt64) -> Bool {
        self.state.withLock { $0.disconnectRequestedToken == token }
    }

    /// Clears the stored will (it was published or cancelled).
    func clearWill() {
        self.state.withLock { state in
            guard state.will != nil else { return }
            state.will = nil
            if state.isPersistent && !state.ended {
                self.store.sessionSaved(self.record(state))
            }
        }
    }

    /// Changes the expiry interval (v5 DISCONNECT). Returns false when `token` no longer owns the session.
    func setExpiryInterval(_ interval: UInt32, token: UInt64) -> Bool {
        self.state.withLock { state in
            guard state.owner?.token == token else { return false }
            let wasPersistent = state.isPersistent
            state.expiryInterval = interval
            self.storePersistenceChange(&state, wasPersistent: wasPersistent)
            return true
        }
    }

    /// Keeps the store in step after the expiry interval changed: a session that became persistent is written
    /// whole, one that stays persistent has its record updated, one that no longer is leaves the store. Only
    /// persistent sessions are stored. Called with the session's lock held.
    private func storePersistenceChange(_ state: inout SessionState, wasPersistent: Bool) {
        if state.isPersistent {
            if wasPersistent {
                self.store.sessionSaved(self.record(state))
            } else {
                self.persistAll(&state)
            }
        } else if wasPersistent {
            self.store.sessionRemoved(clientIdentifier: self.clientIdentifier)
        }
    }

    /// When a detached session expires; nil while attached or when it never expires.
    func expiryDeadline() -> NIODeadline? {
        self.state.withLock { state in
            guard state.owner == nil, !state.ended, let disconnectedAt = state.disconnectedAt else { return nil }
            guard state.expiryInterval != .max else { return nil }
            return disconnectedAt + .seconds(Int64(state.expiryInterval))
        }
    }

    // MARK: - Subscriptions

    /// Adds or replaces a subscription. Returns whether one existed for the filter, or nil when `token` does not
    /// own the session.
    func setSubscription(_ subscription: StoredSubscription, token: UInt64) -> Bool? {
        self.state.withLock { state in
            guard state.owner?.token == token else { return nil }
            let existed = state.subscriptions.updateValue(subscription, forKey: subscription.filter) != nil
            if state.isPersistent {
                self.store.subscriptionSaved(clientIdentifier: self.clientIdentifier, subscription)
            }
            return existed
        }
    }

    /// Whether the session is known to belong to another user than `username`.
    func belongsToAnotherUser(than username: String?) -> Bool {
        self.state.withLock { state in state.usernameKnown && !state.ended && state.username != username }
    }

    /// Whether one more subscription for `filter` stays within `limit` (a filter already held is replaced, so it
    /// always does).
    func hasRoomForSubscription(_ filter: String, limit: Int) -> Bool {
        self.state.withLock { state in
            state.subscriptions.count < limit || state.subscriptions[filter] != nil
        }
    }

    /// Removes a subscription. Returns whether it existed, or nil when `token` does not own the session.
    func removeSubscription(filter: String, token: UInt64) -> Bool? {
        self.state.withLock { state in
            guard state.owner?.token == token else { return nil }
            let existed = state.subscriptions.removeValue(forKey: filter) != nil
            if existed && state.isPersistent {
                self.store.subscriptionRemoved(clientIdentifier: self.clientIdentifier, filter: filter)
            }
            return existed
        }
    }

    // MARK: - Outbound queue

    enum EnqueueOutcome {
        /// Queued; `wake` is the owner's waker when it was not already pending.
        case queued(wake: (any DeliveryWaker)?)
        /// The queue is full, or all queues together hold `maximumQueuedBytesTotal` (`overBudget`): the new
        /// message was dropped. `firstInBurst` asks for one warning log.
        case dropped(firstInBurst: Bool, overBudget: Bool)
        /// Not for this session (ended, or QoS 0 while offline).
        case discarded
    }

    /// Queues one delivery. A full queue drops the NEW message (count and bytes bounded).
    func enqueue(
        _ message: Message,
        qos: QoS,
        retain: Bool,
        subscriptionIdentifiers: [UInt32],
        configuration: BrokerConfiguration,
        limits: LiveLimits,
        requireOnline: Bool = false,
        sharedOrigin: SharedOrigin? = nil
    ) -> EnqueueOutcome {
        self.state.withLock { state in
            if state.ended { return .discarded }
            let online = state.owner != nil
            if requireOnline && !online { return .discarded }
            if !online && qos == .atMostOnce && !configuration.queueQoS0ForOfflineSessions {
                return .discarded
            }
            if state.access?.allows(.receive, message.topic) == false {
                // Every delivery is checked, retained messages and wills included.
                self.counters.deliveriesDenied.wrappingAdd(1, ordering: .relaxed)
                return .discarded
            }
            let size = message.accountedSize
            if state.queue.count >= limits.maximumQueuedMessages
                || state.queuedBytes + size > limits.maximumQueuedBytes
            {
                self.counters.messagesDroppedQueueFull.wrappingAdd(1, ordering: .relaxed)
                let first = !state.droppingBurst
                state.droppingBurst = true
                return .dropped(firstInBurst: first, overBudget: false)
            }
            if self.counters.queuedBytes.load(ordering: .relaxed) + size > configuration.maximumQueuedBytesTotal {
                self.counters.messagesDroppedMemoryBudget.wrappingAdd(1, ordering: .relaxed)
                // One warning per burst for the whole broker, not one per session.
                let first = !self.counters.overBudget.exchange(true, ordering: .relaxed)
                return .dropped(firstInBurst: first, overBudget: true)
            }
            let sequence = state.nextSequence
            state.nextSequence += 1
            let stored = state.isPersistent && (qos != .atMostOnce || !online)
            let delivery = QueuedDelivery(
                sequence: sequence,
                message: message,
                qos: qos,
                retain: retain,
                subscriptionIdentifiers: subscriptionIdentifiers,
                stored: stored,
                sharedOrigin: sharedOrigin
            )
            state.queue.append(delivery)
            state.queuedBytes += size
            self.counters.queuedBytes.wrappingAdd(size, ordering: .relaxed)
            if stored {
                self.store.deliverySaved(clientIdentifier: self.clientIdentifier, Self.stored(delivery))
            }
            if let owner = state.owner, !state.wakePending {
                state.wakePending = true
                return .queued(wake: owner.waker)
            }
            return .queued(wake: nil)
        }
    }

    enum DrainOutcome {
        /// PUBLISH packets to write, in order; `acknowledged` when one of them is QoS 1 or 2.
        case delivered([OutboundPacket], acknowledged: Bool)
        /// The connection no longer owns the session: taken over, or replaced (`sessionEnded`).
        case notOwner(sessionEnded: Bool)
        /// An operator asked for this connection to be disconnected (`requestDisconnect`).
        case disconnectRequested
    }

    /// Moves queued deliveries out: QoS 0 ones directly, QoS 1/2 ones into the inflight window while it has
    /// room, in queue order. Expired messages are dropped [MQTT-3.3.2-5].
    func drain(token: UInt64, now: NIODeadline) -> DrainOutcome {
        self.state.withLock { state in
            if state.disconnectRequestedToken == token { return .disconnectRequested }
            guard state.owner?.token == token else { return .notOwner(sessionEnded: state.ended) }
            state.wakePending = false
            var out: [OutboundPacket] = []
            var expired = 0
            var moved = false
            var acknowledged = false
            // First the unacknowledged messages of a resumed session that did not fit the window then.
            if state.mayAwaitResend {
                var sent = state.inflight.count { !$0.awaitingResend }
                for index in state.inflight.indices where state.inflight[index].awaitingResend && sent < state.inflightLimit {
                    state.inflight[index].awaitingResend = false
                    sent += 1
                    acknowledged = true
                    let entry = state.inflight[index]
                    out.append(.publish(
                        OutboundPublish(
                            message: entry.message,
                            qos: entry.qos,
                            retain: entry.retain,
                            dup: true,
                            packetIdentifier: entry.packetIdentifier,
                            subscriptionIdentifiers: entry.subscriptionIdentifiers,
                            messageExpiryInterval: entry.message.remainingExpiryInterval(at: now)
                        )
                    ))
                }
                state.mayAwaitResend = sent < state.inflight.count
            }
            while let head = state.queue.first {
                if head.qos != .atMostOnce && state.inflight.count >= state.inflightLimit {
                    break
                }
                state.queue.removeFirst()
                moved = true
                state.queuedBytes -= head.message.accountedSize
                self.counters.releaseQueuedBytes(head.message.accountedSize)
                if head.message.isExpired(at: now) {
                    expired += 1
                    if head.stored {
                        self.store.deliveryRemoved(clientIdentifier: self.clientIdentifier, sequence: head.sequence)
                    }
                    continue
                }
                if state.access?.allows(.receive, head.message.topic) == false {
                    // Queued before the rules changed, or before the restart that lost who the client was.
                    self.counters.deliveriesDenied.wrappingAdd(1, ordering: .relaxed)
                    if head.stored {
                        self.store.deliveryRemoved(clientIdentifier: self.clientIdentifier, sequence: head.sequence)
                    }
                    continue
                }
                let remaining = head.message.remainingExpiryInterval(at: now)
                if head.qos == .atMostOnce {
                    if head.stored {
                        self.store.deliveryRemoved(clientIdentifier: self.clientIdentifier, sequence: head.sequence)
                    }
                    out.append(.publish(
                        OutboundPublish(
                            message: head.message,
                            qos: .atMostOnce,
                            retain: head.retain,
                            subscriptionIdentifiers: head.subscriptionIdentifiers,
                            messageExpiryInterval: remaining
                        )
                    ))
                    continue
                }
                let identifier = state.allocatePacketIdentifier()
                let entry = InflightDelivery(
                    sequence: head.sequence,
                    message: head.message,
                    qos: head.qos,
                    retain: head.retain,
                    subscriptionIdentifiers: head.subscriptionIdentifiers,
                    packetIdentifier: identifier,
                    state: .publishSent,
                    sharedOrigin: head.sharedOrigin
                )
                state.inflight.append(entry)
                state.inflightIdentifiers.insert(identifier)
                if state.isPersistent {
                    self.store.deliverySaved(clientIdentifier: self.clientIdentifier, Self.stored(entry))
                }
                acknowledged = true
                out.append(.publish(
                    OutboundPublish(
                        message: head.message,
                        qos: head.qos,
                        retain: head.retain,
                        packetIdentifier: identifier,
                        subscriptionIdentifiers: head.subscriptionIdentifiers,
                        messageExpiryInterval: remaining
                    )
                ))
            }
            if moved { state.droppingBurst = false }
            if expired > 0 { self.counters.messagesDroppedExpired.wrappingAdd(expired, ordering: .relaxed) }
            if !out.isEmpty { self.counters.messagesSent.wrappingAdd(out.count, ordering: .relaxed) }
            return .delivered(out, acknowledged: acknowledged)
        }
    }

    /// Drops expired messages anywhere in the queue, not only at its head [MQTT-3.3.2-5]. Looks at no more than
    /// `budget` entries; returns how many it looked at.
    func purgeExpired(now: NIODeadline, budget: Int) -> Int {
        self.state.withLock { state -> Int in
            guard !state.ended, !state.queue.isEmpty, budget > 0 else { return 0 }
            let limit = min(budget, state.queue.count)
            var firstExpired: Int?
            for index in 0..<limit where state.queue[index].message.isExpired(at: now) {
                firstExpired = index
                break
            }
            guard let firstExpired else { return limit }
            var kept = Deque<QueuedDelivery>()
            kept.reserveCapacity(state.queue.count)
            var removed = 0
            for (index, delivery) in state.queue.enumerated() {
                if index >= firstExpired && index < limit && delivery.message.isExpired(at: now) {
                    removed += 1
                    state.queuedBytes -= delivery.message.accountedSize
                    self.counters.releaseQueuedBytes(delivery.message.accountedSize)
                    if delivery.stored {
                        self.store.deliveryRemoved(clientIdentifier: self.clientIdentifier, sequence: delivery.sequence)
                    }
                } else {
                    kept.append(delivery)
                }
            }
            state.queue = kept
            self.counters.messagesDroppedExpired.wrappingAdd(removed, ordering: .relaxed)
            return limit
        }
    }

    /// Number of queued deliveries (tests, statistics).
    var queuedCount: Int { self.state.withLock { $0.queue.count } }

    /// The retransmissions due when a connection resumes the session: every unacknowledged PUBLISH with DUP=1
    /// and every PUBREL, with their original packet identifiers, in original order [MQTT-4.4.0-1].
    func retransmissions(token: UInt64, now: NIODeadline) -> [OutboundPacket] {
        self.state.withLock { state in
            guard state.owner?.token == token else { return [] }
            var out: [OutboundPacket] = []
            // Every message of the window counts against the client's Receive Maximum, PUBREC'd ones too: resend
            // only as many PUBLISH as leave the total within it [MQTT-3.3.4-9]; the rest wait for `drain`.
            var room = state.inflightLimit - state.inflight.count { $0.state == .pubrecReceived }
            for index in state.inflight.indices {
                let entry = state.inflight[index]
                switch entry.state {
                case .publishSent, .queued:
                    guard room > 0 else {
                        state.inflight[index].awaitingResend = true
                        state.mayAwaitResend = true
                        continue
                    }
                    room -= 1
                    state.inflight[index].awaitingResend = false
                    out.append(
                        .publish(
                            OutboundPublish(
                                message: entry.message,
                                qos: entry.qos,
                                retain: entry.retain,
                                dup: true,
                                packetIdentifier: entry.packetIdentifier,
                                subscriptionIdentifiers: entry.subscriptionIdentifiers,
                                messageExpiryInterval: entry.message.remainingExpiryInterval(at: now)
                            )
                        )
                    )
                case .pubrecReceived:
                    out.append(.packet(.pubrel(MQTTPacket.PubAck(packetIdentifier: entry.packetIdentifier))))
                }
            }
            let publishes = out.count { if case .publish = $0 { return true } else { return false } }
            if publishes > 0 { self.counters.messagesSent.wrappingAdd(publishes, ordering: .relaxed) }
            return out
        }
    }

    /// Frees an inflight slot without an acknowledgement (the PUBLISH was too large for the client
    /// [MQTT-3.1.2-25]). Returns whether it was inflight.
    func discardInflight(packetIdentifier: UInt16, token: UInt64) -> Bool {
        self.state.withLock { state in
            guard state.owner?.token == token else { return false }
            guard let index = state.inflight.firstIndex(where: { $0.packetIdentifier == packetIdentifier }) else {
                return false
            }
            self.removeInflight(at: index, &state)
            return true
        }
    }

    /// The owner's waker, once, when a freed inflight slot can take a queued message (or one waiting to be
    /// sent again after a resume).
    private static func wakeForFreedSlot(_ state: inout SessionState) -> (any DeliveryWaker)? {
        guard let owner = state.owner, !state.wakePending else { return nil }
        guard !state.queue.isEmpty || (state.mayAwaitResend && state.inflight.contains(where: { $0.awaitingResend }))
        else { return nil }
        state.wakePending = true
        return owner.waker
    }

    private func removeInflight(at index: Int, _ state: inout SessionState) {
        let entry = state.inflight.remove(at: index)
        state.inflightIdentifiers.remove(entry.packetIdentifier)
        if state.isPersistent {
            self.store.deliveryRemoved(clientIdentifier: self.clientIdentifier, sequence: entry.sequence)
        }
    }

    // MARK: - Outbound acknowledgements

    enum AcknowledgementOutcome {
        case notOwner
        /// No delivery in the matching state has that identifier.
        case unknown
        /// The delivery is complete; its slot is free. `wake` is the session's waker when messages wait for the
        /// slot and the connection was not woken yet: it drains them once, however many slots its read frees.
        case completed(wake: (any DeliveryWaker)?)
        /// PUBREC accepted: send PUBREL.
        case sendPubrel
    }

    enum Acknowledgement {
        case puback
        case pubrec(failed: Bool)
        case pubcomp
    }

    func acknowledge(_ ack: Acknowledgement, packetIdentifier: UInt16, token: UInt64) -> AcknowledgementOutcome {
        self.state.withLock { state in
            guard state.owner?.token == token else { return .notOwner }
            guard let index = state.inflight.firstIndex(where: { $0.packetIdentifier == packetIdentifier }) else {
                return .unknown
            }
            // Only the two fields are read: copying the whole entry would retain its message and arrays.
            let entryQoS = state.inflight[index].qos
            let entryState = state.inflight[index].state
            switch ack {
            case .puback:
                guard entryQoS == .atLeastOnce else { return .unknown }
                self.removeInflight(at: index, &state)
                return .completed(wake: Self.wakeForFreedSlot(&state))
            case .pubrec(let failed):
                guard entryQoS == .exactlyOnce else { return .unknown }
                if failed {
                    // A PUBREC with a failure reason ends the exchange (spec 4.3.3).
                    self.removeInflight(at: index, &state)
                    return .completed(wake: Self.wakeForFreedSlot(&state))
                }
                if entryState != .pubrecReceived {
                    state.inflight[index].state = .pubrecReceived
                    if state.isPersistent {
                        self.store.deliverySaved(
                            clientIdentifier: self.clientIdentifier,
                            Self.stored(state.inflight[index])
                        )
                    }
                }
                return .sendPubrel
            case .pubcomp:
                guard entryQoS == .exactlyOnce, entryState == .pubrecReceived else { return .unknown }
                self.removeInflight(at: index, &state)
                return .completed(wake: Self.wakeForFreedSlot(&state))
            }
        }
    }

    // MARK: - Inbound QoS 2

    enum InboundQoS2Outcome {
        case notOwner
        /// First time: route the message.
        case accepted
        /// Still awaiting PUBREL: acknowledge again, do not route again [MQTT-4.3.3-10].
        case duplicate
        /// More than `limit` identifiers awaiting PUBREL.
        case limitExceeded
    }

    func beginInboundQoS2(packetIdentifier: UInt16, limit: Int, token: UInt64) -> InboundQoS2Outcome {
        self.state.withLock { state in
            guard state.owner?.token == token else { return .notOwner }
            if state.inboundQoS2.contains(packetIdentifier) { return .duplicate }
            if state.inboundQoS2.count >= limit { return .limitExceeded }
            state.inboundQoS2.insert(packetIdentifier)
            if state.isPersistent {
                self.store.inboundQoS2Stored(clientIdentifier: self.clientIdentifier, packetIdentifier: packetIdentifier)
            }
            return .accepted
        }
    }

    /// Returns whether the identifier was awaiting PUBREL; nil when `token` does not own the session.
    func releaseInboundQoS2(packetIdentifier: UInt16, token: UInt64) -> Bool? {
        self.state.withLock { state in
            guard state.owner?.token == token else { return nil }
            guard state.inboundQoS2.remove(packetIdentifier) != nil else { return false }
            if state.isPersistent {
                self.store.inboundQoS2Released(clientIdentifier: self.clientIdentifier, packetIdentifier: packetIdentifier)
            }
            return true
        }
    }
}
