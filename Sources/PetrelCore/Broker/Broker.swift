import NIOCore
import Synchronization

/// What the subscription trie stores per (filter, client): the session to deliver to and the options.
struct SubscriptionEntry: Sendable {
    let session: Session
    var options: MQTTPacket.SubscriptionOptions
    var identifier: UInt32?
}

/// A Will waiting for its Will Delay Interval (or its session's end), fired by `Broker.tick(now:)`.
struct PendingWill: Sendable {
    var will: MQTTPacket.Will
    var fireAt: NIODeadline
    var session: Session?
}

/// Client identifier -> session, and the delayed wills. Touched at CONNECT, connection end and tick only.
struct SessionRegistry: Sendable {
    var sessions: [String: Session] = [:]
    var pendingWills: [String: PendingWill] = [:]
}

/// What routing one message produced.
struct RouteResult {
    var matched = false
    var wakers: [any DeliveryWaker] = []
    var logs: [LogRecord] = []
}

/// The outcome of `Broker.tick(now:)`: connections to wake and lines to log.
public struct BrokerTickResult {
    public var wake: [any DeliveryWaker]
    public var logs: [LogRecord]

    public init(wake: [any DeliveryWaker] = [], logs: [LogRecord] = []) {
        self.wake = wake
        self.logs = logs
    }
}

/// The broker engine shared by all event loops: sessions, subscriptions, retained messages and delayed wills.
///
/// Locking: the session registry is a mutex taken at CONNECT, connection end and `tick` only; the subscription
/// trie and the retained index are readers-writer locked (every PUBLISH reads, SUBSCRIBE writes); each session
/// has its own mutex. Lock order: registry, then trie, then session; the retained index and the store are
/// leaves. Routing a PUBLISH takes the trie read lock, then each subscriber's session lock, one at a time.
public final class Broker: Sendable {
    public let configuration: BrokerConfiguration
    /// The limits that may change while running (the configuration's, until an operator changes them).
    public let limits: LiveLimits
    let store: any BrokerStore
    let counters = BrokerCounters()
    let subscriptionTrie = ReadWriteLocked(SubscriptionTrie<String, SubscriptionEntry>())
    /// Shared subscriptions: filter -> share name -> group (spec 4.8.2). Read on every PUBLISH, written on
    /// SUBSCRIBE / UNSUBSCRIBE of a `$share/` filter and when a member's session ends.
    let sharedTrie = ReadWriteLocked(SubscriptionTrie<String, SharedGroup>())
    let retainedIndex = ReadWriteLocked(RetainedMessageIndex<Message>())
    let registry = Mutex(SessionRegistry())
    private let tokens = Atomic<UInt64>(1)
    /// Where the next tick's purge of expired queued messages starts.
    private let purgeCursor = Atomic<UInt64>(0)
    private let assignedIdentifiers = Atomic<UInt64>(1)
    private let assignedIdentifierPrefix: String

    /// Creates a broker and loads the store's sessions, subscriptions, queued and inflight deliveries and
    /// retained messages. Loaded sessions are disconnected as of `now`; their stored wills are re-armed.
    public init(configuration: BrokerConfiguration = .init(), store: any BrokerStore = InMemoryBrokerStore(), now: NIODeadline) {
        self.configuration = configuration
        self.limits = LiveLimits(configuration)
        self.store = store
        if configuration.maximumQueuedBytesTotal < .max {
            self.counters.budgetLowWater.store(configuration.maximumQueuedBytesTotal / 10 * 9, ordering: .relaxed)
        }
        self.assignedIdentifierPrefix = "petrel-" + String(UInt64(truncatingIfNeeded: now.uptimeNanoseconds), radix: 36) + "-"
        self.load(store.load(), now: now)
    }

