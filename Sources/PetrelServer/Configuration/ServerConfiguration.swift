import NIOCore
import PetrelCore

/// Everything the server needs to run, with documented defaults.
public struct ServerConfiguration: Sendable {
    /// Addresses to listen on, one TCP listener each. `0.0.0.0` is every IPv4 interface; `::` is every
    /// interface, IPv6 and (dual-stack, the Linux default) IPv4. Default: `127.0.0.1`.
    public var hosts: [String] = ["127.0.0.1"]
    /// TCP port of the `hosts` listeners. Default: 1883; 0 picks a free port (the log line names it).
    public var port: Int = 1883
    /// Listeners besides those of `hosts` and `port`, over any transport: TLS and WebSockets (`mqtts`, `ws`,
    /// `wss`) need `MQTTServer`'s TLS contexts for the TLS ones. Default: none.
    public var listeners: [ListenerConfiguration] = []
    /// Event loop threads. Default: one per core.
    public var eventLoopThreads: Int = System.coreCount
    /// Write-buffer watermarks per connection: above `high` a connection stops being drained and its reads
    /// pause until it falls below `low`, so a client that does not read cannot grow the broker's memory.
    public var writeBufferLowWatermark: Int = 64 * 1024
    public var writeBufferHighWatermark: Int = 256 * 1024
    /// How often the engine's timers (delayed wills, session expiry) run. Default: 1 s.
    public var brokerTickInterval: TimeAmount = .seconds(1)
    /// How often each event loop looks for connections whose connect timeout or keep alive (1.5 times the
    /// client's, without a packet) ran out; such a connection is closed at most this late. Default: 250 ms.
    public var connectionTimeoutCheckInterval: TimeAmount = .milliseconds(250)
    /// A connected client that neither sends nor is sent anything for this long hibernates: it gives up its
    /// network channel (about 2.3 KiB) and keeps only its MQTT state until its next packet, the next message for
    /// it, or its keep alive running out (see docs/hibernation.md). Nil turns hibernation off. Linux only; other
    /// systems ignore it. Default: 10 s.
    public var hibernateAfter: TimeAmount? = .seconds(10)
    /// Most connections open at once, over every listener; one more is closed as soon as it is accepted.
    /// Default 0: no bound (the process's file limit is one).
    public var maximumConnections: Int = 0
    /// Most connections open at once from one client address. Default 0: no bound.
    public var maximumConnectionsPerAddress: Int = 0
    /// Longest wait for connections to close during a graceful shutdown. Default: 5 s.
    public var shutdownGracePeriod: TimeAmount = .seconds(5)
    /// The engine's limits and behaviour.
    public var broker: BrokerConfiguration = .init()

    public init() {}

    /// Every listener: plain TCP on each of `hosts` at `port`, then `listeners`.
    public var allListeners: [ListenerConfiguration] {
        hosts.map { ListenerConfiguration(transport: .mqtt, host: $0, port: port) } + listeners
    }
}
