#if os(Linux)
import CPetrelLinux
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Where idle connections hibernate, and the TCP listeners whose connections may.
///
/// A SwiftNIO channel costs about 2.3 KiB per connection, more than all of a connection's MQTT state. A
/// connection idle for a while (`ConnectionHibernation.idleTime`) gives its channel up and keeps only its MQTT
/// state; its socket waits here, in one epoll set watched by one thread, until a byte arrives or the peer hangs
/// up. Then, or when the engine needs the connection first (a message to deliver, its keep alive ran out, a
/// shutdown), it gets a new channel on its own event loop and carries on where it was.
///
/// NIO closes a channel's socket with the channel and tells no one its descriptor, so this thread also accepts
/// the listeners' connections: it knows each descriptor it hands to NIO, and a hibernating connection keeps a
/// copy (`dup`) made before its channel closes, which keeps the TCP connection open.
///
/// Who owns a hibernating socket: whoever takes its entry out of `parked` under the lock, the thread (on an
/// event) or the connection's own event loop (`reclaim`). Only the owner touches it afterwards.
final class ConnectionPark: Sendable {
    private let epoll: CInt
    /// Written to stop the thread.
    private let wakePipe: (read: CInt, write: CInt)
    private let state: NIOLockedValueBox<State>
    private let logger: Logger
    private let thread = NIOThreadPool(numberOfThreads: 1)

    private struct State {
        var parked: [CInt: Parked] = [:]
        var listeners: [CInt?] = []
        var nextGeneration: UInt32 = 1
        var stopping = false
        /// Listeners stop being watched while the process is out of descriptors, until then.
        var acceptPausedUntil: NIODeadline?
        /// Channels freed (connections that hibernated or closed) since memory was last handed back to the system.
        var channelsFreedSinceTrim = 0
    }

    private struct Parked {
        var generation: UInt32
        var connection: NIOLoopBound<MQTTConnectionHandler>
    }

    /// Memory is handed back at most this often, and only after this many channels were freed (about 2.3 KiB
    /// each).
    private static let trimInterval = TimeAmount.seconds(1)
    private static let trimAfterFreed = 64

    /// Event tokens: a hibernating socket's is its generation and descriptor; these flag the others.
    private static let listenerFlag: UInt64 = 1 << 63
    private static let wakePipeFlag: UInt64 = 1 << 62

    init(logger: Logger) throws {
        let epoll = cpetrel_epoll_create()
        guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        var fds: [CInt] = [0, 0]
        guard cpetrel_pipe(&fds) == 0 else {
            let code = errno
            close(epoll)
            throw IOError(errnoCode: code, reason: "pipe")
        }
        guard cpetrel_epoll_add(epoll, fds[0], Self.wakePipeFlag) == 0 else {
            let code = errno
            close(epoll)
            close(fds[0])
            close(fds[1])
            throw IOError(errnoCode: code, reason: "epoll_ctl")
        }
        self.epoll = epoll
        self.wakePipe = (fds[0], fds[1])
        self.state = NIOLockedValueBox(State())
        self.logger = logger
    }

    /// Hibernating connections right now.
    var parkedCount: Int { self.state.withLockedValue { $0.parked.count } }

    // MARK: - Listening

    /// Binds a listening socket to `host:port` (port 0 picks a free one) and returns the address it got.
    /// Connections are accepted once `start` runs.
    func listen(host: String, port: Int, backlog: CInt = 1024) throws -> SocketAddress {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family = address.protocol.rawValue
        let socketType = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(family, socketType, 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            var one: CInt = 1
            guard setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(SO_REUSEADDR)")
            }
            let bound = address.withSockAddr { pointer, size in bind(descriptor, pointer, socklen_t(size)) }
            guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind(\(address))") }
            guard Glibc.listen(descriptor, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
            let local = try Self.localAddress(of: descriptor)
            try self.state.withLockedValue { state in
                let token = Self.listenerFlag | UInt64(state.listeners.count)
                guard cpetrel_epoll_add(self.epoll, descriptor, token) == 0 else {
                    throw IOError(errnoCode: errno, reason: "epoll_ctl")
                }
                state.listeners.append(descriptor)
            }
            return local
        } catch {
            close(descriptor)
            throw error
        }
    }

