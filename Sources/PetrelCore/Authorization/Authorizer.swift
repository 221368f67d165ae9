import Synchronization

/// Who a connection is, as far as access rules care.
public struct ClientIdentity: Sendable, Hashable {
    public var clientIdentifier: String
    /// The authenticated user name (or the one a client certificate proved); nil for an anonymous client.
    public var username: String?

    public init(clientIdentifier: String, username: String?) {
        self.clientIdentifier = clientIdentifier
        self.username = username
    }
}

/// What a client wants to do with a topic.
public enum AccessAction: Sendable, Hashable {
    /// Send a PUBLISH (and set a will) to a topic name.
    case publish
    /// Subscribe with a topic filter: the filter must be no wider than what the client may read.
    case subscribe
    /// Be sent a message published to a topic name.
    case receive
}

/// Decides which topics a client may publish to, subscribe to and receive from. Shared by every connection
/// (so `Sendable`) and pure: rules are loaded before they are used, and a check does no I/O.
///
/// A client's rules are resolved once (`rules(for:)`) and kept with its connection and its session; when the
/// rules change (a reload), `generation` changes, and kept rules are resolved again on their next use.
public protocol Authorizer: Sendable {
    var generation: UInt64 { get }
    func rules(for client: ClientIdentity) -> ClientRules
}

/// An `Authorizer` whose access control list can be replaced while the broker runs (SIGHUP): connected
/// clients are checked against the new rules from their next packet or delivery on.
public final class AccessControl: Authorizer {
    private let state: Mutex<(generation: UInt64, list: AccessControlList)>
    private let currentGeneration = Atomic<UInt64>(1)

    public init(_ list: AccessControlList) {
        self.state = Mutex((1, list))
    }

    public var generation: UInt64 { self.currentGeneration.load(ordering: .acquiring) }

    public var list: AccessControlList { self.state.withLock { $0.list } }

    public func replace(with list: AccessControlList) {
        self.state.withLock { state in
            state.generation += 1
            state.list = list
            self.currentGeneration.store(state.generation, ordering: .releasing)
        }
    }

    public func rules(for client: ClientIdentity) -> ClientRules {
        self.state.withLock { $0.list }.rules(for: client)
    }
}

/// One client's resolved rules, resolved again when the authorizer's rules change. Owned by a connection
/// (publish, subscribe) or a session (deliveries).
struct ClientAccess: Sendable {
    /// Nil for rules fixed at CONNECT (`init(fixed:)`), which no reload changes.
    let authorizer: (any Authorizer)?
    let identity: ClientIdentity?
    private var rules: ClientRules
    private var generation: UInt64

    init(fixed rules: ClientRules) {
        self.authorizer = nil
        self.identity = nil
        self.rules = rules
        self.generation = 0
    }

    init(authorizer: any Authorizer, identity: ClientIdentity) {
        self.authorizer = authorizer
        self.identity = identity
        self.generation = authorizer.generation
        self.rules = authorizer.rules(for: identity)
    }

    mutating func allows(_ action: AccessAction, _ topic: String) -> Bool {
        if let authorizer = self.authorizer, let identity = self.identity {
            let current = authorizer.generation
            if current != self.generation {
                self.generation = current
                self.rules = authorizer.rules(for: identity)
            }
        }
        return self.rules.allows(action, topic)
    }
}
