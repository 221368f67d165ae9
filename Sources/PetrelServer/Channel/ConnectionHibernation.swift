import NIOCore
#if os(Linux)
import CPetrelLinux
#endif
import NIOPosix

/// The channel options of every client connection, applied alike to an accepted connection and to one woken
/// from hibernation.
struct ConnectionChannelOptions: Sendable {
    var writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark
    /// The channel keeps its last receive buffer for the next read: start at the minimum (NIO's default is
    /// 2 KiB) so that an idle connection holds 64 bytes; a busy one grows it on every full read, up to 64 KiB
    /// within a few reads of one readable event (`maxMessagesPerRead`).
    var receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64, maximum: 65536)
    var maxMessagesPerRead: UInt = 16

    /// A bootstrap that wraps already connected sockets into channels on `loop`.
    func clientBootstrap(on loop: any EventLoop) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: self.writeBufferWaterMark)
            .channelOption(.maxMessagesPerRead, value: self.maxMessagesPerRead)
            .channelOption(.recvAllocator, value: self.receiveAllocator)
    }
}

/// What a connection needs to hibernate when idle: where its socket waits (`ConnectionPark`), after how long,
/// and how to make it a channel again. One per server, shared by its connections. Linux only.
final class ConnectionHibernation: Sendable {
    /// A connected client that neither sent nor was sent anything for this long hibernates.
    let idleTime: TimeAmount
    let channelOptions: ConnectionChannelOptions
    #if os(Linux)
    let park: ConnectionPark

    init(idleTime: TimeAmount, channelOptions: ConnectionChannelOptions, park: ConnectionPark) {
        self.idleTime = idleTime
        self.channelOptions = channelOptions
        self.park = park
    }
    #endif

    /// Watches the socket of a connection that gave up its channel; nil when it cannot (the caller keeps it).
    func park(_ descriptor: CInt, connection: NIOLoopBound<MQTTConnectionHandler>) -> UInt32? {
        #if os(Linux)
        return self.park.park(descriptor, connection: connection)
        #else
        return nil
        #endif
    }

    /// The connection closed: its channel's memory is free.
    func channelFreed() {
        #if os(Linux)
        self.park.channelFreed()
        #endif
    }

    /// Takes a hibernating socket back; false when the park is already waking the connection.
    func reclaim(_ descriptor: CInt, generation: UInt32) -> Bool {
        #if os(Linux)
        return self.park.reclaim(descriptor, generation: generation)
        #else
        return false
        #endif
    }

    /// A copy of `descriptor` that keeps the connection open when the channel closes its own; nil on failure.
    static func duplicate(_ descriptor: CInt) -> CInt? {
        #if os(Linux)
        let copy = cpetrel_dup(descriptor)
        return copy >= 0 ? copy : nil
        #else
        return nil
        #endif
    }
}
