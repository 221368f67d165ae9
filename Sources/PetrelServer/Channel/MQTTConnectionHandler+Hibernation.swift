import NIOCore
import NIOPosix

/// The hibernation of one plain-TCP connection: a connected client idle for a while gives its channel up
/// (`hibernate`) and its socket waits in the server's `ConnectionPark`; the handler stays, with all of the
/// connection's state, listed in its loop's `EventLoopConnections`, and is added to a new channel for the same
/// socket when the connection wakes (`attach`). What woke it (a message to deliver, a deadline, a shutdown) is
/// done once that channel is active.
///
/// TLS and WebSocket connections have none: their state lives in the handlers in front of this one.
struct HibernationController {
    let settings: ConnectionHibernation
    /// The connection's socket: the channel's, or while hibernating the copy that waits in the park.
    var socket: CInt
    var phase = Phase.attached
    /// Work that waits for the channel of a waking connection.
    var afterWaking = WakeWork()
    /// The generation of the socket's current stay in the park.
    var parkGeneration: UInt32 = 0
    /// The last packet read or written.
    var lastActivity: NIODeadline

    enum Phase: UInt8 {
        /// On a channel.
        case attached
        /// Without a channel; the socket waits in the park.
        case hibernating
        /// Getting a new channel.
        case waking
    }

    struct WakeWork: OptionSet {
        var rawValue: UInt8
        static let deliver = WakeWork(rawValue: 1)
        static let deadline = WakeWork(rawValue: 2)
        static let shutdown = WakeWork(rawValue: 4)
    }

    init(settings: ConnectionHibernation, socket: CInt, now: NIODeadline) {
        self.settings = settings
        self.socket = socket
        self.lastActivity = now
    }
}

extension MQTTConnectionHandler {
    /// On a channel: always, unless hibernating or waking.
    var isAttached: Bool {
        hibernation?.phase ?? .attached == .attached
    }

    /// A woken connection's new channel took the handler: true when this was such a wake-up (the handler is
    /// still listed and still the waker's; only the channel is new).
    func attachedAfterWaking() -> Bool {
        guard hibernation?.phase == .waking else { return false }
        let now = NIODeadline.now()
        hibernation?.phase = .attached
        hibernation?.lastActivity = now
        connections.setDeadline(nextDeadline(now: now), for: self)
        return true
    }

    /// Does what came for the connection while it had no channel, now that its new one is active.
    func performWorkAfterWaking() {
        guard let work = hibernation?.afterWaking, !work.isEmpty else { return }
        hibernation?.afterWaking = []
        if work.contains(.shutdown) {
            serverShutdown()
        } else {
            if work.contains(.deadline) { deadlinePassed(now: .now()) }
            if work.contains(.deliver) { deliverPending() }
        }
    }

    /// The keep-alive deadline, or earlier the time this connection would hibernate if nothing happens.
    func nextDeadline(now: NIODeadline) -> NIODeadline {
        let keepAlive = machine.tickDeadline ?? .distantFuture
        guard let hibernation, machine.isConnected else { return keepAlive }
        var hibernateAt = hibernation.lastActivity + hibernation.settings.idleTime
        // Not hibernated although idle (writes still buffered, say): look again in a while.
        if hibernateAt <= now { hibernateAt = now + hibernation.settings.idleTime }
        return min(keepAlive, hibernateAt)
    }

    /// Hibernates when the connection has been idle long enough and nothing is half done.
    func hibernateIfIdle(now: NIODeadline, context: ChannelHandlerContext) -> Bool {
        guard let hibernation, machine.isConnected, now - hibernation.lastActivity >= hibernation.settings.idleTime
        else { return false }
        return hibernate(context: context, settings: hibernation.settings)
    }

    /// Gives the channel up and leaves the socket to the park, when nothing is half done: no packet half read,
    /// nothing buffered to write, no acknowledgement waiting for the store.
    private func hibernate(context: ChannelHandlerContext, settings: ConnectionHibernation) -> Bool {
        guard let socket = hibernation?.socket, socket >= 0, isIdleOnTheWire, context.channel.isWritable else {
            return false
        }
        guard let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes), buffered == 0 else {
            return false
        }
        guard let copy = ConnectionHibernation.duplicate(socket) else {
            logger.debug("cannot hibernate: no descriptor left for the copy", metadata: metadata())
            return false
        }
        // From here the old channel's events are not this connection's (`context` no longer matches).
        self.context = nil
        hibernation?.phase = .hibernating
        hibernation?.socket = copy
        context.close(promise: nil)
        guard let generation = settings.park(copy, connection: NIOLoopBound(self, eventLoop: context.eventLoop)) else {
            // Cannot be watched: straight back onto a channel.
            attach()
            return true
        }
        hibernation?.parkGeneration = generation
        logger.trace("hibernating", metadata: metadata())
        return true
    }

    /// The engine needs this connection while it hibernates, or waits for its channel.
    func wake(for work: HibernationController.WakeWork) {
        hibernation?.afterWaking.insert(work)
        guard let hibernation, hibernation.phase == .hibernating else { return }
        // When the park woke it first, its wake-up is already on the way here.
        guard hibernation.settings.reclaim(hibernation.socket, generation: hibernation.parkGeneration) else { return }
        attach()
    }

    /// The park saw the socket readable (a packet, or the peer hung up) and gave it back.
    func wakeFromHibernation() {
        guard hibernation?.phase == .hibernating else { return }
        attach()
    }

    /// A new channel for the socket, on this connection's event loop, with this handler in it.
    private func attach() {
        guard let hibernation else { return }
        self.hibernation?.phase = .waking
        let loop = waker.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        logger.trace("waking", metadata: metadata())
        hibernation.settings.channelOptions.clientBootstrap(on: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .withConnectedSocket(hibernation.socket)
            .whenFailure { error in bound.value.wakingFailed(error) }
    }

    /// No channel for the socket: the connection is lost (its will goes out, its session stays or ends).
    private func wakingFailed(_ error: any Error) {
        guard hibernation?.phase == .waking else { return }
        logger.warning("cannot wake a hibernating connection", metadata: metadata(["error": "\(error)"]))
        hibernation?.phase = .attached
        hibernation?.afterWaking = []
        connectionLost()
    }
}
