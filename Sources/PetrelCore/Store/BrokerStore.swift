import NIOCore

/// A subscription as a session holds it.
public struct StoredSubscription: Sendable, Hashable {
    public var filter: String
    /// The options as granted: `options.qos` is the granted QoS.
    public var options: MQTTPacket.SubscriptionOptions
    /// The v5 Subscription Identifier, when the SUBSCRIBE carried one.
    public var subscriptionIdentifier: UInt32?

    public init(filter: String, options: MQTTPacket.SubscriptionOptions, subscriptionIdentifier: UInt32? = nil) {
        self.filter = filter
        self.options = options
        self.subscriptionIdentifier = subscriptionIdentifier
    }
}

/// Where an outbound delivery of a session stands.
public enum DeliveryState: Sendable, Hashable {
    /// Waiting in the session queue (offline, or behind a full inflight window).
    case queued
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    case publishSent
    /// QoS 2: PUBREC received and PUBREL sent, waiting for PUBCOMP.
    case pubrecReceived
}

/// One delivery of a message to one session, as the store keeps it.
public struct StoredDelivery: Sendable {
    /// Increases per session in the order deliveries were queued: queue order and send order.
    public var sequence: UInt64
    /// Shared by every delivery of the message: a store may keep the body once per message identity.
    public var message: Message
    public var qos: QoS
    public var retain: Bool
    public var subscriptionIdentifiers: [UInt32]
    /// Set once the delivery has been sent (states `publishSent` and `pubrecReceived`).
    public var packetIdentifier: UInt16?
    public var state: DeliveryState
    /// The shared subscription (`$share/{name}/{filter}`) that chose this session for the message, if one did:
    /// should the session end before its client has the message, another member of the group gets it
    /// (spec 4.8.2), after a restart too.
    public var sharedSubscription: String?

    public init(
        sequence: UInt64,
        message: Message,
        qos: QoS,
        retain: Bool,
        subscriptionIdentifiers: [UInt32],
        packetIdentifier: UInt16?,
        state: DeliveryState,
        sharedSubscription: String? = nil
    ) {
        self.sequence = sequence
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscriptionIdentifiers = subscriptionIdentifiers
        self.packetIdentifier = packetIdentifier
        self.state = state
        self.sharedSubscription = sharedSubscription
    }
}

/// The session-level record of a persistent session.
public struct StoredSession: Sendable {
    public var clientIdentifier: String
    public var protocolVersion: ProtocolVersion
    /// Seconds the session outlives its connection; `UInt32.max` never expires.
    public var expiryInterval: UInt32
    /// The Will of the session's last connection while it may still be published (connected, or disconnected
    /// abnormally with a pending Will Delay Interval). A loaded session with a will gets it re-armed.
    public var will: MQTTPacket.Will?
    /// When its last connection closed; nil while connected. The expiry interval counts from here
    /// [MQTT-3.1.2-23], across restarts too (the store keeps it as wall-clock time).
    public var disconnectedAt: NIODeadline?
    /// The user whose connection opened the session (`.some(nil)`: an anonymous one); nil when not known (a
    /// session stored before the store kept it). Decides who may resume it when sessions belong to their user.
    public var owner: String??

    public init(
        clientIdentifier: String,
        protocolVersion: ProtocolVersion,
        expiryInterval: UInt32,
        will: MQTTPacket.Will?,
        disconnectedAt: NIODeadline? = nil,
        owner: String?? = nil
    ) {
        self.clientIdentifier = clientIdentifier
        self.protocolVersion = protocolVersion
        self.expiryInterval = expiryInterval
        self.will = will
        self.disconnectedAt = disconnectedAt
        self.owner = owner
    }
}

/// Everything stored about one session.
public struct StoredSessionState: Sendable {
    public var session: StoredSession
    public var subscriptions: [StoredSubscription]
    /// Queued and inflight deliveries; any order (the broker sorts by `sequence`).
    public var deliveries: [StoredDelivery]
    /// Inbound QoS 2 packet identifiers for which PUBREC was sent and PUBREL not yet received.
    public var inboundQoS2PacketIdentifiers: [UInt16]

