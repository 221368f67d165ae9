import Synchronization

/// A `BrokerStore` in dictionaries behind a mutex: state survives a `Broker` being dropped and a new one being
/// created on the same store (not a process restart). The default store.
public final class InMemoryBrokerStore: BrokerStore {
    private struct SessionRecord {
        var session: StoredSession
        var subscriptions: [String: StoredSubscription] = [:]
        var deliveries: [UInt64: StoredDelivery] = [:]
        var inboundQoS2: Set<UInt16> = []
    }

    private struct Contents {
        var sessions: [String: SessionRecord] = [:]
        var retained: [String: Message] = [:]
    }

    private let contents = Mutex(Contents())

    public init() {}

    public func load() -> BrokerStoreSnapshot {
        self.contents.withLock { contents in
            let sessions = contents.sessions.values.map { record in
                StoredSessionState(
                    session: record.session,
                    subscriptions: Array(record.subscriptions.values),
                    deliveries: record.deliveries.values.sorted { $0.sequence < $1.sequence },
                    inboundQoS2PacketIdentifiers: record.inboundQoS2.sorted()
                )
            }
            return BrokerStoreSnapshot(sessions: sessions, retained: Array(contents.retained.values))
        }
    }

    public func sessionSaved(_ session: StoredSession) {
        self.contents.withLock { contents in
            if contents.sessions[session.clientIdentifier] != nil {
                contents.sessions[session.clientIdentifier]!.session = session
            } else {
                contents.sessions[session.clientIdentifier] = SessionRecord(session: session)
            }
        }
    }

    public func sessionRemoved(clientIdentifier: String) {
        _ = self.contents.withLock { $0.sessions.removeValue(forKey: clientIdentifier) }
    }

    public func subscriptionSaved(clientIdentifier: String, _ subscription: StoredSubscription) {
        self.contents.withLock { $0.sessions[clientIdentifier]?.subscriptions[subscription.filter] = subscription }
    }

    public func subscriptionRemoved(clientIdentifier: String, filter: String) {
        _ = self.contents.withLock { $0.sessions[clientIdentifier]?.subscriptions.removeValue(forKey: filter) }
    }

    public func deliverySaved(clientIdentifier: String, _ delivery: StoredDelivery) {
        self.contents.withLock { $0.sessions[clientIdentifier]?.deliveries[delivery.sequence] = delivery }
    }

    public func deliveryRemoved(clientIdentifier: String, sequence: UInt64) {
        _ = self.contents.withLock { $0.sessions[clientIdentifier]?.deliveries.removeValue(forKey: sequence) }
    }

    public func inboundQoS2Stored(clientIdentifier: String, packetIdentifier: UInt16) {
        _ = self.contents.withLock { $0.sessions[clientIdentifier]?.inboundQoS2.insert(packetIdentifier) }
    }

    public func inboundQoS2Released(clientIdentifier: String, packetIdentifier: UInt16) {
        _ = self.contents.withLock { $0.sessions[clientIdentifier]?.inboundQoS2.remove(packetIdentifier) }
    }

    public func retainedSet(_ message: Message) {
        self.contents.withLock { $0.retained[message.topic] = message }
    }

    public func retainedRemoved(topic: String) {
        _ = self.contents.withLock { $0.retained.removeValue(forKey: topic) }
    }

    /// Counts for tests and diagnostics.
    public var sessionCount: Int { self.contents.withLock { $0.sessions.count } }
    public var retainedCount: Int { self.contents.withLock { $0.retained.count } }
}
