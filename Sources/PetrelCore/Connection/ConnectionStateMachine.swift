import NIOCore

/// The protocol logic of one network connection: CONNECT, PUBLISH flows in both directions, SUBSCRIBE,
/// keep alive, will and session handling. One per connection, used only on that connection's event loop (not
/// `Sendable`). Every event returns `ConnectionActions` for the server to carry out.
public struct ConnectionStateMachine {
    private enum Phase {
        case awaitingConnect
        /// CONNECT carried an Authentication Method and the exchange continues with AUTH packets (spec 4.12).
        case authenticating
        case connected
        case closed
    }

    /// What a connected connection knows. A class so that mutation never copies; owned by this struct only.
    private final class Context {
        let version: ProtocolVersion
        let clientIdentifier: String
        let session: Session
        let token: UInt64
        /// Effective keep alive in seconds (the client's, or Server Keep Alive); 0 is off.
        let keepAlive: UInt16
        var lastActivity: NIODeadline
        /// Published on an abnormal end; cleared by DISCONNECT 0x00 [MQTT-3.1.2-10]. Out of line: most clients
        /// have none, and an idle connection should not carry its size.
        var will: MQTTPacket.Will? {
            get { self.willStorage?.value }
            set { self.willStorage = newValue.map(OutOfLine.init) }
        }
        private var willStorage: OutOfLine<MQTTPacket.Will>?
        /// The session expiry interval; a v5 DISCONNECT may change it.
        var sessionExpiryInterval: UInt32
        let connectSessionExpiryWasZero: Bool
        /// The client's Maximum Packet Size (v5).
        let maximumPacketSize: UInt32?
        /// Request Problem Information (v5); false means no Reason String on acks [MQTT-3.1.2-29].
        let requestProblemInformation: Bool
        /// Topic aliases the client set on this connection (v5); never carried to another [MQTT-3.3.2-7].
        var inboundTopicAliases: [UInt16: String] = [:]
        /// Topic aliases the broker sets towards the client (v5).
        var outboundTopicAliases = OutboundTopicAliases(capacity: 0)
        /// The authenticated user (nil for an anonymous client).
        var user: String?
        /// What the access rules let this client publish and subscribe to; nil without rules.
        var access: ClientAccess?
        /// PUBLISH packets the client may still send now, with `maximumPublishRate`.
        var publishRate = PublishRateBucket()
        /// Set when the CONNECT used enhanced authentication (v5), for re-authentication; out of line, as rare.
        var reauthentication: OutOfLine<Reauthentication>?
        /// The subscribers of the topic this client last published to; made at its first PUBLISH.
        var routeCache: RouteCache?

        var identity: ClientIdentity { ClientIdentity(clientIdentifier: self.clientIdentifier, username: self.user) }

        init(
            version: ProtocolVersion,
            clientIdentifier: String,
            session: Session,
            token: UInt64,
            keepAlive: UInt16,
            lastActivity: NIODeadline,
            will: OutOfLine<MQTTPacket.Will>?,
            sessionExpiryInterval: UInt32,
            maximumPacketSize: UInt32?,
            requestProblemInformation: Bool
        ) {
            self.version = version
            self.clientIdentifier = clientIdentifier
            self.session = session
            self.token = token
            self.keepAlive = keepAlive
            self.lastActivity = lastActivity
            self.willStorage = will
            self.sessionExpiryInterval = sessionExpiryInterval
            self.connectSessionExpiryWasZero = sessionExpiryInterval == 0
            self.maximumPacketSize = maximumPacketSize
            self.requestProblemInformation = requestProblemInformation
        }
    }

    private let broker: Broker
    private let waker: any DeliveryWaker
    /// The peer's address as the server described it, for log lines.
    public let remoteAddress: String
    /// The transport of the listener that accepted the connection (`mqtt`, `mqtts`, `ws`, `wss`), for operators.
    public let listener: String
    private let openedAt: NIODeadline
    private var phase: Phase = .awaitingConnect
    private var context: Context?
    /// The version to encode with before (or without) a successful CONNECT, e.g. for a refusing CONNACK.
    private var negotiatedVersion: ProtocolVersion?
    /// Randomness for authentication mechanisms (nonces, salts); nil refuses every enhanced method.
    private var random: (any RandomNumberGenerator)?
    /// The CONNECT waiting for its enhanced authentication exchange to end.
    private var pendingConnect: PendingConnect?
    /// Set when the listener takes the user name from the transport (a TLS client certificate).
    private var transportUser: TransportUser = .fromConnect
    /// The CONNECT waiting for an `ExternalAuthenticator`'s verdict, which the server resolves.
    private var awaitingDecision: AwaitingDecision?

    private final class AwaitingDecision {
        let connect: MQTTPacket.Connect
        let credentials: ConnectCredentials

        init(connect: MQTTPacket.Connect, credentials: ConnectCredentials) {
            self.connect = connect
            self.credentials = credentials
        }
    }

    /// The packet (or CONNECT) waiting for an `ExternalAuthorizer`'s answers, which the server resolves.
    private var awaitingAuthorization: AwaitingAuthorization?
    /// While a packet that waited is handled again: the answers to its questions, by action and topic (not by
    /// client identity: a CONNECT handled again may be assigned another client identifier).
    private var externalAnswers: [AuthorizationQuestion: Bool]?

    private struct AuthorizationQuestion: Hashable {
        var action: AccessAction
        var topic: String
    }

    private final class AwaitingAuthorization {
        enum Work {
            case packet(MQTTPacket)
            case connect(
                MQTTPacket.Connect,
                user: String?,
                credentials: ConnectCredentials,
                authentication: (state: EnhancedAuthentication, data: [UInt8]?)?,
                grantedRules: ClientRules?
            )
        }

        let work: Work
        let requests: [AuthorizationRequest]

        init(work: Work, requests: [AuthorizationRequest]) {
            self.work = work
            self.requests = requests
        }
    }

    /// True while a CONNECT waits for an external authenticator, or a packet for an external authorizer: the
    /// server hands the machine no packet until it has passed the verdict to `externalAuthenticationDecided`
    /// or the answers to `externalAuthorizationDecided`.
    public var isAwaitingDecision: Bool {
        self.phase != .closed && (self.awaitingDecision != nil || self.awaitingAuthorization != nil)
    }

    /// Where a connection's user name comes from.
    public enum TransportUser: Sendable, Hashable {
        /// The CONNECT's User Name, checked by the authenticator with its Password.
        case fromConnect
        /// The name the transport proved (a verified client certificate's), or nil when it proved none: the
        /// CONNECT's User Name and Password are not looked at, and without a name the client is refused.
        case proven(String?)
    }

    /// A class: only a connection in an enhanced authentication exchange has one, and the CONNECT it holds is
    /// several hundred bytes that every other connection would otherwise carry inline.
    private final class PendingConnect {
        let connect: MQTTPacket.Connect
        let credentials: ConnectCredentials
        var authentication: EnhancedAuthentication

        init(connect: MQTTPacket.Connect, credentials: ConnectCredentials, authentication: EnhancedAuthentication) {
            self.connect = connect
            self.credentials = credentials
            self.authentication = authentication
        }
    }

    /// What re-authentication needs (spec 4.12.1): what the client presented at CONNECT, and the enhanced
    /// authentication method with any exchange in progress.
    private struct Reauthentication {
        var credentials: ConnectCredentials
        var authentication: EnhancedAuthentication
    }

    /// `random` feeds the authentication mechanisms (the server passes `SystemRandomNumberGenerator`; the
    /// engine never reaches for a random source of its own). Without one, enhanced authentication is refused.
    public init(
        broker: Broker,
        waker: any DeliveryWaker,
        remoteAddress: String,
        listener: String = "mqtt",
        now: NIODeadline,
        random: (any RandomNumberGenerator)? = nil
    ) {
        self.broker = broker
        self.waker = waker
        self.remoteAddress = remoteAddress
        self.listener = listener
        self.openedAt = now
        self.random = random
    }

    /// The transport proved who the client is (a TLS client certificate, with `--tls-use-identity-as-username`);
    /// called before the CONNECT arrives.
    public mutating func useTransportUser(_ user: TransportUser) {
        self.transportUser = user
    }

    /// True once the CONNACK accepting the client has been produced, until the connection ends.
    public var isConnected: Bool { self.phase == .connected }

    /// The keep alive in force once connected (the client's, or Server Keep Alive), in seconds; 0 is off.
    public var keepAlive: UInt16? { self.phase == .connected ? self.context?.keepAlive : nil }

    /// When `tick(now:)` may next close the connection: the connect timeout until CONNECT is accepted, then 1.5
    /// times the keep alive after the last packet received [MQTT-3.1.2-24]; nil when no timer runs (keep alive
    /// 0, or closed). The server calls `tick` once this has passed, and asks again afterwards.
    public var tickDeadline: NIODeadline? {
        switch self.phase {
        case .awaitingConnect, .authenticating:
            return self.openedAt + self.configuration.connectTimeout
        case .connected:
            guard let context = self.context, context.keepAlive > 0 else { return nil }
            return context.lastActivity + Self.keepAliveLimit(context.keepAlive)
        case .closed:
            return nil
        }
    }