    public init(
        session: StoredSession,
        subscriptions: [StoredSubscription] = [],
        deliveries: [StoredDelivery] = [],
        inboundQoS2PacketIdentifiers: [UInt16] = []
    ) {
        self.session = session
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.inboundQoS2PacketIdentifiers = inboundQoS2PacketIdentifiers
    }
}

/// What `BrokerStore.load()` returns at broker start.
public struct BrokerStoreSnapshot: Sendable {
    public var sessions: [StoredSessionState]
    /// Retained messages (each with `retain == true`).
    public var retained: [Message]

    public init(sessions: [StoredSessionState] = [], retained: [Message] = []) {
        self.sessions = sessions
        self.retained = retained
    }
}

/// The persistence port of the engine: write-through notifications of every durable state change, and `load()`
/// at start.
///
/// Only persistent sessions (expiry interval > 0) are written; a session that stops being persistent is
/// removed with `sessionRemoved`. Calls are synchronous and are made while the engine holds the lock of the
/// session concerned, on whichever event loop the change happens: an implementation must not block for I/O on
/// the caller's thread (a durable store buffers and commits in batches off the event loops) and must never call
/// back into the broker. Calls for one session arrive in the order the changes happened.
///
/// Times (`Message.expiresAt`) are in the engine's clock (`NIODeadline`); a store that outlives the process
/// converts them to wall-clock time on write and back on load.
public protocol BrokerStore: Sendable {
    /// Everything stored, read once when a `Broker` is created.
    func load() -> BrokerStoreSnapshot
    /// A persistent session was created or its record (version, expiry, will) changed. Upsert by client id.
    func sessionSaved(_ session: StoredSession)
    /// A session ended (clean start, expiry, expiry interval set to 0): drop it with everything it owns.
    func sessionRemoved(clientIdentifier: String)
    /// A subscription was added or replaced (upsert by filter).
    func subscriptionSaved(clientIdentifier: String, _ subscription: StoredSubscription)
    func subscriptionRemoved(clientIdentifier: String, filter: String)
    /// A delivery was queued or changed state (sent, PUBREC received). Upsert by `sequence`.
    func deliverySaved(clientIdentifier: String, _ delivery: StoredDelivery)
    /// A delivery completed (PUBACK / PUBCOMP), was sent at QoS 0, expired or was discarded.
    func deliveryRemoved(clientIdentifier: String, sequence: UInt64)
    /// An inbound QoS 2 PUBLISH was accepted and PUBREC sent.
    func inboundQoS2Stored(clientIdentifier: String, packetIdentifier: UInt16)
    /// Its PUBREL arrived.
    func inboundQoS2Released(clientIdentifier: String, packetIdentifier: UInt16)
    /// A retained message was stored or replaced for `message.topic`.
    func retainedSet(_ message: Message)
    func retainedRemoved(topic: String)
    /// Called by `Broker.shutdown(now:)`: make everything written so far durable before returning.
    func flush()

    /// A ticket for every write made so far (by any caller), or nil when they need no waiting for (a store
    /// that promises no durability, or one that has nothing uncommitted). The engine takes one after handling
    /// a QoS 1/2 PUBLISH and holds the PUBACK/PUBREC until the ticket completes.
    func commitTicket() -> (any StoreCommitTicket)?

    /// Asked before a QoS 1/2 PUBLISH (or a retained one) is accepted: nil accepts it; a failure reason code
    /// (`.quotaExceeded` when a bound is reached, `.unspecifiedError` when the store cannot write) refuses it.
    func refusal(for message: Message) -> ReasonCode?
}

/// Completes once every write made before it was taken is durable, or cannot be made durable.
public protocol StoreCommitTicket: Sendable {
    /// Calls `callback` exactly once, on any thread: `true` once the writes are committed, `false` when the
    /// commit failed. Called at once when the ticket is already complete.
    func whenCommitted(_ callback: @escaping @Sendable (Bool) -> Void)
}

extension BrokerStore {
    public func flush() {}
    public func commitTicket() -> (any StoreCommitTicket)? { nil }
    public func refusal(for message: Message) -> ReasonCode? { nil }
}