    private static func localAddress(of descriptor: CInt) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
        switch CInt(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            return SocketAddress(address, host: "")
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            return SocketAddress(address, host: "")
        default:
            throw IOError(errnoCode: EAFNOSUPPORT, reason: "getsockname")
        }
    }

    /// Stops accepting: the listening sockets are closed (connections already accepted stay).
    func stopListening() {
        self.state.withLockedValue { state in
            for index in state.listeners.indices {
                guard let descriptor = state.listeners[index] else { continue }
                _ = cpetrel_epoll_del(self.epoll, descriptor)
                close(descriptor)
                state.listeners[index] = nil
            }
        }
    }

    // MARK: - Hibernating

    /// Watches `descriptor` for the hibernating `connection`; the generation names this stay (for `reclaim`).
    /// Nil when it cannot be watched: the caller keeps the descriptor.
    func park(_ descriptor: CInt, connection: NIOLoopBound<MQTTConnectionHandler>) -> UInt32? {
        let generation = self.state.withLockedValue { state -> UInt32? in
            guard !state.stopping else { return nil }
            let generation = state.nextGeneration
            state.nextGeneration = generation >= UInt32.max >> 2 ? 1 : generation + 1
            state.parked[descriptor] = Parked(generation: generation, connection: connection)
            return generation
        }
        guard let generation else { return nil }
        self.channelFreed()
        let token = UInt64(generation) << 32 | UInt64(UInt32(bitPattern: descriptor))
        guard cpetrel_epoll_add_oneshot(self.epoll, descriptor, token) == 0 else {
            let code = errno
            self.state.withLockedValue { _ = $0.parked.removeValue(forKey: descriptor) }
            self.logger.warning(
                "Cannot watch a hibernating connection",
                metadata: ["error": "\(IOError(errnoCode: code, reason: "epoll_ctl"))"]
            )
            return nil
        }
        return generation
    }

    /// A connection's channel went away (it hibernated or closed): after a burst of these, freed memory is
    /// handed back to the system, which otherwise keeps a peak's worth of pages after the clients leave.
    func channelFreed() {
        let count = self.state.withLockedValue { state -> Int in
            state.channelsFreedSinceTrim += 1
            return state.channelsFreedSinceTrim
        }
        // The thread may wait without a timeout: it has memory to hand back now.
        if count == Self.trimAfterFreed { self.nudge() }
    }

    /// Takes a hibernating socket back for its connection, which wants it before the peer sent anything. False
    /// when the thread took it first: the connection is then already being woken.
    func reclaim(_ descriptor: CInt, generation: UInt32) -> Bool {
        let taken = self.state.withLockedValue { state -> Bool in
            guard state.parked[descriptor]?.generation == generation else { return false }
            state.parked.removeValue(forKey: descriptor)
            return true
        }
        if taken { _ = cpetrel_epoll_del(self.epoll, descriptor) }
        return taken
    }

    // MARK: - The thread

    /// Starts the thread: accepted sockets go to `accepted`, which hands them to NIO.
    func start(accepted: @escaping @Sendable (CInt) -> Void) {
        self.thread.start()
        self.thread.submit { _ in self.run(accepted: accepted) }
    }

    /// Stops the thread and closes every socket still hibernating (after a graceful shutdown woke them all,
    /// none should be left).
    func stop() {
        let alreadyStopping = self.state.withLockedValue { state -> Bool in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !alreadyStopping else { return }
        self.nudge()
        try? self.thread.syncShutdownGracefully()
        self.stopListening()
        let left = self.state.withLockedValue { state -> [CInt] in
            defer { state.parked.removeAll() }
            return Array(state.parked.keys)
        }
        for descriptor in left { close(descriptor) }
        close(self.epoll)
        close(self.wakePipe.read)
        close(self.wakePipe.write)
    }

    /// Wakes the thread from `epoll_wait`.
    private func nudge() {
        var byte: UInt8 = 1
        _ = write(self.wakePipe.write, &byte, 1)
    }

    private func run(accepted: @Sendable (CInt) -> Void) {
        let capacity = 256
        var tokens = [UInt64](repeating: 0, count: capacity)
        var lastDescriptorWarning: NIODeadline?
        var lastTrim = NIODeadline.now()
        while true {
            let now = NIODeadline.now()
            let (timeout, trimDue) = self.state.withLockedValue { state -> (CInt, Bool) in
                var wait: TimeAmount? = state.acceptPausedUntil.map { $0 - now }
                var trimDue = false
                if state.channelsFreedSinceTrim >= Self.trimAfterFreed {
                    let untilTrim = lastTrim + Self.trimInterval - now
                    if untilTrim <= .zero {
                        trimDue = true
                        state.channelsFreedSinceTrim = 0
                    } else {
                        wait = min(wait ?? untilTrim, untilTrim)
                    }
                }
                guard let wait else { return (-1, trimDue) }
                return (CInt(max(0, min(1000, wait.nanoseconds / 1_000_000 + 1))), trimDue)
            }
            if trimDue {
                // The channels of hibernated and closed connections were freed in the middle of the heap, between
                // objects that live on; without this their pages stay resident.
                lastTrim = now
                _ = cpetrel_malloc_trim()
            }
            let count = tokens.withUnsafeMutableBufferPointer { buffer in
                cpetrel_epoll_wait(self.epoll, buffer.baseAddress, CInt(capacity), timeout)
            }
            if count < 0 {
                if errno == EINTR { continue }
                self.logger.error("Hibernation thread stops", metadata: ["error": "\(IOError(errnoCode: errno, reason: "epoll_wait"))"])
                return
            }
            self.resumeAcceptingIfDue()
            for token in tokens[0..<Int(count)] {
                if token & Self.wakePipeFlag != 0 {
                    var bytes = (UInt64(0), UInt64(0))
                    while withUnsafeMutableBytes(of: &bytes, { read(self.wakePipe.read, $0.baseAddress, $0.count) }) > 0 {}
                    if self.state.withLockedValue({ $0.stopping }) { return }
                } else if token & Self.listenerFlag != 0 {
                    let outOfDescriptors = self.accept(listener: Int(token & ~Self.listenerFlag), accepted: accepted)
                    if outOfDescriptors {
                        let now = NIODeadline.now()
                        if lastDescriptorWarning.map({ now - $0 >= .seconds(10) }) ?? true {
                            lastDescriptorWarning = now
                            self.logger.warning("Out of file descriptors: new connections wait in the backlog")
                        }
                    }
                } else {
                    self.wake(token)
                }
            }
        }
    }

    /// Accepts what is waiting on a listener (at most 64 at once, then the other events get their turn). True
    /// when the process ran out of descriptors: the listeners pause for 100 ms rather than spin.
    private func accept(listener index: Int, accepted: @Sendable (CInt) -> Void) -> Bool {
        var connections: [CInt] = []
        var outOfDescriptors = false
        self.state.withLockedValue { state in
            guard state.listeners.indices.contains(index), let listener = state.listeners[index] else { return }
            while connections.count < 64 {
                let connection = cpetrel_accept(listener)
                if connection >= 0 {
                    connections.append(connection)
                    continue
                }
                switch errno {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    outOfDescriptors = true
                    state.acceptPausedUntil = .now() + .milliseconds(100)
                    for (position, descriptor) in state.listeners.enumerated() {
                        guard let descriptor else { continue }
                        _ = cpetrel_epoll_set_enabled(self.epoll, descriptor, Self.listenerFlag | UInt64(position), 0)
                    }
                default:
                    break
                }
                break
            }
        }
        for connection in connections { accepted(connection) }
        return outOfDescriptors
    }

    private func resumeAcceptingIfDue() {
        self.state.withLockedValue { state in
            guard let until = state.acceptPausedUntil, until <= .now() else { return }
            state.acceptPausedUntil = nil
            for (position, descriptor) in state.listeners.enumerated() {
                guard let descriptor else { continue }
                _ = cpetrel_epoll_set_enabled(self.epoll, descriptor, Self.listenerFlag | UInt64(position), 1)
            }
        }
    }

    /// A hibernating socket became readable (a packet, or the peer hung up): its connection takes it back.
    private func wake(_ token: UInt64) {
        let descriptor = CInt(bitPattern: UInt32(truncatingIfNeeded: token))
        let generation = UInt32(truncatingIfNeeded: token >> 32)
        let parked = self.state.withLockedValue { state -> Parked? in
            guard state.parked[descriptor]?.generation == generation else { return nil }
            return state.parked.removeValue(forKey: descriptor)
        }
        guard let parked else { return }
        _ = cpetrel_epoll_del(self.epoll, descriptor)
        let connection = parked.connection
        connection.eventLoop.execute { connection.value.wakeFromHibernation() }
    }
}
#endif
