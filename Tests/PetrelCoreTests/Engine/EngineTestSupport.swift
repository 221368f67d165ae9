import NIOCore
import Synchronization
import Testing

@testable import PetrelCore

/// Records how often the engine asked for this connection to be woken.
final class RecordingWaker: DeliveryWaker {
    private let wakes = Mutex(0)
    func wake() { self.wakes.withLock { $0 += 1 } }
    var count: Int { self.wakes.withLock { $0 } }
}

/// A fixed origin for the engine clock in tests.
let origin = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

func at(_ seconds: Int64, milliseconds: Int64 = 0) -> NIODeadline {
    origin + .seconds(seconds) + .milliseconds(milliseconds)
}

func payload(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

extension ConnectionActions {
    /// Outbound packets with deliveries rendered for `version`.
    func packets(_ version: ProtocolVersion) -> [MQTTPacket] {
        self.outbound.map {
            switch $0 {
            case .packet(let packet): return packet
            case .publish(let publish): return .publish(publish.packet(for: version))
            }
        }
    }

    /// `packets` without Reason Strings and User Properties, for comparing reason codes only.
    func plainPackets(_ version: ProtocolVersion) -> [MQTTPacket] {
        self.packets(version).map { $0.withoutProblemInformation ?? $0 }
    }

    var publishes: [OutboundPublish] {
        self.outbound.compactMap { if case .publish(let publish) = $0 { return publish } else { return nil } }
    }

    var nonPublishPackets: [MQTTPacket] {
        self.outbound.compactMap { if case .packet(let packet) = $0 { return packet } else { return nil } }
    }

    func wakes(_ client: TestClient) -> Bool { self.wake.contains { $0 === client.waker } }
}

/// One simulated connection.
struct TestClient {
    let waker = RecordingWaker()
    var machine: ConnectionStateMachine
    let version: ProtocolVersion

    init(_ broker: Broker, version: ProtocolVersion = .v5, now: NIODeadline = at(0), address: String = "127.0.0.1:1") {
        self.version = version
        self.machine = ConnectionStateMachine(broker: broker, waker: self.waker, remoteAddress: address, now: now)
    }

    @discardableResult
    mutating func send(_ packet: MQTTPacket, at now: NIODeadline = at(0)) -> ConnectionActions {
        self.machine.receive(packet, now: now)
    }

    /// Sends CONNECT and returns the actions; the CONNACK is the first outbound packet.
    @discardableResult
    mutating func connect(
        _ clientIdentifier: String,
        cleanStart: Bool = true,
        keepAlive: UInt16 = 60,
        will: MQTTPacket.Will? = nil,
        username: String? = nil,
        properties: MQTTProperties = .init(),
        at now: NIODeadline = at(0)
    ) -> ConnectionActions {
        self.send(
            .connect(
                MQTTPacket.Connect(
                    protocolVersion: self.version,
                    clientIdentifier: clientIdentifier,
                    cleanStart: cleanStart,
                    keepAlive: keepAlive,
                    will: will,
                    username: username,
                    properties: properties
                )
            ),
            at: now
        )
    }

    @discardableResult
    mutating func subscribe(
        _ filter: String,
        qos: QoS = .exactlyOnce,
        packetIdentifier: UInt16 = 1,
        options: MQTTPacket.SubscriptionOptions? = nil,
        identifier: UInt32? = nil,
        at now: NIODeadline = at(0)
    ) -> ConnectionActions {
        var properties = MQTTProperties()
        if let identifier { properties.subscriptionIdentifiers = [identifier] }
        return self.send(
            .subscribe(
                MQTTPacket.Subscribe(
                    packetIdentifier: packetIdentifier,
                    subscriptions: [MQTTPacket.TopicSubscription(filter: filter, options: options ?? .init(qos: qos))],
                    properties: properties
                )
            ),
            at: now
        )
    }

    @discardableResult
    mutating func publish(
        _ topic: String,
        _ body: String,
        qos: QoS = .atMostOnce,
        retain: Bool = false,
        packetIdentifier: UInt16? = nil,
        dup: Bool = false,
        properties: MQTTProperties = .init(),
        at now: NIODeadline = at(0)
    ) -> ConnectionActions {
        self.send(
            .publish(
                MQTTPacket.Publish(
                    topic: topic,
                    payload: payload(body),
                    qos: qos,
                    retain: retain,
                    dup: dup,
                    packetIdentifier: qos == .atMostOnce ? nil : (packetIdentifier ?? 1),
                    properties: properties
                )
            ),
            at: now
        )
    }

    mutating func deliver(at now: NIODeadline = at(0)) -> ConnectionActions {
        self.machine.deliverPending(now: now)
    }
}

func connack(_ actions: ConnectionActions) -> MQTTPacket.ConnAck? {
    guard case .packet(.connack(let connack))? = actions.outbound.first else { return nil }
    return connack
}

func disconnectReason(_ actions: ConnectionActions) -> ReasonCode? {
    for packet in actions.nonPublishPackets {
        if case .disconnect(let disconnect) = packet { return disconnect.reasonCode }
    }
    return nil
}

extension OutboundPublish {
    var body: String { String(buffer: self.message.payload) }
}
