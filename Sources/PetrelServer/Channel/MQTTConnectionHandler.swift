import Logging
import MQTTWire
import NIOCore
import NIOPosix
import PetrelCore

/// One MQTT network connection. It parses the bytes the socket delivers into packets (`MQTTPacketParser`) and
/// interprets what the engine's `ConnectionStateMachine` decides: writes, closes, wake-ups of other connections,
/// timers and log lines. No protocol decision is made here. Its timers (connect timeout, keep alive) are checked
/// by its event loop's `EventLoopConnections`.
///
/// The packets of a read are handed to the state machine as they are parsed, without a decoder handler in
/// between: no packet is boxed into the pipeline's `NIOAny`, and a PUBLISH payload is a slice of the bytes read.
/// No buffer is kept between reads unless a packet is cut in two.
///
/// What else a connection does lives next to this file: writing and gathering packets (`+Writing`), holding
/// acknowledgements until the store commits (`CommitHolds`), and, on plain TCP with hibernation on, giving the
/// channel up while idle (`+Hibernation`). The transport (TLS, WebSocket) is the pipeline in front of it.
final class MQTTConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var parser: MQTTPacketParser
    /// The start of a packet whose end has not arrived yet.
    private var partial: ByteBuffer?
    var machine: ConnectionStateMachine
    let waker: ConnectionWaker
    let connections: EventLoopConnections
    /// This connection's slot in `connections`; -1 when not listed.
    var connectionIndex = -1
    /// The server's logger, shared: the connection's metadata is added per log line (`metadata(_:)`), which is
    /// rare, rather than kept in a per-connection copy of the log handler.
    let logger: Logger
    var context: ChannelHandlerContext?

    private var wakes = WakeBatch()
    var needsFlush = false
    private var closing = false
    /// Set while a closed connection still reads and discards what its peer sends (`closeLingering`).
    private var lingerTimeout: Scheduled<Void>?
    /// Woken while the socket was not writable: drain once it is.
    private var deliveryDeferred = false
    /// A read was asked for while the socket was not writable: pass it on once it is.
    private var readDeferred = false
    /// The layout of the CONNACK that refuses an unsupported protocol version [MQTT-3.1.2-2].
    var refusalVersion: ProtocolVersion?
    private var held = CommitHolds()

    /// Packets of the current batch not handed to the channel yet (`+Writing`): nil between batches, so an
    /// idle connection keeps no buffer.
    var gathered: ByteBuffer?
    /// The size of the last gathered batch, to allocate the next one at about the right size.
    var lastGatheredBytes = 256
    /// Free bytes in front of each gathered buffer, where the transport writes its frame header.
    let outboundHeadroom: Int
    /// This connection's place within the server's connection limits, when it holds it (given back at the end).
    private let slot: ConnectionSlot?

    /// Decides CONNECTs whose verdict takes I/O (`BrokerConfiguration.externalAuthenticator`).
    private let externalAuthenticator: (any ExternalAuthenticator)?
    /// Decides access checks whose answer takes I/O (`BrokerConfiguration.externalAuthorizer`).
    private let externalAuthorizer: (any ExternalAuthorizer)?
    /// Hibernation when idle; nil when off, and for connections that are not plain TCP.
    var hibernation: HibernationController?
    /// The transport of the listener that accepted the connection, for metrics and log lines.
    let transport: ListenerConfiguration.Transport
    /// The protocol version this connection is counted under in `connections.traffic` once connected.
    private var countedVersion: ProtocolVersion?

    init(
        broker: Broker,
        waker: ConnectionWaker,
        connections: EventLoopConnections,
        remoteAddress: String,
        maximumPacketSize: Int,
        socket: CInt = -1,
        hibernation: ConnectionHibernation? = nil,
        transportUser: ConnectionStateMachine.TransportUser = .fromConnect,
        outboundHeadroom: Int = 0,
        slot: ConnectionSlot? = nil,
        transport: ListenerConfiguration.Transport = .mqtt,
        logger: Logger
    ) {
        self.transport = transport
        self.outboundHeadroom = outboundHeadroom
        self.slot = slot
        self.externalAuthenticator = broker.configuration.externalAuthenticator
        self.externalAuthorizer = broker.configuration.externalAuthorizer
        let now = NIODeadline.now()
        if socket >= 0, let hibernation {
            self.hibernation = HibernationController(settings: hibernation, socket: socket, now: now)
        }
        self.parser = MQTTPacketParser(maximumPacketSize: maximumPacketSize)
        // The operating system's cryptographically secure generator feeds authentication nonces and salts.
        self.machine = ConnectionStateMachine(
            broker: broker,
            waker: waker,
            remoteAddress: remoteAddress,
            listener: transport.rawValue,
            now: now,
            random: SystemRandomNumberGenerator()
        )
        self.machine.useTransportUser(transportUser)
        self.waker = waker
        self.connections = connections
        self.logger = logger
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard !attachedAfterWaking() else { return }
        waker.handler = self
        connections.add(self, deadline: machine.tickDeadline ?? .distantFuture)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The channel given up by hibernation goes after the handler left it (or joined a new one).
        guard context === self.context else { return }
        connections.remove(self)
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        performWorkAfterWaking()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard context === self.context else {
            context.fireChannelInactive()
            return
        }
        closing = true
        lingerTimeout?.cancel()
        lingerTimeout = nil
        connections.remove(self)
        slot?.release()
        if let countedVersion {
            connections.traffic.connected[LoopTraffic.slot(transport, countedVersion)].add(-1)
            self.countedVersion = nil
        }
        hibernation?.settings.channelFreed()
        perform(machine.connectionClosed(now: .now()), context: context)
        fireWakes(on: context.eventLoop)
        waker.handler = nil
        context.fireChannelInactive()
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var bytes = unwrapInboundIn(data)
        connections.traffic.bytesIn.add(bytes.readableBytes)
        if var buffered = partial.take() {
            buffered.writeBuffer(&bytes)
            bytes = buffered
        }
        let now = NIODeadline.now()
        hibernation?.lastActivity = now
        process(&bytes, now: now, context: context)
    }

    /// Hands the packets in `bytes` to the engine, until one waits for an external authenticator or authorizer;
    /// what is left waits in `partial`.
    private func process(_ bytes: inout ByteBuffer, now: NIODeadline, context: ChannelHandlerContext) {
        while !closing, !machine.isAwaitingDecision, let packet = parse(&bytes, now: now, context: context) {
            receive(packet, now: now, context: context)
        }
        if !closing, bytes.readableBytes > 0 {
            partial = machine.isConnected ? Self.keepable(bytes) : Self.copy(bytes)
        }
    }

    /// The unparsed rest of a read, kept until the next one. A few bytes left at the end of a large receive
    /// buffer are copied out, so that they do not hold the whole buffer.
    private static func keepable(_ rest: ByteBuffer) -> ByteBuffer {
        guard rest.capacity > 2 * rest.readableBytes + 1024 else { return rest }
        return copy(rest)
    }

    /// Before CONNECT is accepted (a CONNECT longer than the first read) the rest is always copied: while
    /// anything holds the channel's receive buffer, NIO allocates a second one for the next read and keeps
    /// both, with a slot array for sixteen, for the life of the connection.
    private static func copy(_ rest: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: rest.readableBytes)
        copy.writeImmutableBuffer(rest)
        return copy
    }

    /// The packet at the front of `bytes`; nil when it is incomplete, or malformed: then the connection answers
    /// (DISCONNECT with the reason for MQTT 5) and closes.
    private func parse(_ bytes: inout ByteBuffer, now: NIODeadline, context: ChannelHandlerContext) -> MQTTPacket? {
        do {
            return try parser.parse(&bytes)
        } catch let error as MQTTWireError {
            perform(actions(for: error, now: now), context: context)
            if !closing {
                closeLingering(context: context)
            }
            return nil
        } catch {
            logger.debug("cannot parse packet", metadata: metadata(["error": "\(error)"]))
            closing = true
            context.close(promise: nil)
            return nil
        }
    }

    private func receive(_ packet: MQTTPacket, now: NIODeadline, context: ChannelHandlerContext) {
        connections.traffic.packetsIn.add(1)
        if case .publish(let publish) = packet {
            connections.traffic.received(qos: publish.qos, payloadBytes: publish.payload.readableBytes)
        }
        let wasConnected = machine.isConnected
        perform(machine.receive(packet, now: now), context: context)
        // The CONNACK may follow the CONNECT or, with enhanced authentication, the last AUTH. Later packets
        // move the keep-alive deadline within the engine; the connection looks at it when the old one passes.
        if !wasConnected, !closing, machine.isConnected {
            becameConnected(now: now)
        }
    }

    /// The CONNACK accepted the client: its keep-alive deadline, and its place in the traffic counters.
    private func becameConnected(now: NIODeadline) {
        connections.setDeadline(nextDeadline(now: now), for: self)
        if countedVersion == nil, let version = machine.protocolVersion {
            countedVersion = version
            connections.traffic.connected[LoopTraffic.slot(transport, version)].add(1)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
        context.fireChannelReadComplete()
    }

    /// The TLS handshake of an `mqtts` connection ended before any MQTT byte: the user name its certificate
    /// proves, when the listener takes it as the user name.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? TransportIdentity {
            machine.useTransportUser(.proven(identity.username))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !closing else {
            // A peer that resets a lingering connection ends it.
            if lingerTimeout != nil { context.close(promise: nil) }
            return
        }
        logger.debug("connection error", metadata: metadata(["error": "\(error)"]))
        closing = true
        context.close(promise: nil)
    }

    // MARK: - Outbound flow control

    func read(context: ChannelHandlerContext) {
        // Nothing more is read while a packet waits for its verdict: the client's next packets wait in the
        // socket, not in memory here.
        if context.channel.isWritable, !machine.isAwaitingDecision {
            context.read()
        } else {
            readDeferred = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if deliveryDeferred {
                deliveryDeferred = false
                deliverPending()
            }
            if readDeferred, !machine.isAwaitingDecision {
                readDeferred = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - Engine events

    /// Drains what the engine queued for this connection, unless the socket is backed up: then the messages wait
    /// in the session's bounded queue instead of in the socket's unbounded write buffer.
    func deliverPending() {
        guard isAttached else { return wake(for: .deliver) }
        guard let context, !closing else { return }
        // A backed-up socket puts deliveries off, not an operator's disconnect (looked up only then).
        guard context.channel.isWritable || machine.isDisconnectRequested else {
            deliveryDeferred = true
            return
        }
        let now = NIODeadline.now()
        hibernation?.lastActivity = now
        perform(machine.deliverPending(now: now), context: context)
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
    }

    func serverShutdown() {
        guard isAttached else { return wake(for: .shutdown) }
        guard let context, !closing else { return }
        perform(machine.shutdown(now: .now()), context: context)
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
        if !closing {
            closing = true
            context.close(promise: nil)
        }
    }

    // MARK: - Timers

    /// The deadline this connection gave its `EventLoopConnections` has passed: the engine closes it when the
    /// connect timeout or 1.5 times the keep alive ran out [MQTT-3.1.2-24]; otherwise (a packet came since)
    /// the connection names its next deadline. One that is already due again is looked at on the next check.
    func deadlinePassed(now: NIODeadline) {
        guard isAttached else {
            // Only the keep alive is watched while hibernating: the engine closes the connection on its channel.
            return wake(for: .deadline)
        }
        guard let context, !closing else { return }
        perform(machine.tick(now: now), context: context)
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
        guard !closing else { return }
        if hibernateIfIdle(now: now, context: context) {
            connections.setDeadline(machine.tickDeadline ?? .distantFuture, for: self)
            return
        }
        connections.setDeadline(nextDeadline(now: now), for: self)
    }

    /// Nothing half done: no packet half read, nothing gathered or buffered to write, no acknowledgement
    /// waiting for the store. Only then may the connection give its channel up.
    var isIdleOnTheWire: Bool {
        partial == nil && held.isEmpty && gathered == nil && !needsFlush && !deliveryDeferred && !readDeferred
            && !machine.isAwaitingDecision
    }

    /// The connection is gone without its channel closing (a hibernating one that could not wake): the engine
    /// ends it (its will goes out, its session stays or ends).
    func connectionLost() {
        closing = true
        slot?.release()
        connections.remove(self)
        let actions = machine.connectionClosed(now: .now())
        for record in actions.logs { log(record) }
        wakes.append(contentsOf: actions.wake)
        fireWakes(on: waker.eventLoop)
        waker.handler = nil
    }

    // MARK: - Performing actions

    private func actions(for error: MQTTWireError, now: NIODeadline) -> ConnectionActions {
        if let responseVersion = error.unsupportedProtocolResponseVersion {
            refusalVersion = responseVersion
            return machine.unsupportedProtocolVersion(level: error.protocolLevel ?? 0, now: now)
        }
        return machine.receiveError(error, reason: error.reasonCode, now: now)
    }

    func perform(_ actions: ConnectionActions, context: ChannelHandlerContext) {
        for record in actions.logs { log(record) }
        if let delay = actions.answerDelay, !closing {
            answerLater(actions, after: delay, context: context)
            return
        }
        if let credentials = actions.authenticationRequest {
            askExternalAuthenticator(credentials, context: context)
        }
        if let requests = actions.authorizationRequests {
            askExternalAuthorizer(requests, context: context)
        }
        if let ticket = actions.commit {
            hold(actions.outbound, until: ticket, context: context)
        } else if !held.queueBehind(actions.outbound) {
            for outbound in actions.outbound { write(outbound, context: context) }
        }
        if !actions.wake.isEmpty { wakes.append(contentsOf: actions.wake) }
        if actions.close, !closing {
            // Held packets were not made durable yet: they are not sent (the client sends again).
            held.removeAll()
            closeLingering(context: context)
        }
    }

    /// Resolves an external authenticator's verdict off the event loop and passes it back on it.
    private func askExternalAuthenticator(_ credentials: ConnectCredentials, context: ChannelHandlerContext) {
        guard let authenticator = externalAuthenticator else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        Task {
            let verdict = await authenticator.decide(credentials)
            loop.execute { bound.value.externalVerdict(verdict) }
        }
    }

    private func externalVerdict(_ verdict: AuthenticationVerdict) {
        guard let context, !closing, machine.isAwaitingDecision else { return }
        let now = NIODeadline.now()
        let wasConnected = machine.isConnected
        perform(machine.externalAuthenticationDecided(verdict, now: now), context: context)
        resume(wasConnected: wasConnected, now: now, context: context)
    }

    /// Resolves an external authorizer's answers off the event loop and passes them back on it.
    private func askExternalAuthorizer(_ requests: [AuthorizationRequest], context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        guard let authorizer = externalAuthorizer else {
            // Not reached: the engine asks only when one is configured. Denied rather than left waiting.
            let answers = [Bool](repeating: false, count: requests.count)
            loop.execute { bound.value.externalAnswers(answers) }
            return
        }
        Task {
            let answers = await authorizer.decide(all: requests)
            loop.execute { bound.value.externalAnswers(answers) }
        }
    }

    private func externalAnswers(_ answers: [Bool]) {
        guard let context, !closing, machine.isAwaitingDecision else { return }
        let now = NIODeadline.now()
        let wasConnected = machine.isConnected
        perform(machine.externalAuthorizationDecided(answers, now: now), context: context)
        resume(wasConnected: wasConnected, now: now, context: context)
    }

    /// After a verdict: the packets the client sent after the one that waited, and reading again.
    private func resume(wasConnected: Bool, now: NIODeadline, context: ChannelHandlerContext) {
        if !wasConnected, !closing, machine.isConnected {
            becameConnected(now: now)
        }
        if !closing, !machine.isAwaitingDecision, var rest = partial.take() {
            process(&rest, now: now, context: context)
        }
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
        if readDeferred, !closing, !machine.isAwaitingDecision, context.channel.isWritable {
            readDeferred = false
            context.read()
        }
    }

    /// A refused login is answered late: the connection reads nothing more meanwhile, then writes the CONNACK
    /// and closes as usual.
    private func answerLater(_ actions: ConnectionActions, after delay: TimeAmount, context: ChannelHandlerContext) {
        closing = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let packets = NIOLoopBound(actions.outbound, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) {
            let handler = bound.value
            guard let context = handler.context, context.channel.isActive else { return }
            for outbound in packets.value { handler.write(outbound, context: context) }
            handler.closeLingering(context: context)
        }
    }

    /// How long a connection the broker ends keeps reading what its peer still sends.
    static let lingerTime: TimeAmount = .seconds(2)

    /// Ends the connection the way HTTP servers do: what was written (a DISCONNECT with its reason, say) is
    /// flushed, the write side is shut down so the peer reads it and then the end of the stream, and what the
    /// peer still sends is read and discarded until it closes too or `lingerTime` has passed. Closing at once
    /// with unread bytes in the receive buffer makes the kernel answer with a reset, and a client that is still
    /// writing then sees its write fail and often never reads the DISCONNECT. The time bound keeps a hostile
    /// peer from holding the socket; what it sends meanwhile is dropped as it arrives (`channelRead`).
    private func closeLingering(context: ChannelHandlerContext) {
        closing = true
        flushIfNeeded(context: context)
        let channel = context.channel
        lingerTimeout = context.eventLoop.scheduleTask(in: Self.lingerTime) {
            channel.close(promise: nil)
        }
        let shutdown = context.eventLoop.makePromise(of: Void.self)
        shutdown.futureResult.whenFailure { _ in
            // The transport cannot half-close (or the socket is gone already): close it whole.
            channel.close(promise: nil)
        }
        context.close(mode: .output, promise: shutdown)
    }

    // MARK: - Acknowledgements held for the store

    private func hold(_ outbound: [OutboundPacket], until ticket: any StoreCommitTicket, context: ChannelHandlerContext) {
        let number = held.hold(outbound)
        let loop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        ticket.whenCommitted { committed in
            loop.execute { loopBound.value.ticketCompleted(number, committed: committed) }
        }
    }

    private func ticketCompleted(_ number: UInt64, committed: Bool) {
        guard let context, !closing else { return }
        guard committed else {
            logger.error("The store could not commit; closing the connection without acknowledging", metadata: metadata())
            closing = true
            held.removeAll()
            flushIfNeeded(context: context)
            context.close(promise: nil)
            return
        }
        let ready = held.committed(number)
        guard !ready.isEmpty else { return }
        for outbound in ready { write(outbound, context: context) }
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
    }

    /// Fires the wakers collected so far; taken out of `wakes` first, since a drain started here may collect
    /// wakers into it again.
    func fireWakes(on loop: any EventLoop) {
        WakeBatch.fire(wakes.take(), on: loop)
    }

    private func log(_ record: LogRecord) {
        var extra = Logger.Metadata()
        for (key, value) in record.metadata { extra[key] = "\(value)" }
        logger.log(level: Logger.Level(record.level), "\(record.message)", metadata: metadata(extra))
    }

    /// The connection's metadata (peer, and once connected client id and protocol version) plus `extra`.
    func metadata(_ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["net.peer": "\(machine.remoteAddress)", "net.listener": "\(transport.rawValue)"]
        if let clientIdentifier = machine.clientIdentifier, let version = machine.protocolVersion {
            metadata["mqtt.client_id"] = "\(clientIdentifier)"
            metadata["mqtt.version"] = "\(version.rawValue)"
        }
        metadata.merge(extra) { $1 }
        return metadata
    }
}

extension Logger.Level {
    init(_ level: LogRecord.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}
