import MQTTWire
import Synchronization

/// What the server's connections received and sent, and how many are connected, by listener transport and
/// protocol version: for metrics and `$SYS`.
///
/// Each event loop counts into its own `LoopTraffic`, written only on that loop, so counting a message is a
/// relaxed load and store on a cache line no other core writes (no atomic read-modify-write shared by every
/// publisher); a scrape sums the loops.
public final class TrafficCounters: Sendable {
    let loops: [LoopTraffic]

    init(loops: Int) {
        self.loops = (0..<max(1, loops)).map { _ in LoopTraffic() }
    }

    public func snapshot() -> TrafficSnapshot {
        var snapshot = TrafficSnapshot()
        for loop in loops {
            for transport in ListenerConfiguration.Transport.allCases {
                for version in ProtocolVersion.allCases {
                    let count = loop.connected[LoopTraffic.slot(transport, version)].read()
                    if count != 0 { snapshot.connections[.init(transport: transport, version: version), default: 0] += count }
                }
            }
            for qos in QoS.allCases {
                let index = Int(qos.rawValue)
                snapshot.messagesReceived[index] += loop.publishesIn[index].read()
                snapshot.payloadBytesReceived[index] += loop.payloadIn[index].read()
                snapshot.messagesSent[index] += loop.publishesOut[index].read()
                snapshot.payloadBytesSent[index] += loop.payloadOut[index].read()
            }
            snapshot.bytesReceived += loop.bytesIn.read()
            snapshot.bytesSent += loop.bytesOut.read()
            snapshot.packetsReceived += loop.packetsIn.read()
            snapshot.packetsSent += loop.packetsOut.read()
        }
        return snapshot
    }
}

/// The sum of every loop's traffic counters.
public struct TrafficSnapshot: Sendable, Hashable {
    public struct ConnectionKind: Sendable, Hashable {
        public var transport: ListenerConfiguration.Transport
        public var version: ProtocolVersion

        public init(transport: ListenerConfiguration.Transport, version: ProtocolVersion) {
            self.transport = transport
            self.version = version
        }
    }

    /// Connected clients (CONNACK sent, not yet closed) by listener transport and protocol version.
    public var connections: [ConnectionKind: Int] = [:]
    /// PUBLISH packets received from clients, by QoS (index 0, 1, 2).
    public var messagesReceived = [0, 0, 0]
    public var payloadBytesReceived = [0, 0, 0]
    /// PUBLISH packets written to clients, by QoS, retransmissions included.
    public var messagesSent = [0, 0, 0]
    public var payloadBytesSent = [0, 0, 0]
    /// Bytes read from and written to the connections' MQTT streams (below TLS and WebSocket framing).
    public var bytesReceived = 0
    public var bytesSent = 0
    /// MQTT packets of every type read and written.
    public var packetsReceived = 0
    public var packetsSent = 0

    public var connectionsTotal: Int { connections.values.reduce(0, +) }
}

/// One event loop's counters. Only its loop writes them (`add` is a load and a store, not a read-modify-write);
/// any thread may read them.
final class LoopTraffic: Sendable {
    let connected: [TrafficCell]
    let publishesIn = [TrafficCell(), TrafficCell(), TrafficCell()]
    let payloadIn = [TrafficCell(), TrafficCell(), TrafficCell()]
    let publishesOut = [TrafficCell(), TrafficCell(), TrafficCell()]
    let payloadOut = [TrafficCell(), TrafficCell(), TrafficCell()]
    let bytesIn = TrafficCell()
    let bytesOut = TrafficCell()
    /// MQTT packets of every type.
    let packetsIn = TrafficCell()
    let packetsOut = TrafficCell()

    init() {
        self.connected = (0..<(ListenerConfiguration.Transport.allCases.count * ProtocolVersion.allCases.count))
            .map { _ in TrafficCell() }
    }

    static func slot(_ transport: ListenerConfiguration.Transport, _ version: ProtocolVersion) -> Int {
        let transportIndex = ListenerConfiguration.Transport.allCases.firstIndex(of: transport)!
        let versionIndex = ProtocolVersion.allCases.firstIndex(of: version)!
        return transportIndex * ProtocolVersion.allCases.count + versionIndex
    }

    func received(qos: QoS, payloadBytes: Int) {
        let index = Int(qos.rawValue)
        publishesIn[index].add(1)
        payloadIn[index].add(payloadBytes)
    }

    func sent(qos: QoS, payloadBytes: Int) {
        let index = Int(qos.rawValue)
        publishesOut[index].add(1)
        payloadOut[index].add(payloadBytes)
    }
}

/// A counter with one writer thread.
final class TrafficCell: Sendable {
    private let value = Atomic<Int>(0)

    init() {}

    /// Only from the owning thread: two writers would lose counts.
    @inline(__always)
    func add(_ amount: Int) {
        value.store(value.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    func read() -> Int { value.load(ordering: .relaxed) }
}
