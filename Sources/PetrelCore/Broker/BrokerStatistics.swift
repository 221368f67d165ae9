import Synchronization

/// A snapshot of the broker's counters.
public struct BrokerStatistics: Sendable, Hashable {
    /// Connections that have completed CONNECT and not yet closed.
    public var connectionsCurrent: Int = 0
    /// Connections accepted (CONNACK 0x00) since start.
    public var connectionsTotal: Int = 0
    /// The most connections open at once since start.
    public var connectionsMaximum: Int = 0
    /// Application messages received from clients (PUBLISH packets routed, wills included).
    public var messagesReceived: Int = 0
    /// PUBLISH packets handed to the server for writing (retransmissions included).
    public var messagesSent: Int = 0
    /// Deliveries dropped because a session's queue was full (count or bytes).
    public var messagesDroppedQueueFull: Int = 0
    /// Deliveries dropped because their Message Expiry Interval passed before they could be sent.
    public var messagesDroppedExpired: Int = 0
    /// Deliveries dropped because they exceeded the client's Maximum Packet Size.
    public var messagesDroppedTooLarge: Int = 0
    /// Packets other than PUBLISH not sent because they exceeded the client's Maximum Packet Size even
    /// without Reason String and User Properties [MQTT-3.1.2-25].
    public var packetsDroppedTooLarge: Int = 0
    /// Topic names and topic filters refused for having more than `BrokerConfiguration.maximumTopicLevels` levels.
    public var topicsRefusedTooManyLevels: Int = 0
    /// Bytes of messages queued in all sessions together.
    public var queuedBytes: Int = 0
    /// Deliveries dropped because all queues together held `BrokerConfiguration.maximumQueuedBytesTotal`.
    public var messagesDroppedMemoryBudget: Int = 0
    /// Topic names and topic filters refused for being longer than `BrokerConfiguration.maximumTopicLength`.
    public var topicsRefusedTooLong: Int = 0
    /// Topic filters refused because the session held `maximumSubscriptionsPerSession` already.
    public var subscriptionsRefusedQuota: Int = 0
    /// Clients disconnected for publishing faster than `maximumPublishRate`.
    public var clientsDisconnectedPublishRate: Int = 0
    /// CONNECTs refused by the authenticator (wrong or unknown user name or password, anonymous refused,
    /// failed SCRAM exchanges).
    public var authenticationFailures: Int = 0
    /// PUBLISH packets (and wills) refused by the access rules.
    public var publishesDenied: Int = 0
    /// Topic filters refused by the access rules.
    public var subscriptionsDenied: Int = 0
    /// Deliveries not made because the receiving client may not read the topic.
    public var deliveriesDenied: Int = 0
    /// Sessions known to the broker, connected or not.
    public var sessions: Int = 0
    /// Retained messages stored.
    public var retainedMessages: Int = 0
    /// Payload bytes of the retained messages stored.
    public var retainedBytes: Int = 0

    /// Every counter at zero.
    public init() {}
}

/// The live counters behind `BrokerStatistics`: relaxed atomics, never a lock.
final class BrokerCounters: Sendable {
    let connectionsCurrent = Atomic<Int>(0)
    let connectionsTotal = Atomic<Int>(0)
    let connectionsMaximum = Atomic<Int>(0)
    let messagesReceived = Atomic<Int>(0)
    let messagesSent = Atomic<Int>(0)
    let messagesDroppedQueueFull = Atomic<Int>(0)
    let messagesDroppedExpired = Atomic<Int>(0)
    let messagesDroppedTooLarge = Atomic<Int>(0)
    let packetsDroppedTooLarge = Atomic<Int>(0)
    let topicsRefusedTooManyLevels = Atomic<Int>(0)
    let topicsRefusedTooLong = Atomic<Int>(0)
    /// Bytes queued in all sessions together, against `maximumQueuedBytesTotal`.
    let queuedBytes = Atomic<Int>(0)
    let messagesDroppedMemoryBudget = Atomic<Int>(0)
    /// Set by the first drop over the budget, cleared once usage is back under 90 % of it: one log per burst.
    let overBudget = Atomic<Bool>(false)
    /// Lower bound used by `releaseQueuedBytes` to clear `overBudget`; set from the configuration.
    let budgetLowWater = Atomic<Int>(.max)

    func releaseQueuedBytes(_ bytes: Int) {
        let now = self.queuedBytes.wrappingSubtract(bytes, ordering: .relaxed).newValue
        if now < self.budgetLowWater.load(ordering: .relaxed), self.overBudget.load(ordering: .relaxed) {
            self.overBudget.store(false, ordering: .relaxed)
        }
    }
    let subscriptionsRefusedQuota = Atomic<Int>(0)
    let clientsDisconnectedPublishRate = Atomic<Int>(0)
    let authenticationFailures = Atomic<Int>(0)
    let publishesDenied = Atomic<Int>(0)
    let subscriptionsDenied = Atomic<Int>(0)
    let deliveriesDenied = Atomic<Int>(0)
    let sessions = Atomic<Int>(0)
    let retainedMessages = Atomic<Int>(0)
    /// Payload bytes of the retained messages, changed under the retained index's write lock.
    let retainedBytes = Atomic<Int>(0)
}
