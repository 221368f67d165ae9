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
/// With hibernation on, a connected client idle for a while gives its channel up (`hibernate`) and its socket
/// waits in the server's `ConnectionPark`; this handler stays, with all of the connection's state, listed in its
/// loop's `EventLoopConnections`, and is added to a new channel for the same socket when the connection wakes
/// (`attach`). What woke it (a message to deliver, a deadline, a shutdown) is done once that channel is active.
final class MQTTConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var parser: MQTTPacketParser
    /// The start of a packet whose end has not arrived yet.
    private var partial: ByteBuffer?
    private var machine: ConnectionStateMachine
    private let waker: ConnectionWaker
    private let connections: EventLoopConnections
    /// This connection's slot in `connections`; -1 when not listed.
    var connectionIndex = -1
    /// The server's logger, shared: the connection's metadata is added per log line (`metadata(_:)`), which is
    /// rare, rather than kept in a per-connection copy of the log handler.
    private let logger: Logger
    private var context: ChannelHandlerContext?

    private var wakes = WakeBatch()
    private var needsFlush = false
    private var closing = false
    /// Set while a closed connection still reads and discards what its peer sends (`closeLingering`).
    private var lingerTimeout: Scheduled<Void>?
    /// Woken while the socket was not writable: drain once it is.
    private var deliveryDeferred = false
    /// A read was asked for while the socket was not writable: pass it on once it is.
    private var readDeferred = false
    /// The layout of the CONNACK that refuses an unsupported protocol version [MQTT-3.1.2-2].
    private var refusalVersion: ProtocolVersion?
    /// Packets waiting for a store commit ticket (`ticket` set) and everything after them, in order.
    private var held: [HeldWrite] = []
    private var nextTicket: UInt64 = 0

    /// Hibernation when idle; nil when off.
    private let hibernation: ConnectionHibernation?
    /// The connection's socket: the channel's, or while hibernating the copy that waits in the park; -1 when
    /// not known (hibernation off).
    private var socket: CInt
    private var phase = Phase.attached
    /// Work that waits for the channel of a waking connection.
    private var afterWaking = WakeWork()
    /// The generation of the socket's current stay in the park.
    private var parkGeneration: UInt32 = 0
    /// The last packet read or written, for hibernation.
    private var lastActivity: NIODeadline

    private enum Phase: UInt8 {
        /// On a channel.
        case attached
        /// Without a channel; the socket waits in the park.
        case hibernating
        /// Getting a new channel.
        case waking
    }

    private struct WakeWork: OptionSet {
        var rawValue: UInt8
        static let deliver = WakeWork(rawValue: 1)
        static let deadline = WakeWork(rawValue: 2)
        static let shutdown = WakeWork(rawValue: 4)
    }

    private struct HeldWrite {
        var outbound: [OutboundPacket]
        /// The ticket still awaited; nil once committed (or for packets only queued behind one).
        var ticket: UInt64?
    }

    init(
        broker: Broker,
        waker: ConnectionWaker,
        connections: EventLoopConnections,
        remoteAddress: String,
        maximumPacketSize: Int,
        socket: CInt = -1,
        hibernation: ConnectionHibernation? = nil,
        transportUser: ConnectionStateMachine.TransportUser = .fromConnect,
        logger: Logger
    ) {
        let now = NIODeadline.now()
        self.socket = socket
        self.hibernation = socket >= 0 ? hibernation : nil
        self.lastActivity = now
        self.parser = MQTTPacketParser(maximumPacketSize: maximumPacketSize)
        // The operating system's cryptographically secure generator feeds authentication nonces and salts.
        self.machine = ConnectionStateMachine(
            broker: broker,
            waker: waker,
            remoteAddress: remoteAddress,
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
        if phase == .waking {
            // Still listed, still the waker's: only the channel is new.
            phase = .attached
            let now = NIODeadline.now()
            lastActivity = now
            connections.setDeadline(nextDeadline(now: now), for: self)
            return
        }
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
        if !afterWaking.isEmpty {
            let work = afterWaking
            afterWaking = []
            if work.contains(.shutdown) {
                serverShutdown()
            } else {
                if work.contains(.deadline) { deadlinePassed(now: .now()) }
                if work.contains(.deliver) { deliverPending() }
            }
        }
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
        hibernation?.channelFreed()
        perform(machine.connectionClosed(now: .now()), context: context)
        fireWakes(on: context.eventLoop)
        waker.handler = nil
        context.fireChannelInactive()
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var bytes = unwrapInboundIn(data)
        if var buffered = partial.take() {
            buffered.writeBuffer(&bytes)
            bytes = buffered
        }
        let now = NIODeadline.now()
        lastActivity = now
        while !closing, let packet = parse(&bytes, now: now, context: context) {
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
        let wasConnected = machine.isConnected
        perform(machine.receive(packet, now: now), context: context)
        // The CONNACK may follow the CONNECT or, with enhanced authentication, the last AUTH. Later packets
        // move the keep-alive deadline within the engine; the connection looks at it when the old one passes.
        if !wasConnected, !closing, machine.isConnected {
            connections.setDeadline(nextDeadline(now: now), for: self)
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
        if context.channel.isWritable {
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
            if readDeferred {
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
        guard phase == .attached else { return wake(for: .deliver) }
        guard let context, !closing else { return }
        guard context.channel.isWritable else {
            deliveryDeferred = true
            return
        }
        let now = NIODeadline.now()
        lastActivity = now
        perform(machine.deliverPending(now: now), context: context)
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
    }

    func serverShutdown() {
        guard phase == .attached else { return wake(for: .shutdown) }
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
        guard phase == .attached else {
            // Only the keep alive is watched while hibernating: the engine closes the connection on its channel.
            return wake(for: .deadline)
        }
        guard let context, !closing else { return }
        perform(machine.tick(now: now), context: context)
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
        guard !closing else { return }
        if let hibernation, machine.isConnected, now - lastActivity >= hibernation.idleTime,
            hibernate(context: context, hibernation: hibernation)
        {
            connections.setDeadline(machine.tickDeadline ?? .distantFuture, for: self)
            return
        }
        connections.setDeadline(nextDeadline(now: now), for: self)
    }

    /// The keep-alive deadline, or earlier the time this connection would hibernate if nothing happens.
    private func nextDeadline(now: NIODeadline) -> NIODeadline {
        let keepAlive = machine.tickDeadline ?? .distantFuture
        guard let hibernation, machine.isConnected else { return keepAlive }
        var hibernateAt = lastActivity + hibernation.idleTime
        // Not hibernated although idle (writes still buffered, say): look again in a while.
        if hibernateAt <= now { hibernateAt = now + hibernation.idleTime }
        return min(keepAlive, hibernateAt)
    }

    // MARK: - Hibernation

    /// Gives the channel up and leaves the socket to the park, when nothing is half done: no packet half read,
    /// nothing buffered to write, no acknowledgement waiting for the store.
    private func hibernate(context: ChannelHandlerContext, hibernation: ConnectionHibernation) -> Bool {
        guard socket >= 0, partial == nil, held.isEmpty, gathered == nil, !needsFlush, !deliveryDeferred,
            !readDeferred, context.channel.isWritable
        else { return false }
        guard let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes), buffered == 0 else {
            return false
        }
        guard let copy = ConnectionHibernation.duplicate(socket) else {
            logger.debug("cannot hibernate: no descriptor left for the copy", metadata: metadata())
            return false
        }
        // From here the old channel's events are not this connection's (`context` no longer matches).
        self.context = nil
        phase = .hibernating
        socket = copy
        context.close(promise: nil)
        guard let generation = hibernation.park(copy, connection: NIOLoopBound(self, eventLoop: context.eventLoop)) else {
            // Cannot be watched: straight back onto a channel.
            attach(hibernation: hibernation)
            return true
        }
        parkGeneration = generation
        logger.trace("hibernating", metadata: metadata())
        return true
    }

    /// The engine needs this connection while it hibernates, or waits for its channel.
    private func wake(for work: WakeWork) {
        afterWaking.insert(work)
        guard phase == .hibernating, let hibernation else { return }
        // When the park woke it first, its wake-up is already on the way here.
        guard hibernation.reclaim(socket, generation: parkGeneration) else { return }
        attach(hibernation: hibernation)
    }

    /// The park saw the socket readable (a packet, or the peer hung up) and gave it back.
    func wakeFromHibernation() {
        guard phase == .hibernating, let hibernation else { return }
        attach(hibernation: hibernation)
    }

    /// A new channel for the socket, on this connection's event loop, with this handler in it.
    private func attach(hibernation: ConnectionHibernation) {
        phase = .waking
        let loop = waker.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        logger.trace("waking", metadata: metadata())
        hibernation.channelOptions.clientBootstrap(on: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .withConnectedSocket(socket)
            .whenFailure { error in bound.value.wakingFailed(error) }
    }

    /// No channel for the socket: the connection is lost (its will goes out, its session stays or ends).
    private func wakingFailed(_ error: any Error) {
        guard phase == .waking else { return }
        logger.warning("cannot wake a hibernating connection", metadata: metadata(["error": "\(error)"]))
        phase = .attached
        closing = true
        afterWaking = []
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

    private func perform(_ actions: ConnectionActions, context: ChannelHandlerContext) {
        for record in actions.logs { log(record) }
        if let ticket = actions.commit {
            hold(actions.outbound, until: ticket, context: context)
        } else if !held.isEmpty {
            // Nothing may overtake a held acknowledgement.
            if !actions.outbound.isEmpty { held.append(HeldWrite(outbound: actions.outbound, ticket: nil)) }
        } else {
            for outbound in actions.outbound { write(outbound, context: context) }
        }
        if !actions.wake.isEmpty { wakes.append(contentsOf: actions.wake) }
        if actions.close, !closing {
            // Held packets were not made durable yet: they are not sent (the client sends again).
            held.removeAll()
            closeLingering(context: context)
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
        nextTicket &+= 1
        let number = nextTicket
        held.append(HeldWrite(outbound: outbound, ticket: number))
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
        if let index = held.firstIndex(where: { $0.ticket == number }) { held[index].ticket = nil }
        var released = 0
        while released < held.count, held[released].ticket == nil { released += 1 }
        guard released > 0 else { return }
        let ready = held[0..<released]
        held.removeFirst(released)
        for entry in ready {
            for outbound in entry.outbound { write(outbound, context: context) }
        }
        flushIfNeeded(context: context)
        fireWakes(on: context.eventLoop)
    }

    /// Packets of the current batch not handed to the channel yet: acknowledgements, PUBLISH headers and
    /// payloads up to `gatherLimit` bytes are copied into one buffer, written once at the flush, instead of one
    /// buffer and one `write` per packet. Nil between batches, so an idle connection keeps no buffer.
    private var gathered: ByteBuffer?
    /// The size of the last gathered batch, to allocate the next one at about the right size.
    private var lastGatheredBytes = 256
    /// Larger payloads are written as their own slice of the publisher's buffer rather than copied.
    private static let gatherLimit = 2048

    private func takeGatheredBuffer(context: ChannelHandlerContext) -> ByteBuffer {
        if let buffer = gathered.take() { return buffer }
        return context.channel.allocator.buffer(capacity: lastGatheredBytes)
    }

    /// Hands the gathered bytes to the channel (before a large payload, or at the flush).
    private func writeGathered(context: ChannelHandlerContext) {
        guard let buffer = gathered.take() else { return }
        guard buffer.readableBytes > 0 else { return }
        lastGatheredBytes = max(256, min(buffer.readableBytes, 1 << 16))
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    private func write(_ outbound: OutboundPacket, context: ChannelHandlerContext) {
        let version = machine.protocolVersion ?? refusalVersion ?? .v3_1_1
        switch outbound {
        case .packet(let packet):
            var buffer = takeGatheredBuffer(context: context)
            let start = buffer.writerIndex
            let fits: Bool
            do {
                try buffer.writeMQTTPacket(packet, version: version)
                if let limit = machine.maximumOutboundPacketSize, buffer.writerIndex - start > Int(limit) {
                    // Leave out the Reason String and User Properties first [MQTT-3.1.2-25]; drop the packet
                    // only if it still does not fit.
                    buffer.moveWriterIndex(to: start)
                    if let smaller = packet.withoutProblemInformation {
                        try buffer.writeMQTTPacket(smaller, version: version)
                        fits = buffer.writerIndex - start <= Int(limit)
                    } else {
                        fits = false
                    }
                } else {
                    fits = true
                }
            } catch {
                buffer.moveWriterIndex(to: start)
                gathered = buffer
                logger.error("cannot encode packet", metadata: metadata(["mqtt.packet": "\(packet.type)", "error": "\(error)"]))
                return
            }
            guard fits else {
                buffer.moveWriterIndex(to: start)
                gathered = buffer
                perform(machine.outboundPacketTooLarge(packet), context: context)
                return
            }
            gathered = buffer
            needsFlush = true
        case .publish(let delivery):
            writePublish(delivery, version: version, context: context)
        }
    }

    private func writePublish(_ delivery: OutboundPublish, version: ProtocolVersion, context: ChannelHandlerContext) {
        let delivery = machine.prepareForSending(delivery)
        let payload = delivery.message.payload
        var buffer = takeGatheredBuffer(context: context)
        let start = buffer.writerIndex
        let headerLength: Int
        do {
            headerLength = try PublishEncoding.writeHeader(delivery, version: version, into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            gathered = buffer
            logger.error("cannot encode PUBLISH", metadata: metadata(["mqtt.topic": "\(delivery.message.topic)", "error": "\(error)"]))
            return
        }
        if let limit = machine.maximumOutboundPacketSize, headerLength + payload.readableBytes > Int(limit) {
            // [MQTT-3.1.2-25]: a packet above the client's Maximum Packet Size is discarded, as if delivered.
            buffer.moveWriterIndex(to: start)
            gathered = buffer
            perform(machine.outboundPublishTooLarge(delivery, now: .now()), context: context)
            return
        }
        needsFlush = true
        if payload.readableBytes <= Self.gatherLimit {
            buffer.writeImmutableBuffer(payload)
            gathered = buffer
        } else {
            gathered = buffer
            writeGathered(context: context)
            context.write(wrapOutboundOut(payload), promise: nil)
        }
    }

    /// Fires the wakers collected so far; taken out of `wakes` first, since a drain started here may collect
    /// wakers into it again.
    private func fireWakes(on loop: any EventLoop) {
        WakeBatch.fire(wakes.take(), on: loop)
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        writeGathered(context: context)
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    private func log(_ record: LogRecord) {
        var extra = Logger.Metadata()
        for (key, value) in record.metadata { extra[key] = "\(value)" }
        logger.log(level: Logger.Level(record.level), "\(record.message)", metadata: metadata(extra))
    }

    /// The connection's metadata (peer, and once connected client id and protocol version) plus `extra`.
    private func metadata(_ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["net.peer": "\(machine.remoteAddress)"]
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