    private func load(_ snapshot: BrokerStoreSnapshot, now: NIODeadline) {
        self.retainedIndex.withWriteLock { index in
            for message in snapshot.retained {
                let previous = index.set(topic: message.topic, message: message)
                self.counters.retainedBytes.wrappingAdd(
                    message.payload.readableBytes - (previous?.payload.readableBytes ?? 0),
                    ordering: .relaxed
                )
            }
        }
        for record in snapshot.sessions {
            let clientIdentifier = record.session.clientIdentifier
            var state = SessionState(
                protocolVersion: record.session.protocolVersion,
                expiryInterval: record.session.expiryInterval,
                inflightLimit: max(1, min(self.configuration.maximumInflightMessages, Int(UInt16.max)))
            )
            if let owner = record.session.owner {
                state.username = owner
                state.usernameKnown = true
            }
            for subscription in record.subscriptions {
                state.subscriptions[subscription.filter] = subscription
            }
            var maximumSequence: UInt64 = 0
            var lastPacketIdentifier: UInt16 = 0
            for delivery in record.deliveries.sorted(by: { $0.sequence < $1.sequence }) {
                maximumSequence = max(maximumSequence, delivery.sequence)
                switch delivery.state {
                case .queued:
                    state.queue.append(
                        QueuedDelivery(
                            sequence: delivery.sequence,
                            message: delivery.message,
                            qos: delivery.qos,
                            retain: delivery.retain,
                            subscriptionIdentifiers: delivery.subscriptionIdentifiers,
                            stored: true,
                            sharedOrigin: delivery.sharedSubscription.flatMap(SharedOrigin.init(subscription:))
                        )
                    )
                    state.queuedBytes += delivery.message.accountedSize
                    self.counters.queuedBytes.wrappingAdd(delivery.message.accountedSize, ordering: .relaxed)
                case .publishSent, .pubrecReceived:
                    guard let identifier = delivery.packetIdentifier, !state.inflightIdentifiers.contains(identifier)
                    else { continue }
                    state.inflight.append(
                        InflightDelivery(
                            sequence: delivery.sequence,
                            message: delivery.message,
                            qos: delivery.qos,
                            retain: delivery.retain,
                            subscriptionIdentifiers: delivery.subscriptionIdentifiers,
                            packetIdentifier: identifier,
                            state: delivery.state,
                            sharedOrigin: delivery.sharedSubscription.flatMap(SharedOrigin.init(subscription:))
                        )
                    )
                    state.inflightIdentifiers.insert(identifier)
                    lastPacketIdentifier = identifier
                }
            }
            state.nextSequence = maximumSequence + 1
            state.nextPacketIdentifier = lastPacketIdentifier == .max ? 1 : lastPacketIdentifier + 1
            state.inboundQoS2 = Set(record.inboundQoS2PacketIdentifiers)
            state.will = record.session.will
            // The expiry interval runs from the last disconnect [MQTT-3.1.2-23]; a session whose client was
            // still connected when the broker stopped counts from now.
            let disconnectedAt = min(record.session.disconnectedAt ?? now, now)
            state.disconnectedAt = disconnectedAt
            let session = Session(clientIdentifier: clientIdentifier, state: state, store: self.store, counters: self.counters)
            self.subscriptionTrie.withWriteLock { trie in
                for subscription in record.subscriptions {
                    if case .shared(let shareName, let filter) = MQTTTopic.parseSharedSubscription(subscription.filter) {
                        self.addSharedMember(session: session, subscription: subscription, shareName: shareName, filter: filter)
                        continue
                    }
                    trie.insert(
                        filter: subscription.filter,
                        key: clientIdentifier,
                        value: SubscriptionEntry(
                            session: session,
                            options: subscription.options,
                            identifier: subscription.subscriptionIdentifier
                        )
                    )
                }
            }
            self.registry.withLock { registry in
                registry.sessions[clientIdentifier] = session
                if let will = record.session.will {
                    let delay = record.session.protocolVersion.isV5 ? (will.properties.willDelayInterval ?? 0) : 0
                    let effective = min(delay, record.session.expiryInterval)
                    registry.pendingWills[clientIdentifier] = PendingWill(
                        will: will,
                        fireAt: disconnectedAt + .seconds(Int64(effective)),
                        session: session
                    )
                }
            }
        }
    }

