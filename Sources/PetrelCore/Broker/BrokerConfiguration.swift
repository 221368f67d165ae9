import NIOCore

/// Limits and capabilities of a `Broker`. Every property has a default suitable for a small deployment.
public struct BrokerConfiguration: Sendable {
    /// Largest inbound packet in bytes; advertised as Maximum Packet Size in the MQTT 5 CONNACK and enforced by
    /// the decoder. Default 1 MiB (1,048,576).
    public var maximumPacketSize: UInt32 = 1_048_576
    /// Inbound QoS 1/2 PUBLISH packets a client may have unacknowledged; advertised as Receive Maximum (v5).
    /// The broker acknowledges QoS 1 at once, so in practice this bounds the QoS 2 packet identifiers awaiting
    /// PUBREL (for every protocol version). Exceeding it closes the connection (v5: DISCONNECT 0x93).
    /// Default 1024.
    public var receiveMaximum: UInt16 = 1024
    /// Outbound QoS 1/2 messages sent but not yet acknowledged per session; min'ed with the client's Receive
    /// Maximum (v5) [MQTT-3.3.4-9]. Default 32.
    public var maximumInflightMessages: Int = 32
    /// Messages waiting per session behind a full inflight window or while the session is offline. When the
    /// queue is full the NEW message is dropped (and counted in `BrokerStatistics.messagesDroppedQueueFull`).
    /// Default 1000.
    public var maximumQueuedMessages: Int = 1000
    /// Payload plus topic bytes waiting per session; same drop policy as `maximumQueuedMessages`. Default 16 MiB.
    public var maximumQueuedBytes: Int = 16 * 1024 * 1024
    /// Whether QoS 0 messages are queued for a persistent session while it is offline. Default false.
    public var queueQoS0ForOfflineSessions: Bool = false
    /// A connection that sends no CONNECT within this time is closed. Default 10 seconds.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// When set, overrides the client's Keep Alive and is sent as Server Keep Alive in the v5 CONNACK
    /// [MQTT-3.1.2-21]. Default nil (use the client's).
    public var serverKeepAlive: UInt16? = nil
    /// The longest Keep Alive a client may ask for, as Mosquitto's `max_keepalive`: an MQTT 5 client that asks
    /// for more, or for 0 (none), gets this as Server Keep Alive [MQTT-3.1.2-21]; an MQTT 3.1.1 / 3.1 client,
    /// which cannot be told, is refused with return code 2, as Mosquitto refuses it. Default nil (no bound).
    public var maximumKeepAlive: UInt16? = nil
    /// Upper bound on a session's expiry interval in seconds. A larger v5 request is lowered and the CONNACK says
    /// so; 3.1.1 persistent sessions (which never expire by the spec) are also bounded by it. Default
    /// `UInt32.max` (never expire).
    public var maximumSessionExpiryInterval: UInt32 = .max
    /// Longest accepted client identifier in bytes. MQTT 3.1 officially allows 1...23 characters; longer ones are
    /// accepted up to this limit for all versions. Default 65535.
    public var maximumClientIdentifierLength: Int = 65535
    /// Most levels a topic name or topic filter may have (a filter of 32,768 levels fits in 65,535 bytes; MQTT sets
    /// no limit, spec 4.7.3). A deeper filter is refused in its SUBACK (v5 0x97 Quota exceeded, 3.1.1 0x80), a
    /// deeper topic in its PUBACK / PUBREC (v5 0x97; v5 QoS 0 dropped; 3.1.1 closes the connection) and a deeper
    /// will topic in the CONNACK (v5 0x97). 0 sets no limit: every walk over levels is a loop, so none is needed
    /// for safety, only to bound the work one packet can ask for. Default 1,000.
    public var maximumTopicLevels: Int = 1_000
    /// Most bytes a topic name or filter may have, refused like one with too many levels. Default 65,535: the
    /// most the wire can carry [MQTT-1.5.4-1], so no limit of its own.
    public var maximumTopicLength: Int = 65_535
    /// Most bytes of queued messages in all sessions together: a global memory budget on top of the per-session
    /// bounds. A message that would go over it is dropped for that session, counted and logged once per burst.
    /// Default `.max`: no budget beyond the per-session bounds.
    public var maximumQueuedBytesTotal: Int = .max
    /// Most subscriptions one session may hold; a SUBSCRIBE for a new filter beyond it gets 0x97 Quota exceeded
    /// (3.1.1: 0x80) for that filter. Default 0: no limit.
    public var maximumSubscriptionsPerSession: Int = 0
    /// Most PUBLISH packets a client may send per second, averaged over a one-second burst; a faster client is
    /// disconnected (v5 DISCONNECT 0x96 Message rate too high). Default 0: no limit.
    public var maximumPublishRate: Int = 0
    /// Highest QoS granted to subscriptions and accepted from v5 publishers (advertised when below 2).
    /// Default `.exactlyOnce`.
    public var maximumQoS: QoS = .exactlyOnce
    /// Whether retained messages are supported (advertised as Retain Available 0 when false). Default true.
    public var retainAvailable: Bool = true
    /// Who may connect: User Name / Password checks and MQTT 5 enhanced authentication methods. Default
    /// `AllowAllAuthenticator` (anonymous clients and any credentials accepted, no enhanced method).
    public var authenticator: any Authenticator = AllowAllAuthenticator()
    /// An authenticator whose verdict takes I/O (an HTTP call, a token check with keys fetched): when set, it
    /// decides CONNECTs without an MQTT 5 Authentication Method instead of `authenticator`, which still runs
    /// enhanced authentication. The engine asks (`ConnectionActions.authenticationRequest`); the server
    /// resolves and answers. Default nil.
    public var externalAuthenticator: (any ExternalAuthenticator)? = nil
    /// A client id whose session another user opened cannot be taken over: the CONNECT is refused with 0x87 Not
    /// authorized (3.1.1: 0x05) and the session's own client stays connected. Meant for brokers that
    /// authenticate users; the store keeps the owner across restarts. Default off.
    public var sessionsBelongToTheirUser = false
    /// Slows down repeated failed logins per client address; nil answers every refusal at once.
    public var loginThrottle: LoginThrottle? = LoginThrottle()
    /// Who may publish, subscribe and receive where; nil lets every client do everything.
    public var authorizer: (any Authorizer)? = nil
    /// Access checks whose answer takes I/O (an HTTP callout), asked after `authorizer` allows, for each PUBLISH
    /// topic, SUBSCRIBE filter and will topic; the engine asks (`ConnectionActions.authorizationRequests`), the
    /// server resolves and answers. Deliveries follow from the subscribe check. Default nil.
    public var externalAuthorizer: (any ExternalAuthorizer)? = nil

