import Synchronization

/// The limits an operator may change while the broker runs (SIGHUP with a configuration file), read where they
/// apply with relaxed loads: a change holds from the next packet or message on. They start as the
/// `BrokerConfiguration`'s; the configuration itself is never changed.
public final class LiveLimits: Sendable {
    let queuedMessages: Atomic<Int>
    let queuedBytes: Atomic<Int>
    let publishRate: Atomic<Int>
    let subscriptionsPerSession: Atomic<Int>

    init(_ configuration: BrokerConfiguration) {
        queuedMessages = Atomic(configuration.maximumQueuedMessages)
        queuedBytes = Atomic(configuration.maximumQueuedBytes)
        publishRate = Atomic(configuration.maximumPublishRate)
        subscriptionsPerSession = Atomic(configuration.maximumSubscriptionsPerSession)
    }

    /// Messages and bytes one session may queue (`maximumQueuedMessages`, `maximumQueuedBytes`).
    public var maximumQueuedMessages: Int { queuedMessages.load(ordering: .relaxed) }
    public var maximumQueuedBytes: Int { queuedBytes.load(ordering: .relaxed) }
    /// PUBLISH packets per second one client may send; 0 sets no limit (`maximumPublishRate`).
    public var maximumPublishRate: Int { publishRate.load(ordering: .relaxed) }
    /// Subscriptions one session may hold; 0 sets no limit (`maximumSubscriptionsPerSession`).
    public var maximumSubscriptionsPerSession: Int { subscriptionsPerSession.load(ordering: .relaxed) }

    public func update(
        maximumQueuedMessages: Int,
        maximumQueuedBytes: Int,
        maximumPublishRate: Int,
        maximumSubscriptionsPerSession: Int
    ) {
        queuedMessages.store(maximumQueuedMessages, ordering: .relaxed)
        queuedBytes.store(maximumQueuedBytes, ordering: .relaxed)
        publishRate.store(maximumPublishRate, ordering: .relaxed)
        subscriptionsPerSession.store(maximumSubscriptionsPerSession, ordering: .relaxed)
    }
}