    /// One and a half times the keep alive [MQTT-3.1.2-24] (v5 [MQTT-3.1.2-22]).
    private static func keepAliveLimit(_ keepAlive: UInt16) -> TimeAmount {
        .milliseconds(Int64(keepAlive) * 1500)
    }

    /// The authenticated user of a connected client; nil for an anonymous one.
    public var authenticatedUser: String? { self.context?.user }

    /// Known after CONNECT (also after a refused one, for encoding the CONNACK).
    public var protocolVersion: ProtocolVersion? { self.negotiatedVersion }

    public var clientIdentifier: String? { self.context?.clientIdentifier }

    /// The client's v5 Maximum Packet Size; the server must not send a larger packet [MQTT-3.1.2-25].
    public var maximumOutboundPacketSize: UInt32? { self.context?.maximumPacketSize }

    private var configuration: BrokerConfiguration { self.broker.configuration }

    private var baseMetadata: [String: String] {
        var metadata = ["mqtt.remote_address": self.remoteAddress]
        if let context { metadata["mqtt.client_id"] = context.clientIdentifier }
        return metadata
    }

    private func log(_ level: LogRecord.Level, _ message: String, _ extra: [String: String] = [:]) -> LogRecord {
        LogRecord(level: level, message: message, metadata: self.baseMetadata.merging(extra) { $1 })
    }

    // MARK: - Events