    /// Current counters.
    public var statistics: BrokerStatistics {
        var statistics = BrokerStatistics()
        statistics.connectionsCurrent = self.counters.connectionsCurrent.load(ordering: .relaxed)
        statistics.connectionsTotal = self.counters.connectionsTotal.load(ordering: .relaxed)
        statistics.connectionsMaximum = self.counters.connectionsMaximum.load(ordering: .relaxed)
        statistics.messagesReceived = self.counters.messagesReceived.load(ordering: .relaxed)
        statistics.messagesSent = self.counters.messagesSent.load(ordering: .relaxed)
        statistics.messagesDroppedQueueFull = self.counters.messagesDroppedQueueFull.load(ordering: .relaxed)
        statistics.messagesDroppedExpired = self.counters.messagesDroppedExpired.load(ordering: .relaxed)
        statistics.messagesDroppedTooLarge = self.counters.messagesDroppedTooLarge.load(ordering: .relaxed)
        statistics.packetsDroppedTooLarge = self.counters.packetsDroppedTooLarge.load(ordering: .relaxed)
        statistics.topicsRefusedTooManyLevels = self.counters.topicsRefusedTooManyLevels.load(ordering: .relaxed)
        statistics.queuedBytes = self.counters.queuedBytes.load(ordering: .relaxed)
        statistics.messagesDroppedMemoryBudget = self.counters.messagesDroppedMemoryBudget.load(ordering: .relaxed)
        statistics.topicsRefusedTooLong = self.counters.topicsRefusedTooLong.load(ordering: .relaxed)
        statistics.subscriptionsRefusedQuota = self.counters.subscriptionsRefusedQuota.load(ordering: .relaxed)
        statistics.clientsDisconnectedPublishRate = self.counters.clientsDisconnectedPublishRate.load(ordering: .relaxed)
        statistics.authenticationFailures = self.counters.authenticationFailures.load(ordering: .relaxed)
        statistics.publishesDenied = self.counters.publishesDenied.load(ordering: .relaxed)
        statistics.subscriptionsDenied = self.counters.subscriptionsDenied.load(ordering: .relaxed)
        statistics.deliveriesDenied = self.counters.deliveriesDenied.load(ordering: .relaxed)
        statistics.sessions = self.registry.withLock { $0.sessions.count }
        statistics.retainedMessages = self.retainedIndex.withReadLock { $0.count }
        statistics.retainedBytes = self.counters.retainedBytes.load(ordering: .relaxed)
        return statistics
    }

    /// Fires delayed wills that are due, ends detached sessions whose expiry interval has passed (publishing
    /// their pending will first), drops expired retained messages and purges expired queued messages
    /// [MQTT-3.3.2-5] (at most `expiryPurgeBudget` queue entries per call, continuing where the last call
    /// stopped). Call about once a second.
    public func tick(now: NIODeadline) -> BrokerTickResult {
        var result = BrokerTickResult()
        var dueWills: [(String, PendingWill)] = []
        var expiredSessions: [String] = []
        var allSessions: [Session] = []
        self.registry.withLock { registry in
            for (clientIdentifier, pending) in registry.pendingWills where pending.fireAt <= now {
                dueWills.append((clientIdentifier, pending))
            }
            for (clientIdentifier, _) in dueWills {
                registry.pendingWills.removeValue(forKey: clientIdentifier)
            }
            var expiring: [Session] = []
            allSessions.reserveCapacity(registry.sessions.count)
            for session in registry.sessions.values {
                allSessions.append(session)
                if let deadline = session.expiryDeadline(), deadline <= now {
                    expiring.append(session)
                }
            }
            for session in expiring {
                // The session ends: a will still waiting for its delay is published now [MQTT-3.1.2-8].
                if let pending = registry.pendingWills.removeValue(forKey: session.clientIdentifier) {
                    dueWills.append((session.clientIdentifier, pending))
                }
                if self.endSession(session, in: &registry, onlyIfDetached: true, wakers: &result.wake) != nil {
                    expiredSessions.append(session.clientIdentifier)
                }
            }
        }
        for (clientIdentifier, pending) in dueWills {
            pending.session?.clearWill()
            let routed = self.publishWill(pending.will, clientIdentifier: clientIdentifier, now: now)
            result.wake.append(contentsOf: routed.wakers)
            result.logs.append(contentsOf: routed.logs)
            result.logs.append(
                LogRecord(level: .debug, message: "Delayed will published", metadata: ["mqtt.client_id": clientIdentifier])
            )
        }
        for clientIdentifier in expiredSessions {
            result.logs.append(
                LogRecord(level: .info, message: "Session expired", metadata: ["mqtt.client_id": clientIdentifier])
            )
        }
        self.purgeExpiredQueued(allSessions, now: now)
        var expiredTopics: [String] = []
        self.retainedIndex.withWriteLock { index in
            var freed = 0
            index.removeAll { topic, message in
                guard message.isExpired(at: now) else { return false }
                expiredTopics.append(topic)
                freed += message.payload.readableBytes
                return true
            }
            self.counters.retainedBytes.wrappingSubtract(freed, ordering: .relaxed)
            for topic in expiredTopics {
                self.store.retainedRemoved(topic: topic)
            }
        }
        var seen: [any DeliveryWaker] = []
        for waker in result.wake where !seen.contains(where: { $0 === waker }) {
            seen.append(waker)
        }
        result.wake = seen
        return result
    }