    /// How a shared subscription group picks the member that receives a message. Default round robin.
    public var sharedSubscriptionStrategy: SharedSubscriptionStrategy = .roundRobin
    /// Topic aliases a client may set (advertised as Topic Alias Maximum in the v5 CONNACK); 0 refuses every
    /// Topic Alias. Default 16.
    public var topicAliasMaximum: UInt16 = 16
    /// Upper bound on the outbound topic aliases kept per connection (the client's Topic Alias Maximum is
    /// lowered to it): bounds the memory a client can make the broker spend. Default 64.
    public var maximumOutboundTopicAliases: UInt16 = 64
    /// When set, a v5 client that asks for it (Request Response Information 1) gets Response Information
    /// `"<prefix>/<client id>"` in its CONNACK. Default nil.
    public var responseInformationPrefix: String? = nil
    /// When set, every CONNECT is redirected: v5 clients get CONNACK with `redirectReasonCode` (0x9C Use another
    /// server or 0x9D Server moved) and this Server Reference; 3.1.1 clients get 0x03 Server unavailable.
    public var serverReference: String? = nil
    /// 0x9C (`.useAnotherServer`, default) or 0x9D (`.serverMoved`).
    public var redirectReasonCode: ReasonCode = .useAnotherServer
    /// Expired queued messages looked at per `Broker.tick`, across all sessions. Default 10,000.
    public var expiryPurgeBudget: Int = 10_000

    public init() {}
}
