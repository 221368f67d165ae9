import MQTTWire
import NIOCore

/// The MQTT 5 enhanced authentication state of one connection (spec 4.12): the method chosen in CONNECT and
/// the exchange in progress, if any, during CONNECT or a re-authentication. Pure; owned by one
/// `ConnectionStateMachine`.
struct EnhancedAuthentication {
    /// What the connection must do after a step.
    enum Outcome: Equatable {
        /// Send this AUTH 0x18 Continue authentication and wait [MQTT-4.12.0-2].
        case challenge(MQTTPacket.Auth)
        /// The exchange succeeded as `user`: CONNACK 0x00 (or AUTH 0x00) with the method and `data`.
        case authenticated(user: String, data: [UInt8]?)
        /// The mechanism refused: CONNACK (or DISCONNECT) with this reason code, then close [MQTT-4.12.0-4].
        case refused(ReasonCode, String)
        /// The client broke the AUTH rules: 0x82 Protocol Error, then close.
        case protocolError(String)
    }

    /// The Authentication Method of the CONNECT; every AUTH must carry the same [MQTT-4.12.0-5, MQTT-4.12.1-1].
    let method: String
    private var exchange: (any AuthenticationExchange)?

    /// True while an exchange waits for the client's next AUTH.
    var inProgress: Bool { self.exchange != nil }

    private init(method: String, exchange: (any AuthenticationExchange)?) {
        self.method = method
        self.exchange = exchange
    }

    /// Starts the exchange of a CONNECT carrying `method` and `data`. Nil when the authenticator does not
    /// support the method [MQTT-4.12.0-1].
    static func start(
        method: String,
        data: ByteBuffer?,
        authenticator: any Authenticator,
        credentials: ConnectCredentials,
        random: inout any RandomNumberGenerator
    ) -> (state: EnhancedAuthentication, outcome: Outcome)? {
        guard let exchange = authenticator.beginExchange(method: method, credentials: credentials) else { return nil }
        var state = EnhancedAuthentication(method: method, exchange: exchange)
        let outcome = state.advance(data, random: &random)
        return (state, outcome)
    }

    /// An AUTH packet from the client. During CONNECT (`connected` false) only 0x18 is valid
    /// [MQTT-4.12.0-3]; once connected, 0x19 starts a re-authentication and 0x18 continues it [MQTT-4.12.1-1].
    mutating func receive(
        _ auth: MQTTPacket.Auth,
        connected: Bool,
        authenticator: any Authenticator,
        credentials: ConnectCredentials,
        random: inout any RandomNumberGenerator
    ) -> Outcome {
        guard let method = auth.properties.authenticationMethod else {
            return .protocolError("AUTH without Authentication Method")
        }
        guard method == self.method else {
            // The same method as in CONNECT [MQTT-4.12.0-5] [MQTT-4.12.1-1].
            return .protocolError("AUTH with a different Authentication Method")
        }
        switch auth.reasonCode {
        case .continueAuthentication:
            // The answer to our AUTH 0x18 [MQTT-4.12.0-3]; without a pending challenge it is out of order.
            guard self.exchange != nil else { return .protocolError("AUTH 0x18 without an exchange in progress") }
        case .reAuthenticate:
            guard connected, self.exchange == nil else {
                return .protocolError(connected ? "AUTH 0x19 during an exchange" : "AUTH 0x19 before CONNACK")
            }
            guard let exchange = authenticator.beginExchange(method: method, credentials: credentials) else {
                return .refused(.badAuthenticationMethod, "authentication method no longer supported")
            }
            self.exchange = exchange
        default:
            // A client sends only 0x18 or 0x19 [MQTT-3.15.2-1].
            return .protocolError("AUTH with reason code \(auth.reasonCode)")
        }
        return self.advance(auth.properties.authenticationData, random: &random)
    }

    private mutating func advance(_ data: ByteBuffer?, random: inout any RandomNumberGenerator) -> Outcome {
        guard var exchange = self.exchange else { return .protocolError("no exchange in progress") }
        let bytes = data.map { Array($0.readableBytesView) } ?? []
        let step = exchange.step(bytes, random: &random)
        switch step {
        case .continue(let challenge):
            self.exchange = exchange
            var properties = MQTTProperties()
            properties.authenticationMethod = self.method
            properties.authenticationData = ByteBuffer(bytes: challenge)
            return .challenge(MQTTPacket.Auth(reasonCode: .continueAuthentication, properties: properties))
        case .success(let user, let data):
            self.exchange = nil
            return .authenticated(user: user, data: data)
        case .failure(let reason):
            self.exchange = nil
            return .refused(reason, "authentication failed")
        }
    }

    /// The properties of the successful CONNACK or AUTH 0x00: the method, and the final data if any
    /// [MQTT-4.12.0-5].
    func successProperties(data: [UInt8]?, into properties: inout MQTTProperties) {
        properties.authenticationMethod = self.method
        if let data { properties.authenticationData = ByteBuffer(bytes: data) }
    }
}