    /// Spends the purge budget over the sessions, starting after the session the previous tick stopped at.
    private func purgeExpiredQueued(_ sessions: [Session], now: NIODeadline) {
        guard !sessions.isEmpty else { return }
        var budget = self.configuration.expiryPurgeBudget
        let start = Int(self.purgeCursor.load(ordering: .relaxed) % UInt64(sessions.count))
        var visited = 0
        while visited < sessions.count && budget > 0 {
            budget -= sessions[(start + visited) % sessions.count].purgeExpired(now: now, budget: budget)
            visited += 1
        }
        self.purgeCursor.wrappingAdd(UInt64(visited), ordering: .relaxed)
    }

    /// Called when the server stops, after every connection's `shutdown(now:)`: flushes the store.
    public func shutdown(now: NIODeadline) {
        self.store.flush()
    }

    // MARK: - Identity

    func nextToken() -> UInt64 {
        self.tokens.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// A client identifier for a client that sent an empty one [MQTT-3.1.3-6]: unique among current sessions.
    func assignClientIdentifier() -> String {
        while true {
            let number = self.assignedIdentifiers.wrappingAdd(1, ordering: .relaxed).newValue
            let candidate = self.assignedIdentifierPrefix + String(number, radix: 36)
            if self.registry.withLock({ $0.sessions[candidate] == nil }) {
                return candidate
            }
        }
    }

    // MARK: - Sessions

    struct SessionOpening {
        var session: Session
        var sessionPresent: Bool
        /// The waker of the connection that held the session (or the replaced one) before: it must be woken so
        /// it notices the takeover and closes itself [MQTT-3.1.4-3].
        var previousOwner: (any DeliveryWaker)?
        /// Connections that received shared-subscription messages of a replaced session (spec 4.8.2).
        var wakers: [any DeliveryWaker] = []
    }

    /// Whether `clientIdentifier` has a session that another user's connection opened (see
    /// `BrokerConfiguration.sessionsBelongToTheirUser`).
    func sessionBelongsToAnotherUser(_ clientIdentifier: String, than username: String?) -> Bool {
        guard let session = self.registry.withLock({ $0.sessions[clientIdentifier] }) else { return false }
        return session.belongsToAnotherUser(than: username)
    }

    /// Attaches a new connection to the session of `clientIdentifier`: resumes it (clean start 0 and one exists,
    /// [MQTT-3.1.2-5]), or discards any existing one and creates a new one [MQTT-3.1.2-4, MQTT-3.1.2-6]. A
    /// delayed will of that client is cancelled: a new connection came before its delay elapsed [MQTT-3.1.3-9].
    func openSession(
        clientIdentifier: String,
        cleanStart: Bool,
        protocolVersion: ProtocolVersion,
        expiryInterval: UInt32,
        inflightLimit: Int,
        will: OutOfLine<MQTTPacket.Will>?,
        access: ClientAccess? = nil,
        username: String? = nil,
        connection: ConnectionDescription? = nil,
        token: UInt64,
        waker: any DeliveryWaker
    ) -> SessionOpening {
        self.registry.withLock { registry in
            if let cancelled = registry.pendingWills.removeValue(forKey: clientIdentifier) {
                cancelled.session?.clearWill()
            }
            var previousOwner: SessionOwner?
            var reroutedWakers: [any DeliveryWaker] = []
            let session: Session
            let sessionPresent: Bool
            // A session that ends with its connection (3.1.1 Clean Session 1 [MQTT-3.1.2-6], v5 Session Expiry 0
            // [MQTT-3.1.2-23]) is never resumed, even when the new CONNECT arrives before the old connection's
            // DISCONNECT or close was processed.
            if let existing = registry.sessions[clientIdentifier], !cleanStart, existing.isPersistent {
                session = existing
                sessionPresent = true
            } else {
                if let existing = registry.sessions[clientIdentifier] {
                    previousOwner = self.endSession(
                        existing,
                        in: &registry,
                        onlyIfDetached: false,
                        wakers: &reroutedWakers
                    )?.owner
                }
                session = Session(
                    clientIdentifier: clientIdentifier,
                    state: SessionState(protocolVersion: protocolVersion, expiryInterval: 0, inflightLimit: inflightLimit),
                    store: self.store,
                    counters: self.counters
                )
                registry.sessions[clientIdentifier] = session
                sessionPresent = false
            }
            let attachedOwner = session.attach(
                token: token,
                waker: waker,
                protocolVersion: protocolVersion,
                expiryInterval: expiryInterval,
                inflightLimit: inflightLimit,
                will: will,
                access: access,
                username: username,
                connection: connection
            )
            return SessionOpening(
                session: session,
                sessionPresent: sessionPresent,
                previousOwner: (attachedOwner ?? previousOwner)?.waker,
                wakers: reroutedWakers
            )
        }
    }

    /// Ends `session`: marks it, unregisters it, removes its subscriptions and its stored state. Registry lock
    /// held by the caller.
    @discardableResult
    func endSession(
        _ session: Session,
        in registry: inout SessionRegistry,
        onlyIfDetached: Bool,
        wakers: inout [any DeliveryWaker]
    ) -> Session.EndResult? {
        guard let ended = session.end(onlyIfDetached: onlyIfDetached) else { return nil }
        if registry.sessions[session.clientIdentifier] === session {
            registry.sessions.removeValue(forKey: session.clientIdentifier)
        }
        self.subscriptionTrie.withWriteLock { trie in
            for filter in ended.filters {
                if case .shared(let shareName, let sharedFilter) = MQTTTopic.parseSharedSubscription(filter) {
                    self.removeSharedMember(session: session, shareName: shareName, filter: sharedFilter)
                } else if trie.value(filter: filter, key: session.clientIdentifier)?.session === session {
                    trie.remove(filter: filter, key: session.clientIdentifier)
                }
            }
        }
        if ended.wasPersistent {
            self.store.sessionRemoved(clientIdentifier: session.clientIdentifier)
        }
        // Messages a shared subscription gave this session and it never completed go to another member
        // of the same group (spec 4.8.2).
        for orphan in ended.sharedOrphans {
            if let waker = self.redeliverShared(orphan) {
                if !wakers.contains(where: { $0 === waker }) { wakers.append(waker) }
            }
        }
        return ended
    }

    /// A connection ended. Detaches it from its session (which ends now when its expiry interval is 0) and
    /// handles its will: `will` is non-nil when the end was abnormal and the will must be published
    /// [MQTT-3.1.2-8]; it is published at once, or after min(Will Delay Interval, session expiry) unless the
    /// client reconnects first (v5). After a takeover it is published unless (v5) the new connection continues
    /// the session and the will has a delay.
    func connectionEnded(
        session: Session,
        token: UInt64,
        protocolVersion: ProtocolVersion,
        will: MQTTPacket.Will?,
        now: NIODeadline
    ) -> RouteResult {
        var immediate: MQTTPacket.Will?
        var rerouted: [any DeliveryWaker] = []
        let delay = protocolVersion.isV5 ? (will?.properties.willDelayInterval ?? 0) : 0
        self.registry.withLock { registry in
            switch session.detach(token: token, now: now, will: delay > 0 ? will : nil) {
            case .detached(let expiryInterval):
                if let will {
                    let effective = min(delay, expiryInterval)
                    if effective == 0 {
                        immediate = will
                    } else {
                        registry.pendingWills[session.clientIdentifier] = PendingWill(
                            will: will,
                            fireAt: now + .seconds(Int64(effective)),
                            session: session
                        )
                    }
                }
                if expiryInterval == 0 {
                    self.endSession(session, in: &registry, onlyIfDetached: true, wakers: &rerouted)
                }
            case .notOwner(let sessionEnded):
                if let will, !protocolVersion.isV5 || delay == 0 || sessionEnded {
                    immediate = will
                }
            }
        }
        self.counters.connectionsCurrent.wrappingSubtract(1, ordering: .relaxed)
        guard let immediate else { return RouteResult(wakers: rerouted) }
        var result = self.publishWill(immediate, clientIdentifier: session.clientIdentifier, now: now)
        for waker in rerouted where !result.wakers.contains(where: { $0 === waker }) {
            result.wakers.append(waker)
        }
        return result
    }

    // MARK: - Subscriptions

    /// Adds or replaces a subscription of `session` [MQTT-3.8.4-3]. Returns whether it replaced one, or nil when
    /// `token` no longer owns the session.
    func subscribe(session: Session, token: UInt64, subscription: StoredSubscription) -> Bool? {
        if case .shared(let shareName, let filter) = MQTTTopic.parseSharedSubscription(subscription.filter) {
            return self.sharedTrie.withWriteLock { trie -> Bool? in
                guard let existed = session.setSubscription(subscription, token: token) else { return nil }
                Self.insertSharedMember(session: session, subscription: subscription, shareName: shareName, filter: filter, into: &trie)
                return existed
            }
        }
        return self.subscriptionTrie.withWriteLock { trie in
            guard let existed = session.setSubscription(subscription, token: token) else { return nil }
            trie.insert(
                filter: subscription.filter,
                key: session.clientIdentifier,
                value: SubscriptionEntry(
                    session: session,
                    options: subscription.options,
                    identifier: subscription.subscriptionIdentifier
                )
            )
            return existed
        }
    }

    /// Removes a subscription. Returns whether it existed, or nil when `token` no longer owns the session.
    func unsubscribe(session: Session, token: UInt64, filter: String) -> Bool? {
        if case .shared(let shareName, let sharedFilter) = MQTTTopic.parseSharedSubscription(filter) {
            return self.sharedTrie.withWriteLock { trie -> Bool? in
                guard let existed = session.removeSubscription(filter: filter, token: token) else { return nil }
                Self.deleteSharedMember(session: session, shareName: shareName, filter: sharedFilter, from: &trie)
                return existed
            }
        }
        return self.subscriptionTrie.withWriteLock { trie in
            guard let existed = session.removeSubscription(filter: filter, token: token) else { return nil }
            if trie.value(filter: filter, key: session.clientIdentifier)?.session === session {
                trie.remove(filter: filter, key: session.clientIdentifier)
            }
            return existed
        }
    }

    /// Retained messages matching `filter`, not expired, at most `limit` of them.
    func retainedMessages(matching filter: String, now: NIODeadline, limit: Int = .max) -> [Message] {
        var messages: [Message] = []
        guard limit > 0 else { return messages }
        self.retainedIndex.withReadLock { index in
            index.visitMatches(filter: filter) { _, message in
                if !message.isExpired(at: now) {
                    messages.append(message)
                }
                return messages.count < limit
            }
        }
        return messages
    }

    // MARK: - Publishing

    /// Publishes a will as an application message from `clientIdentifier`.
    func publishWill(_ will: MQTTPacket.Will, clientIdentifier: String, now: NIODeadline) -> RouteResult {
        let message = Message(
            topic: will.topic,
            payload: will.payload,
            qos: min(will.qos, self.configuration.maximumQoS),
            retain: will.retain && self.configuration.retainAvailable,
            inboundProperties: will.properties,
            publisherClientIdentifier: clientIdentifier,
            now: now
        )
        return self.publish(message)
    }

    /// Stores or clears the retained message for the topic when RETAIN is set, then routes the message.
    /// A publishing connection passes its `RouteCache`.
    func publish(_ message: Message, cache: RouteCache? = nil) -> RouteResult {
        self.counters.messagesReceived.wrappingAdd(1, ordering: .relaxed)
        if message.retain && self.configuration.retainAvailable {
            self.updateRetained(message)
        }
        return self.route(message, cache: cache)
    }

    /// A retained PUBLISH replaces the topic's retained message [MQTT-3.3.1-5]; one with an empty payload
    /// removes it and is not stored itself [MQTT-3.3.1-6, MQTT-3.3.1-7] (3.1.1: [MQTT-3.3.1-10, MQTT-3.3.1-11]).
    /// `durable: false` keeps the message in memory only (the broker's own `$SYS` topics, made anew at start).
    func updateRetained(_ message: Message, durable: Bool = true) {
        self.retainedIndex.withWriteLock { index in
            if message.payload.readableBytes == 0 {
                if let previous = index.set(topic: message.topic, message: nil) {
                    self.counters.retainedBytes.wrappingSubtract(previous.payload.readableBytes, ordering: .relaxed)
                    if durable { self.store.retainedRemoved(topic: message.topic) }
                }
            } else {
                let previous = index.set(topic: message.topic, message: message)
                self.counters.retainedBytes.wrappingAdd(
                    message.payload.readableBytes - (previous?.payload.readableBytes ?? 0),
                    ordering: .relaxed
                )
                if durable { self.store.retainedSet(message) }
            }
        }
    }

    /// Up to this many matched sessions are told apart by a linear search, beyond it by a dictionary.
    private static let linearTargetSearchLimit = 8

    struct Target {
        var session: Session
        /// The highest granted QoS among the session's matching subscriptions; a delivery gets the lower of
        /// this and the message's QoS [MQTT-3.8.4-8].
        var maximumQoS: QoS
        var retainAsPublished: Bool
        var identifiers: [UInt32]
    }

    /// Delivers `message` to every session with a matching subscription: once per session however many of its
    /// subscriptions match, at the highest QoS among them [MQTT-3.3.5-1] (v5 [MQTT-3.3.4-2]) and with all their
    /// subscription identifiers [MQTT-3.3.4-3]; per subscription QoS = min(published, granted) [MQTT-3.8.4-8].
    /// The trie applies the `$` rule [MQTT-4.7.2-1].
    ///
    /// With a `cache` that still describes the topic, the publisher and both tries, the tries are not walked.
    func route(_ message: Message, cache: RouteCache? = nil) -> RouteResult {
        var result = RouteResult()
        if let cache, cache.isValid(for: message, trieVersion: self.subscriptionTrie.version, sharedVersion: self.sharedTrie.version) {
            result.matched = !cache.targets.isEmpty
            self.deliverShared(message, groups: cache.groups, into: &result)
            self.deliver(message, to: cache.targets, into: &result)
            return result
        }
        var trieVersion: UInt64 = 0
        let targets = self.matchTargets(message, version: &trieVersion)
        var sharedVersion: UInt64 = 0
        let groups = self.matchSharedGroups(message, version: &sharedVersion)
        result.matched = !targets.isEmpty
        self.deliverShared(message, groups: groups, into: &result)
        self.deliver(message, to: targets, into: &result)
        cache?.remember(message, trieVersion: trieVersion, sharedVersion: sharedVersion, targets: targets, groups: groups)
        return result
    }

    /// The sessions whose subscriptions match, merged per session; `version` is the trie's under the read lock.
    private func matchTargets(_ message: Message, version: inout UInt64) -> [Target] {
        var targets: [Target] = []
        // Sessions seen so far, by position in `targets`: a few are searched linearly, which spares a
        // dictionary (and its allocation) in the common case of one or a few matches.
        var positions: [ObjectIdentifier: Int]? = nil
        self.subscriptionTrie.withReadLock { trie in
            version = self.subscriptionTrie.version
            trie.forEachMatch(topic: message.topic) { clientIdentifier, entry in
                // No Local: not to the publishing client's own subscriptions [MQTT-3.8.3-3].
                if entry.options.noLocal && clientIdentifier == message.publisherClientIdentifier {
                    return
                }
                let qos = entry.options.qos
                let key = ObjectIdentifier(entry.session)
                let found: Int?
                if positions == nil, targets.count < Self.linearTargetSearchLimit {
                    found = targets.firstIndex { $0.session === entry.session }
                } else {
                    if positions == nil {
                        var built: [ObjectIdentifier: Int] = [:]
                        built.reserveCapacity(targets.count * 2)
                        for (index, target) in targets.enumerated() { built[ObjectIdentifier(target.session)] = index }
                        positions = built
                    }
                    found = positions![key]
                }
                if let position = found {
                    targets[position].maximumQoS = max(targets[position].maximumQoS, qos)
                    targets[position].retainAsPublished = targets[position].retainAsPublished
                        || entry.options.retainAsPublished
                    if let identifier = entry.identifier {
                        targets[position].identifiers.append(identifier)
                    }
                } else {
                    positions?[key] = targets.count
                    targets.append(
                        Target(
                            session: entry.session,
                            maximumQoS: qos,
                            retainAsPublished: entry.options.retainAsPublished,
                            identifiers: entry.identifier.map { [$0] } ?? []
                        )
                    )
                }
            }
        }
        return targets
    }

    private func deliver(_ message: Message, to targets: [Target], into result: inout RouteResult) {
        for target in targets {
            // Forwarded to existing subscriptions with RETAIN 0 [MQTT-3.3.1-9] unless Retain As Published
            // [MQTT-3.3.1-12, MQTT-3.3.1-13].
            let retain = target.retainAsPublished ? message.retain : false
            switch target.session.enqueue(
                message,
                qos: min(message.qos, target.maximumQoS),
                retain: retain,
                subscriptionIdentifiers: target.identifiers,
                configuration: self.configuration,
                limits: self.limits
            ) {
            case .queued(let waker):
                if let waker { result.wakers.append(waker) }
            case .dropped(let firstInBurst, let overBudget):
                if firstInBurst {
                    result.logs.append(
                        .queueFull(clientIdentifier: target.session.clientIdentifier, topic: message.topic, overBudget: overBudget)
                    )
                }
            case .discarded:
                break
            }
        }
    }
}

/// What routing found for one topic, kept by a publishing connection for its next PUBLISH to the same topic:
/// devices publish to the same few topics again and again, and walking the tries again would find the same
/// subscribers until a SUBSCRIBE, UNSUBSCRIBE or session end writes to a trie (bumping its version).
///
/// Owned by one connection's state machine and used on its event loop only.
final class RouteCache {
    /// Larger fan-outs are not kept: they would hold memory per publisher, and one trie walk is small beside
    /// the deliveries it leads to.
    static let maximumTargets = 64

    private var topic: String?
    private var publisher: String?
    private var trieVersion: UInt64 = 0
    private var sharedVersion: UInt64 = 0
    fileprivate private(set) var targets: [Broker.Target] = []
    fileprivate private(set) var groups: [(shareName: String, group: SharedGroup)] = []

    fileprivate func isValid(for message: Message, trieVersion: UInt64, sharedVersion: UInt64) -> Bool {
        self.trieVersion == trieVersion && self.sharedVersion == sharedVersion && self.topic == message.topic
            && self.publisher == message.publisherClientIdentifier
    }

    fileprivate func remember(
        _ message: Message,
        trieVersion: UInt64,
        sharedVersion: UInt64,
        targets: [Broker.Target],
        groups: [(shareName: String, group: SharedGroup)]
    ) {
        guard targets.count + groups.count <= Self.maximumTargets else {
            self.topic = nil
            self.targets = []
            self.groups = []
            return
        }
        self.topic = message.topic
        self.publisher = message.publisherClientIdentifier
        self.trieVersion = trieVersion
        self.sharedVersion = sharedVersion
        self.targets = targets
        self.groups = groups
    }
}
