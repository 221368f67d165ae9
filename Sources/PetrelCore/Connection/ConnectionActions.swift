import NIOCore

/// Implemented by the server, one per connection. The engine never calls `wake()` itself: it returns wakers in
/// `ConnectionActions.wake` / `BrokerTickResult.wake`, the server calls `wake()` (batched per event loop), and
/// then calls `ConnectionStateMachine.deliverPending(now:)` for that connection on its own event loop.
public protocol DeliveryWaker: AnyObject, Sendable {
    func wake()
}

/// What the server must do after handing an event to a `ConnectionStateMachine`.
public struct ConnectionActions {
    /// Packets to write, in order.
    public var outbound: [OutboundPacket] = []
    /// Connections to wake (deduplicated within one call).
    public var wake: [any DeliveryWaker] = []
    /// Close the connection after writing `outbound`.
    public var close: Bool = false
    public var logs: [LogRecord] = []
    /// When set, `outbound` must not be written before this ticket completes, and nothing written to the
    /// connection later may overtake it. A failed ticket means the writes were not made durable: the server
    /// drops the held packets and closes the connection (the client sends its unacknowledged PUBLISHes again).
    public var commit: (any StoreCommitTicket)?
    /// When set (a refused login), `outbound` is written and the connection closed only after this long, and
    /// nothing the client sends meanwhile is read: guessing passwords costs the guesser time.
    public var answerDelay: TimeAmount?
    /// When set, the CONNECT waits for `BrokerConfiguration.externalAuthenticator`: the server asks it with
    /// these credentials and passes its verdict to `externalAuthenticationDecided(_:now:)`, handing the machine
    /// no other packet meanwhile.
    public var authenticationRequest: ConnectCredentials?
    /// When set, a packet (or the CONNECT, for its will topic) waits for `BrokerConfiguration.externalAuthorizer`:
    /// the server asks it these, and passes the answers, in this order, to `externalAuthorizationDecided(_:now:)`,
    /// handing the machine no other packet meanwhile.
    public var authorizationRequests: [AuthorizationRequest]?

    public init(
        outbound: [OutboundPacket] = [],
        wake: [any DeliveryWaker] = [],
        close: Bool = false,
        logs: [LogRecord] = []
    ) {
        self.outbound = outbound
        self.wake = wake
        self.close = close
        self.logs = logs
    }

    mutating func send(_ packet: MQTTPacket) {
        self.outbound.append(.packet(packet))
    }

    /// Appends the packets of `deliverPending`, and its commit ticket (a later ticket covers every earlier one).
    mutating func appendDeliveries(_ deliveries: ConnectionActions) {
        self.outbound.append(contentsOf: deliveries.outbound)
        if let commit = deliveries.commit { self.commit = commit }
    }

    /// Adds wakers, skipping any already present (by identity).
    mutating func addWakers(_ wakers: [any DeliveryWaker]) {
        // Routing returns each session's waker at most once, so the common case needs no comparison; merging
        // lists uses a set to stay linear in a large fan-out.
        if self.wake.isEmpty {
            self.wake = wakers
            return
        }
        var seen = Set(self.wake.map { ObjectIdentifier($0) })
        for waker in wakers where seen.insert(ObjectIdentifier(waker)).inserted {
            self.wake.append(waker)
        }
    }
}

public enum OutboundPacket {
    case packet(MQTTPacket)
    case publish(OutboundPublish)
}

/// A log line as a value: the server hands it to its logger.
public struct LogRecord: Sendable, Hashable {
    public enum Level: Sendable, Hashable {
        case trace, debug, info, notice, warning, error
    }

    public var level: Level
    public var message: String
    /// Dotted keys, e.g. `mqtt.client_id`, `mqtt.reason_code`.
    public var metadata: [String: String]

    public init(level: Level, message: String, metadata: [String: String] = [:]) {
        self.level = level
        self.message = message
        self.metadata = metadata
    }
}

extension LogRecord {
    /// A session's queue reached its bound and new messages for it are dropped (logged once per burst).
    static func queueFull(clientIdentifier: String, topic: String, overBudget: Bool = false) -> LogRecord {
        LogRecord(
            level: .warning,
            message: overBudget
                ? "Queued-message memory budget full: dropping new messages"
                : "Session queue full: dropping new messages",
            metadata: ["mqtt.client_id": clientIdentifier, "mqtt.topic": topic]
        )
    }
}