    public mutating func receive(_ packet: MQTTPacket, now: NIODeadline) -> ConnectionActions {
        switch self.phase {
        case .closed:
            return ConnectionActions()
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                // The first packet from the client MUST be CONNECT [MQTT-3.1.0-1].
                self.phase = .closed
                return ConnectionActions(
                    close: true,
                    logs: [self.log(.warning, "First packet is not CONNECT", ["mqtt.packet_type": "\(packet.type)"])]
                )
            }
            return self.handleConnect(connect, now: now)
        case .authenticating:
            return self.continueConnectAuthentication(packet, now: now)
        case .connected:
            guard let context = self.context else { return ConnectionActions() }
            context.lastActivity = now
            switch packet {
            case .connect:
                // A second CONNECT is a protocol error [MQTT-3.1.0-2].
                return self.protocolViolation(.protocolError, "Second CONNECT", now: now)
            case .publish(let publish):
                return self.handlePublish(publish, context: context, now: now)
            case .puback(let ack):
                return self.handleOutboundAck(.puback, ack, context: context, now: now)
            case .pubrec(let ack):
                return self.handleOutboundAck(.pubrec(failed: ack.reasonCode.isFailure), ack, context: context, now: now)
            case .pubcomp(let ack):
                return self.handleOutboundAck(.pubcomp, ack, context: context, now: now)
            case .pubrel(let ack):
                return self.handlePubrel(ack, context: context, now: now)
            case .subscribe(let subscribe):
                return self.handleSubscribe(subscribe, context: context, now: now)
            case .unsubscribe(let unsubscribe):
                return self.handleUnsubscribe(unsubscribe, context: context, now: now)
            case .pingreq:
                // [MQTT-3.12.4-1]
                return ConnectionActions(outbound: [.packet(.pingresp)])
            case .disconnect(let disconnect):
                return self.handleDisconnect(disconnect, context: context, now: now)
            case .auth(let auth):
                return self.handleReauthentication(auth, context: context, now: now)
            case .connack, .suback, .unsuback, .pingresp:
                return self.protocolViolation(.protocolError, "Server-to-client packet received", now: now)
            }
        }
    }

    /// The decoder failed (malformed packet 0x81, protocol error 0x82, packet too large 0x95, ...). A v5 client
    /// whose CONNECT was accepted gets DISCONNECT with `reason`; the connection closes; the will is published.
    public mutating func receiveError(_ error: any Error & Sendable, reason: ReasonCode, now: NIODeadline) -> ConnectionActions {
        switch self.phase {
        case .closed:
            return ConnectionActions()
        case .awaitingConnect, .authenticating:
            self.phase = .closed
            self.pendingConnect = nil
            self.awaitingDecision = nil
            self.awaitingAuthorization = nil
            return ConnectionActions(
                close: true,
                logs: [self.log(.warning, "Invalid packet before CONNECT", ["mqtt.reason_code": "\(reason)", "error": "\(error)"])]
            )
        case .connected:
            return self.protocolViolation(reason, "Invalid packet: \(error)", now: now)
        }
    }

    /// CONNECT named a protocol level the broker does not support: CONNACK 0x01 (3.x) or 0x84 (v5), close
    /// [MQTT-3.1.2-2].
    public mutating func unsupportedProtocolVersion(level: UInt8, now: NIODeadline) -> ConnectionActions {
        guard self.phase == .awaitingConnect else { return ConnectionActions() }
        self.phase = .closed
        self.negotiatedVersion = level == ProtocolVersion.v5.rawValue ? .v5 : .v3_1_1
        return ConnectionActions(
            outbound: [.packet(.connack(MQTTPacket.ConnAck(sessionPresent: false, reasonCode: .unsupportedProtocolVersion)))],
            close: true,
            logs: [self.log(.info, "Unsupported protocol level", ["mqtt.protocol_level": "\(level)"])]
        )
    }

    /// Whether an operator asked for this connection to be disconnected (the admin API). The server asks only when
    /// it would otherwise put the drain off (a socket backed up by a client that does not read): such a client is
    /// still let go at once.
    public var isDisconnectRequested: Bool {
        guard self.phase == .connected, let context = self.context else { return false }
        return context.session.isDisconnectRequested(token: context.token)
    }

    /// After `wake()`: moves queued messages into the inflight window and out. A connection whose session was
    /// taken over gets DISCONNECT 0x8E (v5) and closes [MQTT-3.1.4-3].
    public mutating func deliverPending(now: NIODeadline) -> ConnectionActions {
        guard self.phase == .connected, let context = self.context else { return ConnectionActions() }
        var actions = ConnectionActions()
        switch context.session.drain(token: context.token, now: now) {
        case .delivered(let publishes, let acknowledged):
            actions.outbound = publishes
            // A QoS 1/2 PUBLISH leaves only once its packet identifier is stored, so that after a crash it is
            // sent again with that identifier and DUP set, never as a new message.
            if acknowledged, context.session.isPersistent {
                actions.commit = self.broker.store.commitTicket()
            }
        case .notOwner(let sessionEnded):
            return self.takenOver(context: context, sessionEnded: sessionEnded, now: now)
        case .disconnectRequested:
            return self.disconnectedByOperator(context: context, now: now)
        }
        return actions
    }

    /// Connect timeout and keep alive. Call periodically (about once a second).
    public mutating func tick(now: NIODeadline) -> ConnectionActions {
        switch self.phase {
        case .closed:
            return ConnectionActions()
        case .awaitingConnect, .authenticating:
            // The connect timeout also bounds the enhanced authentication exchange.
            guard now - self.openedAt >= self.configuration.connectTimeout else { return ConnectionActions() }
            self.phase = .closed
            self.pendingConnect = nil
            self.awaitingDecision = nil
            self.awaitingAuthorization = nil
            return ConnectionActions(close: true, logs: [self.log(.info, "No CONNECT within the connect timeout")])
        case .connected:
            guard let context = self.context, context.keepAlive > 0 else { return ConnectionActions() }
            guard now - context.lastActivity > Self.keepAliveLimit(context.keepAlive) else {
                return ConnectionActions()
            }
            return self.terminate(
                context: context,
                disconnect: .keepAliveTimeout,
                publishWill: true,
                log: self.log(.info, "Keep alive timeout", ["mqtt.disconnect_cause": "keep_alive_timeout", "mqtt.keep_alive": "\(context.keepAlive)"]),
                now: now
            )
        }
    }

    /// The transport is gone (error, EOF, or after we closed). Publishes the will unless the client sent a
    /// normal DISCONNECT, and detaches (or ends) the session.
    public mutating func connectionClosed(now: NIODeadline) -> ConnectionActions {
        switch self.phase {
        case .closed:
            return ConnectionActions()
        case .awaitingConnect, .authenticating:
            self.phase = .closed
            self.pendingConnect = nil
            self.awaitingDecision = nil
            self.awaitingAuthorization = nil
            return ConnectionActions()
        case .connected:
            guard let context = self.context else { return ConnectionActions() }
            var actions = self.terminate(
                context: context,
                disconnect: nil,
                publishWill: true,
                log: self.log(.info, "Connection lost", ["mqtt.disconnect_cause": "connection_lost"]),
                now: now
            )
            actions.close = false
            return actions
        }
    }

    /// The server is stopping: v5 DISCONNECT 0x8B, then close. The will IS published: the server closes the
    /// connection without the client having sent DISCONNECT, which the spec lists as a will trigger (3.1.2.5).
    public mutating func shutdown(now: NIODeadline) -> ConnectionActions {
        switch self.phase {
        case .closed:
            return ConnectionActions()
        case .awaitingConnect, .authenticating:
            self.phase = .closed
            self.pendingConnect = nil
            self.awaitingDecision = nil
            self.awaitingAuthorization = nil
            return ConnectionActions(close: true)
        case .connected:
            guard let context = self.context else { return ConnectionActions() }
            return self.terminate(
                context: context,
                disconnect: .serverShuttingDown,
                publishWill: true,
                log: self.log(.info, "Server shutting down", ["mqtt.disconnect_cause": "server_shutting_down"]),
                now: now
            )
        }
    }

    /// The server did not send `publish` because it exceeds the client's Maximum Packet Size: it is discarded
    /// as if it had completed [MQTT-3.1.2-25], freeing its packet identifier and inflight slot.
    public mutating func outboundPublishTooLarge(_ publish: OutboundPublish, now: NIODeadline) -> ConnectionActions {
        guard self.phase == .connected, let context = self.context else { return ConnectionActions() }
        self.broker.counters.messagesDroppedTooLarge.wrappingAdd(1, ordering: .relaxed)
        var actions = ConnectionActions(
            logs: [self.log(.debug, "Outbound PUBLISH larger than the client's Maximum Packet Size dropped", ["mqtt.topic": publish.message.topic])]
        )
        if let alias = publish.topicAlias, !publish.omitsTopic {
            // The alias was never sent with its topic: the client does not know it.
            context.outboundTopicAliases.forget(alias)
        }
        if let identifier = publish.packetIdentifier, publish.qos != .atMostOnce {
            if context.session.discardInflight(packetIdentifier: identifier, token: context.token) {
                actions.appendDeliveries(self.deliverPending(now: now))
            }
        }
        return actions
    }

    /// Called by the server right before it encodes `publish`, in send order: gives the delivery an outbound
    /// Topic Alias when the client accepts them (v5 Topic Alias Maximum > 0), sending the topic with a new
    /// alias once and then the alias with an empty topic.
    public mutating func prepareForSending(_ publish: OutboundPublish) -> OutboundPublish {
        guard let context, context.version.isV5 else { return publish }
        var prepared = publish
        switch context.outboundTopicAliases.assign(publish.message.topic) {
        case .none:
            break
        case .set(let alias):
            prepared.topicAlias = alias
        case .use(let alias):
            prepared.topicAlias = alias
            prepared.omitsTopic = true
        }
        return prepared
    }

    /// A Reason String for an acknowledgement, only when the client did not set Request Problem Information
    /// to 0 [MQTT-3.1.2-29] (v5 only). The broker adds no User Properties of its own.
    private func problem(_ reasonString: String?, _ context: Context) -> MQTTProperties {
        var properties = MQTTProperties()
        if let reasonString, context.version.isV5, context.requestProblemInformation {
            properties.reasonString = reasonString
        }
        return properties
    }

    /// The server could not send a packet other than PUBLISH within the client's Maximum Packet Size, even
    /// without its Reason String and User Properties: it was dropped [MQTT-3.1.2-25]. Counted.
    public mutating func outboundPacketTooLarge(_ packet: MQTTPacket) -> ConnectionActions {
        self.broker.counters.packetsDroppedTooLarge.wrappingAdd(1, ordering: .relaxed)
        return ConnectionActions(logs: [self.log(.debug, "Outbound packet larger than the client's Maximum Packet Size dropped", ["mqtt.packet_type": "\(packet.type)"])])
    }

    // MARK: - Ending the connection

    /// Closes for a protocol violation: v5 DISCONNECT with `reason`, close, will published; one warning log.
    private mutating func protocolViolation(_ reason: ReasonCode, _ description: String, now: NIODeadline) -> ConnectionActions {
        guard let context = self.context else {
            self.phase = .closed
            return ConnectionActions(close: true, logs: [self.log(.warning, description)])
        }
        return self.terminate(
            context: context,
            disconnect: reason,
            reasonString: description,
            publishWill: true,
            log: self.log(.warning, "Protocol violation: \(description)", ["mqtt.disconnect_cause": "protocol_error", "mqtt.reason_code": "\(reason)"]),
            now: now
        )
    }

    /// The single exit of a connected connection: optional v5 DISCONNECT, close, session detached, will.
    private mutating func terminate(
        context: Context,
        disconnect: ReasonCode?,
        reasonString: String? = nil,
        publishWill: Bool,
        log: LogRecord,
        now: NIODeadline
    ) -> ConnectionActions {
        // Every way a connected client goes says so in one line, with its keep alive; its cause is in the line.
        var log = log
        log.metadata["mqtt.keep_alive"] = "\(context.keepAlive)"
        var actions = ConnectionActions(close: true, logs: [log])
        if let disconnect, context.version.isV5 {
            // A Reason String may go on DISCONNECT even when the client set Request Problem Information to 0
            // [MQTT-3.1.2-29]; it is dropped first if the packet is too large for the client [MQTT-3.1.2-25].
            var properties = MQTTProperties()
            properties.reasonString = reasonString
            actions.send(.disconnect(MQTTPacket.Disconnect(reasonCode: disconnect, properties: properties)))
        }
        self.phase = .closed
        let routed = self.broker.connectionEnded(
            session: context.session,
            token: context.token,
            protocolVersion: context.version,
            will: publishWill ? context.will : nil,
            now: now
        )
        context.will = nil
        actions.addWakers(routed.wakers)
        actions.logs.append(contentsOf: routed.logs)
        return actions
    }

    private mutating func takenOver(context: Context, sessionEnded: Bool, now: NIODeadline) -> ConnectionActions {
        // An operator's removal of the session also leaves the connection without it: it says why it closes.
        if context.session.isDisconnectRequested(token: context.token) {
            return self.disconnectedByOperator(context: context, now: now)
        }
        return self.terminate(
            context: context,
            disconnect: .sessionTakenOver,
            publishWill: true,
            log: self.log(.info, "Session taken over by a new connection", ["mqtt.disconnect_cause": "session_taken_over"]),
            now: now
        )
    }

    /// An operator disconnected the client (the admin API): v5 DISCONNECT 0x98 Administrative action, then close.
    /// The will is published: the server closes the connection without having received DISCONNECT 0x00
    /// [MQTT-3.1.2-8], and (v5) after its Will Delay Interval unless the session ends first.
    private mutating func disconnectedByOperator(context: Context, now: NIODeadline) -> ConnectionActions {
        self.terminate(
            context: context,
            disconnect: .administrativeAction,
            publishWill: true,
            log: self.log(.info, "Disconnected by an operator", ["mqtt.disconnect_cause": "administrative_action"]),
            now: now
        )
    }

    // MARK: - CONNECT

    private mutating func refuseConnect(_ reason: ReasonCode, _ description: String) -> ConnectionActions {
        self.phase = .closed
        self.pendingConnect = nil
        return ConnectionActions(
            outbound: [.packet(.connack(MQTTPacket.ConnAck(sessionPresent: false, reasonCode: reason)))],
            close: true,
            logs: [self.log(.info, "CONNECT refused: \(description)", ["mqtt.reason_code": "\(reason)"])]
        )
    }

    /// A login the authenticator refused: counted, and answered after the throttle's delay for the client's
    /// address, which grows with each failure from it.
    private mutating func refuseLogin(_ reason: ReasonCode, _ description: String, now: NIODeadline) -> ConnectionActions {
        self.broker.counters.authenticationFailures.wrappingAdd(1, ordering: .relaxed)
        var actions = self.refuseConnect(reason, description)
        if let throttle = self.configuration.loginThrottle {
            let delay = throttle.failed(from: LoginThrottle.host(of: self.remoteAddress), now: now)
            actions.answerDelay = delay
            actions.logs[0].metadata["petrel.answer_delay_ms"] = "\(delay.nanoseconds / 1_000_000)"
        }
        return actions
    }

    /// Server redirection (spec 4.11): v5 CONNACK 0x9C Use another server or 0x9D Server moved with the Server
    /// Reference; 3.1.1 CONNACK 0x03 Server unavailable (the encoder maps any other code to it). Then close.
    private mutating func redirect(to reference: String, version: ProtocolVersion) -> ConnectionActions {
        self.phase = .closed
        let reason = self.configuration.redirectReasonCode
        var properties = MQTTProperties()
        if version.isV5 { properties.serverReference = reference }
        return ConnectionActions(
            outbound: [.packet(.connack(MQTTPacket.ConnAck(sessionPresent: false, reasonCode: reason, properties: properties)))],
            close: true,
            logs: [self.log(.info, "CONNECT redirected", ["mqtt.server_reference": reference, "mqtt.reason_code": "\(reason)"])]
        )
    }

    private mutating func handleConnect(_ connect: MQTTPacket.Connect, now: NIODeadline) -> ConnectionActions {
        self.negotiatedVersion = connect.protocolVersion
        // Server redirection comes before authentication: the client is to go elsewhere (spec 4.11).
        if let reference = self.configuration.serverReference {
            return self.redirect(to: reference, version: connect.protocolVersion)
        }
        return self.authenticateConnect(connect, now: now)
    }

    /// The rest of CONNECT once the client is authenticated; `authentication` carries the enhanced method and
    /// its final data for the CONNACK.
    private mutating func acceptConnect(
        _ connect: MQTTPacket.Connect,
        user: String?,
        credentials: ConnectCredentials,
        authentication: (state: EnhancedAuthentication, data: [UInt8]?)?,
        grantedRules: ClientRules? = nil,
        now: NIODeadline
    ) -> ConnectionActions {
        let configuration = self.configuration
        let version = connect.protocolVersion
        self.pendingConnect = nil

        var clientIdentifier = connect.clientIdentifier
        var assigned = false
        if clientIdentifier.isEmpty {
            switch version {
            case .v3_1:
                // MQTT 3.1 requires 1 to 23 characters.
                return self.refuseConnect(.clientIdentifierNotValid, "empty client identifier (3.1)")
            case .v3_1_1:
                // [MQTT-3.1.3-8]: zero-length id with Clean Session 0 is refused with 0x02.
                guard connect.cleanStart else {
                    return self.refuseConnect(.clientIdentifierNotValid, "empty client identifier without clean session")
                }
                clientIdentifier = self.broker.assignClientIdentifier()  // [MQTT-3.1.3-6]
            case .v5:
                clientIdentifier = self.broker.assignClientIdentifier()  // [MQTT-3.1.3-6]
                assigned = true
            }
        }
        guard clientIdentifier.utf8.count <= configuration.maximumClientIdentifierLength else {
            return self.refuseConnect(.clientIdentifierNotValid, "client identifier too long")
        }

        var will = connect.will
        if let connectWill = will {
            guard MQTTTopic.isValidTopicName(connectWill.topic) else {
                return self.refuseConnect(.topicNameInvalid, "invalid will topic")
            }
            if let excess = self.topicLimitExceeded(connectWill.topic) {
                return self.refuseConnect(.quotaExceeded, "will topic \(excess)")
            }
            // The Will's Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
            if version.isV5, let responseTopic = connectWill.properties.responseTopic, MQTTTopic.hasWildcard(responseTopic) {
                return self.refuseConnect(.protocolError, "wildcard in the will's Response Topic")
            }
            if connectWill.qos > configuration.maximumQoS {
                // v5: [MQTT-3.2.2-12]. 3.1.1 cannot refuse: the will is published at the maximum QoS.
                if version.isV5 { return self.refuseConnect(.qosNotSupported, "will QoS above maximum") }
                will?.qos = configuration.maximumQoS
            }
            if connectWill.retain && !configuration.retainAvailable {
                // v5: [MQTT-3.2.2-13]. 3.1.1: published without retaining.
                if version.isV5 { return self.refuseConnect(.retainNotSupported, "will retain not available") }
                will?.retain = false
            }
            // The will lives as long as the session: its payload and correlation data get storage of their own
            // rather than holding on to the whole buffer the CONNECT was read into.
            will?.payload = ByteBuffer(bytes: connectWill.payload.readableBytesView)
            if let data = connectWill.properties.correlationData {
                will?.properties.correlationData = ByteBuffer(bytes: data.readableBytesView)
            }
        }

        // Session expiry: v5 property (absent = 0); 3.1.1 Clean Session 0 keeps the session, 1 ends it.
        let requestedExpiry: UInt32
        if version.isV5 {
            requestedExpiry = connect.properties.sessionExpiryInterval ?? 0
        } else {
            requestedExpiry = connect.cleanStart ? 0 : .max
        }
        let expiry = min(requestedExpiry, configuration.maximumSessionExpiryInterval)

        var keepAlive = configuration.serverKeepAlive ?? connect.keepAlive
        var serverKeepAlive = configuration.serverKeepAlive
        if serverKeepAlive == nil, let maximum = configuration.maximumKeepAlive, keepAlive == 0 || keepAlive > maximum {
            guard version.isV5 else {
                // 3.1.1 has no Server Keep Alive: CONNACK 0x02 Identifier rejected, as Mosquitto answers.
                return self.refuseConnect(.clientIdentifierNotValid, "keep alive \(keepAlive) s above the maximum of \(maximum) s")
            }
            keepAlive = maximum
            serverKeepAlive = maximum
        }
        var inflightLimit = configuration.maximumInflightMessages
        if version.isV5, let receiveMaximum = connect.properties.receiveMaximum {
            inflightLimit = min(inflightLimit, Int(receiveMaximum))  // [MQTT-3.3.4-9]
        }
        inflightLimit = max(1, min(inflightLimit, Int(UInt16.max)))

        // The access rules apply to the will as to a PUBLISH from this client.
        // Rules that came with the verdict (a token's claims) replace the authorizer's for this client.
        var access = grantedRules.map { ClientAccess(fixed: $0) } ?? configuration.authorizer.map {
            ClientAccess(authorizer: $0, identity: ClientIdentity(clientIdentifier: clientIdentifier, username: user))
        }
        if let willTopic = will?.topic, access?.allows(.publish, willTopic) == false {
            self.broker.counters.publishesDenied.wrappingAdd(1, ordering: .relaxed)
            return self.refuseConnect(.notAuthorized, "the access rules do not allow the will topic")
        }
        if let willTopic = will?.topic, let authorizer = configuration.externalAuthorizer {
            let request = AuthorizationRequest(
                identity: ClientIdentity(clientIdentifier: clientIdentifier, username: user),
                action: .publish,
                topic: willTopic
            )
            guard let allowed = self.externalDecision(request, authorizer, now: now) else {
                self.phase = .authenticating
                return self.waitForAuthorization(
                    .connect(connect, user: user, credentials: credentials, authentication: authentication, grantedRules: grantedRules),
                    asking: [request]
                )
            }
            if !allowed {
                self.broker.counters.publishesDenied.wrappingAdd(1, ordering: .relaxed)
                return self.refuseConnect(.notAuthorized, "the external authorizer does not allow the will topic")
            }
        }

        if configuration.sessionsBelongToTheirUser, self.broker.sessionBelongsToAnotherUser(clientIdentifier, than: user) {
            return self.refuseConnect(.notAuthorized, "the client identifier's session belongs to another user")
        }

        let token = self.broker.nextToken()
        // One copy of the will, shared by the connection and its session.
        let willStorage = will.map(OutOfLine.init)
        let opening = self.broker.openSession(
            clientIdentifier: clientIdentifier,
            cleanStart: connect.cleanStart,
            protocolVersion: version,
            expiryInterval: expiry,
            inflightLimit: inflightLimit,
            will: willStorage,
            access: access,
            username: user,
            connection: ConnectionDescription(
                remoteAddress: self.remoteAddress,
                listener: self.listener,
                keepAlive: keepAlive,
                cleanStart: connect.cleanStart
            ),
            token: token,
            waker: self.waker
        )
        let context = Context(
            version: version,
            clientIdentifier: clientIdentifier,
            session: opening.session,
            token: token,
            keepAlive: keepAlive,
            lastActivity: now,
            will: willStorage,
            sessionExpiryInterval: expiry,
            maximumPacketSize: version.isV5 ? connect.properties.maximumPacketSize : nil,
            requestProblemInformation: (connect.properties.requestProblemInformation ?? 1) != 0
        )
        if version.isV5 {
            context.outboundTopicAliases = OutboundTopicAliases(
                capacity: Int(min(connect.properties.topicAliasMaximum ?? 0, configuration.maximumOutboundTopicAliases))
            )
        }
        context.user = user
        context.access = access
        if user != nil, let throttle = configuration.loginThrottle {
            throttle.succeeded(from: LoginThrottle.host(of: self.remoteAddress))
        }
        if let authentication {
            context.reauthentication = OutOfLine(
                Reauthentication(credentials: credentials, authentication: authentication.state)
            )
        }
        self.context = context
        self.phase = .connected
        let connected = self.broker.counters.connectionsCurrent.wrappingAdd(1, ordering: .relaxed).newValue
        _ = self.broker.counters.connectionsMaximum.max(connected, ordering: .relaxed)
        self.broker.counters.connectionsTotal.wrappingAdd(1, ordering: .relaxed)

        var properties = MQTTProperties()
        if version.isV5 {
            if configuration.receiveMaximum != .max { properties.receiveMaximum = configuration.receiveMaximum }
            if configuration.maximumQoS < .exactlyOnce { properties.maximumQoS = configuration.maximumQoS.rawValue }
            if !configuration.retainAvailable { properties.retainAvailable = 0 }
            properties.maximumPacketSize = configuration.maximumPacketSize
            properties.topicAliasMaximum = configuration.topicAliasMaximum
            properties.wildcardSubscriptionAvailable = 1
            properties.subscriptionIdentifierAvailable = 1
            properties.sharedSubscriptionAvailable = 1
            properties.serverKeepAlive = serverKeepAlive  // [MQTT-3.1.2-21]
            if expiry != requestedExpiry { properties.sessionExpiryInterval = expiry }
            if assigned { properties.assignedClientIdentifier = clientIdentifier }  // [MQTT-3.2.2-16]
            // Response Information only when asked for (Request Response Information 1) and configured
            // (spec 3.1.2.11.7, 3.2.2.3.15, 4.10).
            if connect.properties.requestResponseInformation == 1, let prefix = configuration.responseInformationPrefix {
                properties.responseInformation = prefix.isEmpty ? clientIdentifier : prefix + "/" + clientIdentifier
            }
            // The same Authentication Method as the CONNECT, and the final data [MQTT-4.12.0-5]; none when the
            // CONNECT had none [MQTT-4.12.0-6].
            if let authentication { authentication.state.successProperties(data: authentication.data, into: &properties) }
        }
        // Session Present: 0 for a new session, 1 for a resumed one [MQTT-3.2.2-1, MQTT-3.2.2-2, MQTT-3.2.2-3].
        var actions = ConnectionActions(
            outbound: [
                .packet(.connack(MQTTPacket.ConnAck(sessionPresent: opening.sessionPresent, reasonCode: .success, properties: properties)))
            ],
            logs: [
                self.log(
                    .info,
                    "Client connected",
                    [
                        "mqtt.protocol_version": "\(version.rawValue)",
                        "mqtt.clean_start": "\(connect.cleanStart)",
                        "mqtt.session_present": "\(opening.sessionPresent)",
                        "mqtt.keep_alive": "\(keepAlive)",
                        "mqtt.user": user ?? "",
                    ]
                )
            ]
        )
        if let previous = opening.previousOwner {
            actions.addWakers([previous])
        }
        actions.addWakers(opening.wakers)
        if opening.sessionPresent {
            // Resend unacknowledged PUBLISH (DUP=1) and PUBREL in their original order [MQTT-4.4.0-1].
            actions.outbound.append(contentsOf: opening.session.retransmissions(token: token, now: now))
        }
        actions.appendDeliveries(self.deliverPending(now: now))
        return actions
    }

    // MARK: - Authentication

    /// Plain User Name / Password (every version) or, when a v5 CONNECT names an Authentication Method, the
    /// first step of enhanced authentication (spec 4.12).
    private mutating func authenticateConnect(_ connect: MQTTPacket.Connect, now: NIODeadline) -> ConnectionActions {
        let version = connect.protocolVersion
        let credentials = ConnectCredentials(
            protocolVersion: version,
            clientIdentifier: connect.clientIdentifier,
            username: connect.username,
            password: connect.password.map { Array($0.readableBytesView) },
            remoteAddress: self.remoteAddress
        )
        let authenticator = self.configuration.authenticator
        // Authentication Data without an Authentication Method is a Protocol Error (spec 3.1.2.11.10).
        if version.isV5, connect.properties.authenticationMethod == nil, connect.properties.authenticationData != nil {
            return self.refuseConnect(.protocolError, "Authentication Data without Authentication Method")
        }
        if case .proven(let name) = self.transportUser {
            // Mosquitto's use_identity_as_username: the certificate is the credential.
            guard let name else {
                return self.refuseConnect(.notAuthorized, "no client certificate to take the user name from")
            }
            var proven = credentials
            proven.username = name
            proven.password = nil
            return self.acceptConnect(connect, user: name, credentials: proven, authentication: nil, now: now)
        }
        if self.configuration.externalAuthenticator != nil, !(version.isV5 && connect.properties.authenticationMethod != nil) {
            // The verdict takes I/O: the server asks and passes it back; the connect timeout still runs.
            self.phase = .authenticating
            self.awaitingDecision = AwaitingDecision(connect: connect, credentials: credentials)
            var actions = ConnectionActions()
            actions.authenticationRequest = credentials
            return actions
        }
        guard version.isV5, let method = connect.properties.authenticationMethod else {
            switch authenticator.authenticate(credentials) {
            case .accept(let user):
                return self.acceptConnect(connect, user: user, credentials: credentials, authentication: nil, now: now)
            case .refuse(let reason):
                // 0x86 / 0x87 (3.1.1: 0x04 / 0x05 when encoded).
                return self.refuseLogin(reason, "authentication failed", now: now)
            }
        }
        guard var random = self.random,
            let started = EnhancedAuthentication.start(
                method: method,
                data: connect.properties.authenticationData,
                authenticator: authenticator,
                credentials: credentials,
                random: &random
            )
        else {
            // Unsupported Authentication Method: CONNACK 0x8C and close [MQTT-4.12.0-1].
            return self.refuseConnect(.badAuthenticationMethod, "unsupported authentication method \(method)")
        }
        self.random = random
        self.pendingConnect = PendingConnect(connect: connect, credentials: credentials, authentication: started.state)
        return self.connectAuthenticationOutcome(started.outcome, now: now)
    }

    /// An `ExternalAuthenticator`'s verdict on the CONNECT that asked for it (`authenticationRequest`): the
    /// CONNACK, as for any other authenticator; refusals are counted and slowed down alike.
    public mutating func externalAuthenticationDecided(_ verdict: AuthenticationVerdict, now: NIODeadline) -> ConnectionActions {
        guard self.phase == .authenticating, let pending = self.awaitingDecision else { return ConnectionActions() }
        self.awaitingDecision = nil
        switch verdict.decision {
        case .accept(let user):
            return self.acceptConnect(
                pending.connect,
                user: user,
                credentials: pending.credentials,
                authentication: nil,
                grantedRules: verdict.rules,
                now: now
            )
        case .refuse(.serverUnavailable):
            // The authenticator could not decide (its service did not answer): not a failed login.
            return self.refuseConnect(.serverUnavailable, verdict.reason ?? "the authenticator could not decide")
        case .refuse(let reason):
            return self.refuseLogin(reason, verdict.reason ?? "authentication failed", now: now)
        }
    }

    /// The answers of an `ExternalAuthorizer` to `ConnectionActions.authorizationRequests`, in their order: the
    /// packet that waited is handled again with them (a missing answer denies).
    public mutating func externalAuthorizationDecided(_ answers: [Bool], now: NIODeadline) -> ConnectionActions {
        guard let waiting = self.awaitingAuthorization else { return ConnectionActions() }
        self.awaitingAuthorization = nil
        var known: [AuthorizationQuestion: Bool] = [:]
        for (index, request) in waiting.requests.enumerated() {
            known[AuthorizationQuestion(action: request.action, topic: request.topic)] = index < answers.count && answers[index]
        }
        self.externalAnswers = known
        defer { self.externalAnswers = nil }
        switch waiting.work {
        case .packet(let packet):
            guard self.phase == .connected else { return ConnectionActions() }
            return self.receive(packet, now: now)
        case .connect(let connect, let user, let credentials, let authentication, let grantedRules):
            guard self.phase == .authenticating else { return ConnectionActions() }
            return self.acceptConnect(
                connect,
                user: user,
                credentials: credentials,
                authentication: authentication,
                grantedRules: grantedRules,
                now: now
            )
        }
    }

    /// The external authorizer's answer: one the server brought for the packet handled again, else a cached
    /// one; nil to ask. A packet handled again never waits twice: what it has no answer for is denied.
    private func externalDecision(_ request: AuthorizationRequest, _ authorizer: any ExternalAuthorizer, now: NIODeadline) -> Bool? {
        guard let answers = self.externalAnswers else { return authorizer.cachedDecision(request, now: now) }
        return answers[AuthorizationQuestion(action: request.action, topic: request.topic)]
            ?? authorizer.cachedDecision(request, now: now) ?? false
    }

    private mutating func waitForAuthorization(_ work: AwaitingAuthorization.Work, asking requests: [AuthorizationRequest]) -> ConnectionActions {
        self.awaitingAuthorization = AwaitingAuthorization(work: work, requests: requests)
        var actions = ConnectionActions()
        actions.authorizationRequests = requests
        return actions
    }

    /// A packet while the CONNECT's exchange is in progress: only AUTH and DISCONNECT are allowed
    /// [MQTT-3.1.2-30]; anything else is a protocol error (CONNACK 0x82, close).
    private mutating func continueConnectAuthentication(_ packet: MQTTPacket, now: NIODeadline) -> ConnectionActions {
        if self.awaitingDecision != nil || self.awaitingAuthorization != nil {
            // The server holds packets back until the verdict; one that arrives anyway cannot be ordered.
            return self.refuseConnect(.protocolError, "\(packet.type) while the CONNECT awaits its authentication")
        }
        guard let pending = self.pendingConnect, var random = self.random else {
            return self.refuseConnect(.protocolError, "no authentication in progress")
        }
        switch packet {
        case .auth(let auth):
            let outcome = pending.authentication.receive(
                auth,
                connected: false,
                authenticator: self.configuration.authenticator,
                credentials: pending.credentials,
                random: &random
            )
            self.random = random
            return self.connectAuthenticationOutcome(outcome, now: now)
        case .disconnect:
            self.phase = .closed
            self.pendingConnect = nil
            self.awaitingDecision = nil
            self.awaitingAuthorization = nil
            return ConnectionActions(close: true, logs: [self.log(.info, "Client disconnected during authentication")])
        default:
            return self.refuseConnect(.protocolError, "\(packet.type) before CONNACK during authentication")
        }
    }

    private mutating func connectAuthenticationOutcome(_ outcome: EnhancedAuthentication.Outcome, now: NIODeadline) -> ConnectionActions {
        guard let pending = self.pendingConnect else { return self.refuseConnect(.protocolError, "no authentication in progress") }
        switch outcome {
        case .challenge(let auth):
            // AUTH 0x18 with the same method [MQTT-4.12.0-2] [MQTT-4.12.0-5].
            self.phase = .authenticating
            return ConnectionActions(outbound: [.packet(.auth(auth))])
        case .authenticated(let user, let data):
            return self.acceptConnect(
                pending.connect,
                user: user,
                credentials: pending.credentials,
                authentication: (pending.authentication, data),
                now: now
            )
        case .refused(let reason, let description):
            // CONNACK >= 0x80 and close [MQTT-4.12.0-4].
            if reason == .badUserNameOrPassword || reason == .notAuthorized {
                return self.refuseLogin(reason, description, now: now)
            }
            return self.refuseConnect(reason, description)
        case .protocolError(let description):
            return self.refuseConnect(.protocolError, description)
        }
    }

    /// AUTH after CONNACK: re-authentication (spec 4.12.1). Only for a client that used an Authentication
    /// Method at CONNECT [MQTT-4.12.0-7]; success answers AUTH 0x00, failure DISCONNECT with the reason and close
    /// [MQTT-4.12.1-2].
    private mutating func handleReauthentication(_ auth: MQTTPacket.Auth, context: Context, now: NIODeadline) -> ConnectionActions {
        guard let reauthentication = context.reauthentication?.value else {
            return self.protocolViolation(.protocolError, "AUTH without an Authentication Method at CONNECT", now: now)
        }
        guard var random = self.random else {
            return self.protocolViolation(.badAuthenticationMethod, "no random source for re-authentication", now: now)
        }
        var authentication = reauthentication.authentication
        let outcome = authentication.receive(
            auth,
            connected: true,
            authenticator: self.configuration.authenticator,
            credentials: reauthentication.credentials,
            random: &random
        )
        self.random = random
        context.reauthentication = OutOfLine(
            Reauthentication(credentials: reauthentication.credentials, authentication: authentication)
        )
        switch outcome {
        case .challenge(let challenge):
            return ConnectionActions(outbound: [.packet(.auth(challenge))])
        case .authenticated(let user, let data):
            guard user == context.user else {
                // A connection keeps its identity: re-authenticating as someone else is refused.
                return self.terminate(
                    context: context,
                    disconnect: .notAuthorized,
                    publishWill: true,
                    log: self.log(.warning, "Re-authentication as a different user", ["mqtt.disconnect_cause": "reauthentication_failed", "mqtt.user": user]),
                    now: now
                )
            }
            var properties = MQTTProperties()
            authentication.successProperties(data: data, into: &properties)
            return ConnectionActions(
                outbound: [.packet(.auth(MQTTPacket.Auth(reasonCode: .success, properties: properties)))],
                logs: [self.log(.info, "Client re-authenticated", ["mqtt.user": user])]
            )
        case .refused(let reason, let description):
            return self.terminate(
                context: context,
                disconnect: reason,
                publishWill: true,
                log: self.log(.warning, "Re-authentication failed: \(description)", ["mqtt.disconnect_cause": "reauthentication_failed", "mqtt.reason_code": "\(reason)"]),
                now: now
            )
        case .protocolError(let description):
            return self.protocolViolation(.protocolError, description, now: now)
        }
    }

    // MARK: - PUBLISH in

    private mutating func handlePublish(_ publish: MQTTPacket.Publish, context: Context, now: NIODeadline) -> ConnectionActions {
        let configuration = self.configuration
        let v5 = context.version.isV5
        // A PUBLISH handled again after its authorization was counted when it arrived.
        let publishRate = self.broker.limits.maximumPublishRate
        if publishRate > 0, self.externalAnswers == nil,
            !context.publishRate.take(now: now, rate: publishRate)
        {
            self.broker.counters.clientsDisconnectedPublishRate.wrappingAdd(1, ordering: .relaxed)
            return self.protocolViolation(
                .messageRateTooHigh,
                "more than \(publishRate) PUBLISH packets per second",
                now: now
            )
        }
        var topic = publish.topic
        if v5, let alias = publish.properties.topicAlias {
            // Alias 0 [MQTT-3.3.2-8] or above the Topic Alias Maximum of the CONNACK [MQTT-3.3.2-9]: 0x94. Every
            // alias from 1 to that maximum is accepted [MQTT-3.3.2-12].
            guard alias != 0, alias <= configuration.topicAliasMaximum else {
                return self.protocolViolation(.topicAliasInvalid, "Topic Alias \(alias) out of range", now: now)
            }
            if topic.isEmpty {
                guard let known = context.inboundTopicAliases[alias] else {
                    return self.protocolViolation(.protocolError, "Topic Alias \(alias) used before it was set", now: now)
                }
                topic = known
            } else {
                context.inboundTopicAliases[alias] = topic
            }
        }
        // The decoder has checked a non-empty topic name [MQTT-3.3.2-2, MQTT-4.7.3-1]; an alias only ever
        // stands for such a name.
        if topic.isEmpty {
            return self.protocolViolation(.protocolError, "Empty topic without Topic Alias", now: now)
        }
        if v5, !publish.properties.subscriptionIdentifiers.isEmpty {
            // A PUBLISH from a client must not carry a Subscription Identifier [MQTT-3.3.4-6].
            return self.protocolViolation(.protocolError, "Subscription Identifier in PUBLISH", now: now)
        }
        if v5, publish.qos > configuration.maximumQoS {
            return self.protocolViolation(.qosNotSupported, "QoS above Maximum QoS", now: now)  // [MQTT-3.2.2-11]
        }
        if v5, publish.retain, !configuration.retainAvailable {
            return self.protocolViolation(.retainNotSupported, "Retain not available", now: now)  // [MQTT-3.2.2-14]
        }
        if publish.qos != .atMostOnce && publish.packetIdentifier == nil {
            return self.protocolViolation(.malformedPacket, "QoS > 0 PUBLISH without packet identifier", now: now)
        }
        if v5, let responseTopic = publish.properties.responseTopic, MQTTTopic.hasWildcard(responseTopic) {
            return self.protocolViolation(.protocolError, "wildcard in Response Topic", now: now)  // [MQTT-3.3.2-14]
        }
        if let excess = self.topicLimitExceeded(topic) {
            return self.refuseDeepTopic(publish, excess: excess, context: context, now: now)
        }
        if context.access?.allows(.publish, topic) == false {
            return self.refuseByAccessRules(publish, topic: topic, context: context, now: now)
        }
        if let authorizer = configuration.externalAuthorizer {
            let request = AuthorizationRequest(identity: context.identity, action: .publish, topic: topic)
            guard let allowed = self.externalDecision(request, authorizer, now: now) else {
                return self.waitForAuthorization(.packet(.publish(publish)), asking: [request])
            }
            if !allowed { return self.refuseByAccessRules(publish, topic: topic, context: context, now: now) }
        }

        let message = Message(
            topic: topic,
            payload: publish.payload,
            qos: min(publish.qos, configuration.maximumQoS),
            retain: publish.retain,
            inboundProperties: publish.properties,
            publisherClientIdentifier: context.clientIdentifier,
            now: now
        )
        var actions = ConnectionActions()
        switch publish.qos {
        case .atMostOnce:
            if message.retain, let refusal = self.broker.store.refusal(for: message) {
                actions.logs.append(self.storeRefusalLog(refusal, message))
                return actions
            }
            self.route(message, into: &actions, context: context, now: now)
        case .atLeastOnce:
            if let refusal = self.broker.store.refusal(for: message) {
                return self.refuseByStore(refusal, message, ack: .puback, packetIdentifier: publish.packetIdentifier!, context: context, now: now)
            }
            // The PUBACK goes first, ahead of any delivery routing adds for this very client; its reason is
            // known after routing: v5 0x10 when nothing matched.
            let identifier = publish.packetIdentifier!
            actions.send(.puback(MQTTPacket.PubAck(packetIdentifier: identifier)))
            let matched = self.route(message, into: &actions, context: context, now: now)
            if v5 && !matched {
                actions.outbound[0] = .packet(.puback(MQTTPacket.PubAck(packetIdentifier: identifier, reasonCode: .noMatchingSubscribers)))
            }
        case .exactlyOnce:
            let identifier = publish.packetIdentifier!
            switch context.session.beginInboundQoS2(
                packetIdentifier: identifier,
                limit: Int(configuration.receiveMaximum),
                token: context.token
            ) {
            case .notOwner:
                return self.takenOver(context: context, sessionEnded: false, now: now)
            case .limitExceeded:
                return self.protocolViolation(.receiveMaximumExceeded, "Receive Maximum exceeded", now: now)
            case .duplicate:
                // Acknowledge again, do not deliver again [MQTT-4.3.3-10] (3.1.1 [MQTT-4.3.3-2]).
                actions.send(.pubrec(MQTTPacket.PubAck(packetIdentifier: identifier)))
            case .accepted:
                if let refusal = self.broker.store.refusal(for: message) {
                    _ = context.session.releaseInboundQoS2(packetIdentifier: identifier, token: context.token)
                    return self.refuseByStore(refusal, message, ack: .pubrec, packetIdentifier: identifier, context: context, now: now)
                }
                actions.send(.pubrec(MQTTPacket.PubAck(packetIdentifier: identifier)))
                let matched = self.route(message, into: &actions, context: context, now: now)
                if v5 && !matched {
                    actions.outbound[0] = .packet(.pubrec(MQTTPacket.PubAck(packetIdentifier: identifier, reasonCode: .noMatchingSubscribers)))
                }
            }
        }
        if publish.qos != .atMostOnce {
            // The acknowledgement waits until the store has made the message durable.
            actions.commit = self.broker.store.commitTicket()
        }
        return actions
    }

    private enum StoreRefusedAck { case puback, pubrec }

    /// A PUBLISH the access rules do not allow is not routed and not retained. MQTT 5 says so in the PUBACK or
    /// PUBREC (0x87 Not authorized, which ends a QoS 2 exchange, spec 4.3.3); MQTT 3.1.1 has no way to, so
    /// the message is acknowledged as usual and dropped, as Mosquitto does (a QoS 2 exchange completes).
    private mutating func refuseByAccessRules(
        _ publish: MQTTPacket.Publish,
        topic: String,
        context: Context,
        now: NIODeadline
    ) -> ConnectionActions {
        self.broker.counters.publishesDenied.wrappingAdd(1, ordering: .relaxed)
        var actions = ConnectionActions()
        actions.logs.append(
            self.log(.info, "PUBLISH denied by the access rules", ["mqtt.topic": topic, "mqtt.qos": "\(publish.qos.rawValue)"])
        )
        let v5 = context.version.isV5
        guard let identifier = publish.packetIdentifier else { return actions }
        let reason: ReasonCode = v5 ? .notAuthorized : .success
        switch publish.qos {
        case .atMostOnce:
            break
        case .atLeastOnce:
            actions.send(.puback(MQTTPacket.PubAck(packetIdentifier: identifier, reasonCode: reason)))
        case .exactlyOnce:
            if !v5 {
                // Remembered like an accepted one, so that its PUBREL gets a PUBCOMP.
                switch context.session.beginInboundQoS2(
                    packetIdentifier: identifier,
                    limit: Int(self.configuration.receiveMaximum),
                    token: context.token
                ) {
                case .notOwner:
                    return self.takenOver(context: context, sessionEnded: false, now: now)
                case .limitExceeded:
                    return self.protocolViolation(.receiveMaximumExceeded, "Receive Maximum exceeded", now: now)
                case .duplicate, .accepted:
                    break
                }
                actions.commit = self.broker.store.commitTicket()
            }
            actions.send(.pubrec(MQTTPacket.PubAck(packetIdentifier: identifier, reasonCode: reason)))
        }
        return actions
    }

    /// What is too much about a topic name or filter: more bytes than `maximumTopicLength` or more levels than
    /// `maximumTopicLevels` allow ("has more than 1000 levels"); nil when neither. Counts the refusal.
    private func topicLimitExceeded(_ topic: String) -> String? {
        let bytes = topic.utf8.count
        let maximumLength = self.configuration.maximumTopicLength
        if bytes > maximumLength {
            self.broker.counters.topicsRefusedTooLong.wrappingAdd(1, ordering: .relaxed)
            return "is longer than \(maximumLength) bytes"
        }
        let limit = self.configuration.maximumTopicLevels
        guard limit > 0, bytes >= limit, MQTTTopic.levelCount(topic) > limit else { return nil }
        self.broker.counters.topicsRefusedTooManyLevels.wrappingAdd(1, ordering: .relaxed)
        return "has more than \(limit) levels"
    }

    /// A PUBLISH to a topic deeper than `maximumTopicLevels` or longer than `maximumTopicLength`: v5 answers
    /// QoS 1 / 2 with 0x97 Quota exceeded in the PUBACK / PUBREC (the flow ends there) and drops QoS 0; 3.1.1 has
    /// no negative acknowledgement, so the connection is closed and the message is not acknowledged.
    private mutating func refuseDeepTopic(
        _ publish: MQTTPacket.Publish,
        excess: String,
        context: Context,
        now: NIODeadline
    ) -> ConnectionActions {
        let log = self.log(
            .warning,
            "PUBLISH refused: topic \(excess)",
            ["mqtt.topic_bytes": "\(publish.topic.utf8.count)", "mqtt.qos": "\(publish.qos.rawValue)"]
        )
        guard context.version.isV5 else {
            return self.terminate(context: context, disconnect: nil, publishWill: true, log: log, now: now)
        }
        var actions = ConnectionActions(logs: [log])
        guard let identifier = publish.packetIdentifier else { return actions }
        let ack = MQTTPacket.PubAck(
            packetIdentifier: identifier,
            reasonCode: .quotaExceeded,
            properties: self.problem("topic \(excess)", context)
        )
        actions.send(publish.qos == .exactlyOnce ? .pubrec(ack) : .puback(ack))
        return actions
    }

    /// The store cannot take the message (a bound reached, or it cannot write): v5 says so in the PUBACK/PUBREC
    /// (0x97 Quota exceeded, 0x80 Unspecified error) and the flow ends; 3.1.1 has no negative acknowledgement,
    /// so the connection is closed unacknowledged and the client sends the message again when it reconnects.
    private mutating func refuseByStore(
        _ reason: ReasonCode,
        _ message: Message,
        ack: StoreRefusedAck,
        packetIdentifier: UInt16,
        context: Context,
        now: NIODeadline
    ) -> ConnectionActions {
        let log = self.storeRefusalLog(reason, message)
        guard context.version.isV5 else {
            return self.terminate(context: context, disconnect: nil, publishWill: true, log: log, now: now)
        }
        var actions = ConnectionActions(logs: [log])
        let packet = MQTTPacket.PubAck(packetIdentifier: packetIdentifier, reasonCode: reason)
        actions.send(ack == .puback ? .puback(packet) : .pubrec(packet))
        return actions
    }

    private func storeRefusalLog(_ reason: ReasonCode, _ message: Message) -> LogRecord {
        self.log(.warning, "Message refused by the store", ["mqtt.reason_code": "\(reason)", "mqtt.topic": message.topic])
    }

    /// Routes a message and merges the result into `actions`; when this connection itself is among the
    /// subscribers, its deliveries are appended right away instead of waking it.
    @discardableResult
    private mutating func route(_ message: Message, into actions: inout ConnectionActions, context: Context, now: NIODeadline) -> Bool {
        let cache: RouteCache
        if let existing = context.routeCache {
            cache = existing
        } else {
            cache = RouteCache()
            context.routeCache = cache
        }
        let routed = self.broker.publish(message, cache: cache)
        // Routing returns each session's waker at most once.
        var others = routed.wakers
        var selfWoken = false
        if let index = others.firstIndex(where: { $0 === self.waker }) {
            others.remove(at: index)
            selfWoken = true
        }
        actions.addWakers(others)
        actions.logs.append(contentsOf: routed.logs)
        if selfWoken {
            actions.appendDeliveries(self.deliverPending(now: now))
        }
        return routed.matched
    }

    private mutating func handlePubrel(_ ack: MQTTPacket.PubAck, context: Context, now: NIODeadline) -> ConnectionActions {
        guard let known = context.session.releaseInboundQoS2(packetIdentifier: ack.packetIdentifier, token: context.token) else {
            return self.takenOver(context: context, sessionEnded: false, now: now)
        }
        var actions = ConnectionActions()
        // PUBCOMP for every PUBREL [MQTT-4.3.3-11]; v5 0x92 when the identifier is unknown.
        let reason: ReasonCode = known || !context.version.isV5 ? .success : .packetIdentifierNotFound
        actions.send(
            .pubcomp(
                MQTTPacket.PubAck(
                    packetIdentifier: ack.packetIdentifier,
                    reasonCode: reason,
                    properties: self.problem(reason.isFailure ? "No PUBREC awaits PUBREL for this packet identifier" : nil, context)
                )
            )
        )
        // PUBCOMP leaves once the release is stored: the client may reuse the identifier right after it.
        if known, context.session.isPersistent { actions.commit = self.broker.store.commitTicket() }
        if !known {
            actions.logs.append(self.log(.debug, "PUBREL for unknown packet identifier", ["mqtt.packet_id": "\(ack.packetIdentifier)"]))
        }
        return actions
    }

    // MARK: - Acknowledgements of our PUBLISHes

    private mutating func handleOutboundAck(
        _ kind: Session.Acknowledgement,
        _ ack: MQTTPacket.PubAck,
        context: Context,
        now: NIODeadline
    ) -> ConnectionActions {
        var actions = ConnectionActions()
        switch context.session.acknowledge(kind, packetIdentifier: ack.packetIdentifier, token: context.token) {
        case .notOwner:
            return self.takenOver(context: context, sessionEnded: false, now: now)
        case .unknown:
            actions.logs.append(self.log(.debug, "Acknowledgement for unknown packet identifier", ["mqtt.packet_id": "\(ack.packetIdentifier)"]))
            if case .pubrec = kind, context.version.isV5 {
                actions.send(
                    .pubrel(
                        MQTTPacket.PubAck(
                            packetIdentifier: ack.packetIdentifier,
                            reasonCode: .packetIdentifierNotFound,
                            properties: self.problem("No PUBLISH in flight with this packet identifier", context)
                        )
                    )
                )
            }
        case .sendPubrel:
            actions.send(.pubrel(MQTTPacket.PubAck(packetIdentifier: ack.packetIdentifier)))
            // PUBREL leaves once "PUBREC received" is stored: after a crash the flow resumes with PUBREL, never
            // with the PUBLISH again (the client may already have released it).
            if context.session.isPersistent { actions.commit = self.broker.store.commitTicket() }
        case .completed(let wake):
            // A slot is free: the connection is woken to pull the next queued messages, once for all the slots
            // its acknowledgements free, rather than drained here for each of them.
            if let wake { actions.wake.append(wake) }
        }
        return actions
    }

    // MARK: - SUBSCRIBE / UNSUBSCRIBE

    private mutating func handleSubscribe(_ subscribe: MQTTPacket.Subscribe, context: Context, now: NIODeadline) -> ConnectionActions {
        let configuration = self.configuration
        if let authorizer = configuration.externalAuthorizer {
            // Every filter the external authorizer has no answer for is asked about first, together.
            var unknown: [AuthorizationRequest] = []
            for requested in subscribe.subscriptions {
                let filter: String
                switch MQTTTopic.parseSharedSubscription(requested.filter) {
                case .shared(_, let shared): filter = shared
                case .notShared: filter = requested.filter
                case .invalid: continue
                }
                guard MQTTTopic.isValidTopicFilter(requested.filter), self.topicLimitExceeded(requested.filter) == nil else {
                    continue
                }
                let request = AuthorizationRequest(identity: context.identity, action: .subscribe, topic: filter)
                if self.externalDecision(request, authorizer, now: now) == nil, !unknown.contains(request) {
                    unknown.append(request)
                }
            }
            if !unknown.isEmpty {
                return self.waitForAuthorization(.packet(.subscribe(subscribe)), asking: unknown)
            }
        }
        let v5 = context.version.isV5
        let identifier = v5 ? subscribe.properties.subscriptionIdentifiers.first : nil
        var reasonCodes: [ReasonCode] = []
        reasonCodes.reserveCapacity(subscribe.subscriptions.count)
        var retainedToSend: [(Message, QoS, UInt32?)] = []
        var deepFilters = 0
        var lastExcess = ""
        var quotaFilters = 0
        var deniedFilters = 0
        var retainedCut = false
        // Read once per SUBSCRIBE: an operator's change holds from the next one.
        let subscriptionLimit = self.broker.limits.maximumSubscriptionsPerSession
        for requested in subscribe.subscriptions {
            var shared = false
            var topicFilter = requested.filter
            switch MQTTTopic.parseSharedSubscription(requested.filter) {
            case .shared(_, let filter):
                topicFilter = filter
                // It is a Protocol Error to set No Local on a Shared Subscription [MQTT-3.8.3-4].
                if v5 && requested.options.noLocal {
                    return self.protocolViolation(.protocolError, "No Local on a shared subscription", now: now)
                }
                shared = true
            case .invalid:
                // A share name must not be empty nor contain `/`, `+` or `#` [MQTT-4.8.2-1, MQTT-4.8.2-2].
                reasonCodes.append(v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            case .notShared:
                break
            }
            guard MQTTTopic.isValidTopicFilter(requested.filter) else {
                reasonCodes.append(v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            if let excess = self.topicLimitExceeded(requested.filter) {
                lastExcess = excess
                // An implementation limit, not a malformed filter: v5 0x97 Quota exceeded, 3.1.1 0x80.
                reasonCodes.append(v5 ? .quotaExceeded : .unspecifiedError)
                deepFilters += 1
                continue
            }
            if subscriptionLimit > 0,
                !context.session.hasRoomForSubscription(requested.filter, limit: subscriptionLimit)
            {
                reasonCodes.append(v5 ? .quotaExceeded : .unspecifiedError)
                quotaFilters += 1
                continue
            }
            // A filter wider than what the client may read is refused; a shared one by the filter it shares.
            if context.access?.allows(.subscribe, topicFilter) == false
                || configuration.externalAuthorizer.map({
                    self.externalDecision(
                        AuthorizationRequest(identity: context.identity, action: .subscribe, topic: topicFilter),
                        $0,
                        now: now
                    ) != true
                }) == true
            {
                reasonCodes.append(v5 ? .notAuthorized : .unspecifiedError)
                deniedFilters += 1
                continue
            }
            var options = requested.options
            options.qos = min(options.qos, configuration.maximumQoS)
            if !v5 {
                options.noLocal = false
                options.retainAsPublished = false
                options.retainHandling = .sendOnSubscribe
            }
            let subscription = StoredSubscription(filter: requested.filter, options: options, subscriptionIdentifier: identifier)
            guard let existed = self.broker.subscribe(session: context.session, token: context.token, subscription: subscription)
            else {
                return self.takenOver(context: context, sessionEnded: false, now: now)
            }
            reasonCodes.append(ReasonCode(options.qos.rawValue))
            // Retained messages: on every subscribe (Retain Handling 0), only on a new one (1), never (2)
            // [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11]; 3.1.1 [MQTT-3.3.1-6].
            var sendRetained: Bool
            switch options.retainHandling {
            case .sendOnSubscribe: sendRetained = true
            case .sendOnNewSubscribe: sendRetained = !existed
            case .doNotSend: sendRetained = false
            }
            // Retained messages are not sent when a shared subscription is made (spec 4.8.2, 3.8.4).
            if shared { sendRetained = false }
            if sendRetained && configuration.retainAvailable {
                // No more than the session can hold: a SUBSCRIBE of many wide filters must not gather every
                // retained message once per filter only for the session's queue to drop them.
                let room = self.broker.limits.maximumQueuedMessages + configuration.maximumInflightMessages - retainedToSend.count
                if room <= 0 { retainedCut = true }
                for message in self.broker.retainedMessages(matching: requested.filter, now: now, limit: room) {
                    retainedToSend.append((message, min(message.qos, options.qos), identifier))
                }
            }
        }
        // One reason code per filter, in order [MQTT-3.8.4-6] (3.1.1 [MQTT-3.8.4-5]).
        var actions = ConnectionActions()
        if retainedCut {
            actions.logs.append(self.log(.warning, "SUBSCRIBE: retained messages fill what the session can queue; later filters get none"))
        }
        if quotaFilters > 0 {
            self.broker.counters.subscriptionsRefusedQuota.wrappingAdd(quotaFilters, ordering: .relaxed)
            actions.logs.append(
                self.log(
                    .warning,
                    "SUBSCRIBE: \(quotaFilters) topic filters refused: the session holds \(subscriptionLimit) subscriptions"
                )
            )
        }
        if deniedFilters > 0 {
            self.broker.counters.subscriptionsDenied.wrappingAdd(deniedFilters, ordering: .relaxed)
            actions.logs.append(self.log(.info, "SUBSCRIBE: \(deniedFilters) topic filters denied by the access rules"))
        }
        if deepFilters > 0 {
            actions.logs.append(
                self.log(.warning, "SUBSCRIBE: \(deepFilters) topic filters refused: a filter \(lastExcess)")
            )
        }
        let refused = reasonCodes.filter(\.isFailure).count
        actions.send(
            .suback(
                MQTTPacket.SubAck(
                    packetIdentifier: subscribe.packetIdentifier,
                    reasonCodes: reasonCodes,
                    properties: self.problem(refused > 0 ? "\(refused) of \(reasonCodes.count) topic filters refused" : nil, context)
                )
            )
        )
        var queuedAny = false
        for (message, qos, identifier) in retainedToSend {
            // Sent because of a new subscription: RETAIN 1 [MQTT-3.3.1-8].
            switch context.session.enqueue(
                message,
                qos: qos,
                retain: true,
                subscriptionIdentifiers: identifier.map { [$0] } ?? [],
                configuration: configuration,
                limits: self.broker.limits
            ) {
            case .queued: queuedAny = true
            case .dropped(let first, let overBudget):
                if first {
                    actions.logs.append(
                        self.log(
                            .warning,
                            overBudget
                                ? "Queued-message memory budget full: dropping retained messages"
                                : "Session queue full: dropping retained messages"
                        )
                    )
                }
            case .discarded: break
            }
        }
        if queuedAny {
            actions.appendDeliveries(self.deliverPending(now: now))
        }
        return actions
    }

    private mutating func handleUnsubscribe(_ unsubscribe: MQTTPacket.Unsubscribe, context: Context, now: NIODeadline) -> ConnectionActions {
        var reasonCodes: [ReasonCode] = []
        for filter in unsubscribe.filters {
            guard let existed = self.broker.unsubscribe(session: context.session, token: context.token, filter: filter) else {
                return self.takenOver(context: context, sessionEnded: false, now: now)
            }
            // v5: 0x11 when no subscription existed.
            reasonCodes.append(existed ? .success : .noSubscriptionExisted)
        }
        // UNSUBACK always, even when nothing was removed [MQTT-3.10.4-4, MQTT-3.10.4-5].
        return ConnectionActions(
            outbound: [
                .packet(.unsuback(MQTTPacket.UnsubAck(packetIdentifier: unsubscribe.packetIdentifier, reasonCodes: context.version.isV5 ? reasonCodes : [])))
            ]
        )
    }

    // MARK: - DISCONNECT

    private mutating func handleDisconnect(_ disconnect: MQTTPacket.Disconnect, context: Context, now: NIODeadline) -> ConnectionActions {
        if context.version.isV5, let expiry = disconnect.properties.sessionExpiryInterval {
            if context.connectSessionExpiryWasZero && expiry != 0 {
                // [MQTT-3.14.2-2]
                return self.protocolViolation(.protocolError, "Session Expiry Interval set on DISCONNECT after 0 on CONNECT", now: now)
            }
            let capped = min(expiry, self.configuration.maximumSessionExpiryInterval)
            context.sessionExpiryInterval = capped
            _ = context.session.setExpiryInterval(capped, token: context.token)
        }
        // Normal disconnection deletes the will [MQTT-3.1.2-10]; v5 0x04 asks for it to be published.
        let publishWill = context.version.isV5 && disconnect.reasonCode == .disconnectWithWillMessage
        var actions = self.terminate(
            context: context,
            disconnect: nil,
            publishWill: publishWill,
            log: self.log(.info, "Client disconnected", ["mqtt.disconnect_cause": "client_disconnect", "mqtt.reason_code": "\(disconnect.reasonCode)"]),
            now: now
        )
        actions.close = true
        return actions
    }
}
