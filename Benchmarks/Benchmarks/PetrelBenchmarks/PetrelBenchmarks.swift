import Benchmark
import MQTTWire
import NIOCore
import PetrelCore

// Micro benchmarks of the hot paths: wire decode and encode of a PUBLISH, topic matching against a large
// subscription trie, and routing one message to many subscribers through the engine.
//
//     cd Benchmarks && swift package benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 10_000
    )

    // MARK: - Wire format

    Benchmark("Decode PUBLISH QoS 1, 64 B payload (MQTT 3.1.1)") { benchmark in
        let encoded = WireFixtures.encodedPublish(version: .v3_1_1)
        var parser = MQTTPacketParser(version: .v3_1_1)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var buffer = encoded
            blackHole(try parser.parse(&buffer))
        }
    }

    Benchmark("Decode PUBLISH QoS 1, 64 B payload (MQTT 5)") { benchmark in
        let encoded = WireFixtures.encodedPublish(version: .v5)
        var parser = MQTTPacketParser(version: .v5)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var buffer = encoded
            blackHole(try parser.parse(&buffer))
        }
    }

    // The broker writes the header per subscriber and sends the payload slice it received, never copied.
    Benchmark("Encode PUBLISH header, shared 64 B payload (MQTT 3.1.1)") { benchmark in
        var publish = WireFixtures.publish
        var header = ByteBuffer()
        header.reserveCapacity(128)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            publish.packetIdentifier = UInt16(truncatingIfNeeded: index) | 1
            header.clear()
            try header.writeMQTTPublishHeader(publish, version: .v3_1_1)
            blackHole(header)
            blackHole(publish.payload)
        }
    }

    Benchmark("Encode whole PUBLISH, 64 B payload copied (MQTT 3.1.1)") { benchmark in
        var publish = WireFixtures.publish
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            publish.packetIdentifier = UInt16(truncatingIfNeeded: index) | 1
            buffer.clear()
            try buffer.writeMQTTPacket(.publish(publish), version: .v3_1_1)
            blackHole(buffer)
        }
    }

    // MARK: - Topic matching

    Benchmark(
        "Match a topic against 100,000 filters with wildcards",
        configuration: .init(scalingFactor: .kilo),
        closure: { benchmark, fixture in
            var matches = 0
            benchmark.startMeasurement()
            for index in benchmark.scaledIterations {
                fixture.trie.forEachMatch(topic: fixture.topics[index % fixture.topics.count]) { _, _ in
                    matches += 1
                }
            }
            benchmark.stopMeasurement()
            blackHole(matches)
        },
        setup: { TrieFixture() }
    )

    // MARK: - Engine

    Benchmark(
        "Route one QoS 0 message to 1,000 subscribers through the engine",
        configuration: .init(scalingFactor: .one),
        closure: { benchmark, fixture in
            for _ in benchmark.scaledIterations {
                blackHole(fixture.routeOneMessage())
            }
        },
        setup: { try RoutingFixture(subscribers: 1000) }
    )
}

// MARK: - Fixtures

enum WireFixtures {
    static let publish = MQTTPacket.Publish(
        topic: "sensors/building-7/floor-3/room-12/temperature",
        payload: ByteBuffer(repeating: 0x2E, count: 64),
        qos: .atLeastOnce,
        packetIdentifier: 4242
    )

    static func encodedPublish(version: ProtocolVersion) -> ByteBuffer {
        var buffer = ByteBuffer()
        _ = try? buffer.writeMQTTPacket(.publish(publish), version: version)
        return buffer
    }
}

/// 100,000 filters over a five-level topic space: literal filters, `+` at one level, and `#` tails, in the
/// proportions a large deployment might have. Topics to match are drawn from the same space.
struct TrieFixture: @unchecked Sendable {
    var trie = SubscriptionTrie<Int, Int>()
    var topics: [String] = []

    init() {
        var generator = SplitMix(seed: 42)
        for key in 0..<100_000 {
            let site = generator.next(below: 100)
            let device = generator.next(below: 1000)
            let filter: String
            switch key % 10 {
            case 0: filter = "site/\(site)/+/\(device)/status"
            case 1: filter = "site/\(site)/#"
            case 2: filter = "site/+/line/\(device)/+"
            default: filter = "site/\(site)/line/\(device)/\(["temperature", "pressure", "status"][key % 3])"
            }
            _ = trie.insert(filter: filter, key: key, value: key)
        }
        for _ in 0..<1024 {
            let kind = ["temperature", "pressure", "status"][generator.next(below: 3)]
            topics.append("site/\(generator.next(below: 100))/line/\(generator.next(below: 1000))/\(kind)")
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(below bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }
}

final class CountingWaker: DeliveryWaker {
    func wake() {}
}

/// One broker, one publisher and `subscribers` clients of the same topic, all connected through
/// `ConnectionStateMachine`s as the server would drive them.
final class RoutingFixture: @unchecked Sendable {
    let broker: Broker
    var publisher: ConnectionStateMachine
    var subscribers: [ConnectionStateMachine] = []
    let wakers: [CountingWaker]
    let payload = ByteBuffer(repeating: 0x2E, count: 64)
    var header = ByteBuffer()

    init(subscribers count: Int) throws {
        let now = NIODeadline.now()
        broker = Broker(now: now)
        let publisherWaker = CountingWaker()
        publisher = ConnectionStateMachine(broker: broker, waker: publisherWaker, remoteAddress: "127.0.0.1:1", now: now)
        _ = publisher.receive(
            .connect(MQTTPacket.Connect(protocolVersion: .v3_1_1, clientIdentifier: "publisher")),
            now: now
        )
        wakers = (0..<count).map { _ in CountingWaker() }
        for index in 0..<count {
            var machine = ConnectionStateMachine(
                broker: broker,
                waker: wakers[index],
                remoteAddress: "127.0.0.1:\(index + 2)",
                now: now
            )
            _ = machine.receive(
                .connect(MQTTPacket.Connect(protocolVersion: .v3_1_1, clientIdentifier: "subscriber-\(index)")),
                now: now
            )
            _ = machine.receive(
                .subscribe(
                    MQTTPacket.Subscribe(
                        packetIdentifier: 1,
                        subscriptions: [MQTTPacket.TopicSubscription(filter: "bench/route", qos: .atMostOnce)]
                    )
                ),
                now: now
            )
            subscribers.append(machine)
        }
        header.reserveCapacity(64)
    }

    /// Publishes once, then drains every subscriber and encodes each delivery's header as the server does.
    /// Returns the number of deliveries.
    func routeOneMessage() -> Int {
        let now = NIODeadline.now()
        let actions = publisher.receive(
            .publish(MQTTPacket.Publish(topic: "bench/route", payload: payload, qos: .atMostOnce)),
            now: now
        )
        var delivered = 0
        if !actions.wake.isEmpty {
            for index in subscribers.indices {
                for outbound in subscribers[index].deliverPending(now: now).outbound {
                    guard case .publish(let delivery) = outbound else { continue }
                    header.clear()
                    _ = try? header.writeMQTTPublishHeader(delivery.packet(for: .v3_1_1), version: .v3_1_1)
                    delivered += 1
                }
            }
        }
        return delivered
    }
}
