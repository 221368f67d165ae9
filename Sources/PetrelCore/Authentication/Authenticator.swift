import MQTTWire
import NIOCore
import Synchronization

/// What a client presented in its CONNECT, handed to an `Authenticator`.
public struct ConnectCredentials: Sendable, Hashable {
    public var protocolVersion: ProtocolVersion
    public var clientIdentifier: String
    public var username: String?
    public var password: [UInt8]?
    public var remoteAddress: String

    public init(
        protocolVersion: ProtocolVersion,
        clientIdentifier: String,
        username: String?,
        password: [UInt8]?,
        remoteAddress: String
    ) {
        self.protocolVersion = protocolVersion
        self.clientIdentifier = clientIdentifier
        self.username = username
        self.password = password
        self.remoteAddress = remoteAddress
    }
}

/// The verdict on a CONNECT without an Authentication Method (every protocol version).
public enum AuthenticationDecision: Sendable, Hashable {
    /// Accepted; `user` names the authenticated identity (nil for an anonymous client).
    case accept(user: String?)
    /// Refused with a CONNACK reason code: 0x86 Bad User Name or Password or 0x87 Not authorized (3.1.1: 0x04 /
    /// 0x05, see `LegacyConnectReturnCode`).
    case refuse(ReasonCode)
}

/// One step of an MQTT 5 enhanced authentication exchange (spec 4.12), as decided by the mechanism.
public enum AuthenticationStep: Sendable, Hashable {
    /// Send AUTH 0x18 Continue authentication with this Authentication Data and wait for the client's AUTH.
    case `continue`([UInt8])
    /// Authenticated as `user`; the final Authentication Data (if any) goes into the CONNACK (or AUTH 0x00 when
    /// re-authenticating).
    case success(user: String, data: [UInt8]?)
    /// Refused: CONNACK (or, when re-authenticating, DISCONNECT) with this reason code, e.g. 0x86, 0x87, 0x8C.
    case failure(ReasonCode)
}

/// The server side of one enhanced authentication exchange: created per exchange by an `Authenticator`,
/// owned by one connection's state machine, and fed the client's Authentication Data until it decides.
/// Implementations are pure computations: no I/O, randomness only from the generator passed in.
public protocol AuthenticationExchange {
    /// Handles Authentication Data from the client: first from the CONNECT (or the re-authenticating AUTH
    /// 0x19), then from each AUTH 0x18. `data` is empty when the packet carried none.
    mutating func step(_ data: [UInt8], random: inout any RandomNumberGenerator) -> AuthenticationStep
}

/// Decides who may connect. Shared by every connection (so `Sendable`) and pure: credentials are loaded before
/// the broker starts; no file or network access happens here.
public protocol Authenticator: Sendable {
    /// A CONNECT without an Authentication Method: check the User Name and Password, or allow anonymity.
    func authenticate(_ credentials: ConnectCredentials) -> AuthenticationDecision

    /// A new exchange for the MQTT 5 Authentication Method `method`, or nil when the method is not supported
    /// (CONNACK 0x8C Bad authentication method [MQTT-4.12.0-1]).
    func beginExchange(method: String, credentials: ConnectCredentials) -> (any AuthenticationExchange)?
}

/// Lets everyone in, as an anonymous client or with any user name and password; supports no enhanced
/// authentication method. The default.
public struct AllowAllAuthenticator: Authenticator {
    public init() {}

    public func authenticate(_ credentials: ConnectCredentials) -> AuthenticationDecision {
        .accept(user: credentials.username)
    }

    public func beginExchange(method: String, credentials: ConnectCredentials) -> (any AuthenticationExchange)? {
        nil
    }
}

/// An `Authenticator` that can be replaced while the broker runs (a password file re-read on SIGHUP): each
/// CONNECT (and each enhanced authentication exchange it starts) uses the one in place when it arrives.
public final class ReplaceableAuthenticator: Authenticator {
    private let current: Mutex<any Authenticator>

    public init(_ authenticator: any Authenticator) {
        self.current = Mutex(authenticator)
    }

    public func replace(with authenticator: any Authenticator) {
        self.current.withLock { $0 = authenticator }
    }

    public func authenticate(_ credentials: ConnectCredentials) -> AuthenticationDecision {
        self.current.withLock { $0 }.authenticate(credentials)
    }

    public func beginExchange(method: String, credentials: ConnectCredentials) -> (any AuthenticationExchange)? {
        self.current.withLock { $0 }.beginExchange(method: method, credentials: credentials)
    }
}

/// Decides CONNECTs where the decision takes I/O, such as an HTTP call or a token check: the engine stays pure
/// and returns the credentials in `ConnectionActions.authenticationRequest`; the server calls `decide` and
/// feeds the verdict back to the connection. The connect timeout bounds the wait: a verdict that comes later
/// finds the connection closed.
public protocol ExternalAuthenticator: Sendable {
    func decide(_ credentials: ConnectCredentials) async -> AuthenticationVerdict
}

/// An external authenticator's answer: accept or refuse, with the rules the client gets (from a token's
/// claims, say), which replace the authorizer's for this connection.
public struct AuthenticationVerdict: Sendable {
    public var decision: AuthenticationDecision
    public var rules: ClientRules?
    /// Why it was refused, for the log line.
    public var reason: String?

    public init(decision: AuthenticationDecision, rules: ClientRules? = nil, reason: String? = nil) {
        self.decision = decision
        self.rules = rules
        self.reason = reason
    }
}
