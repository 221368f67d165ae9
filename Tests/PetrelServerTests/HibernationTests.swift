#if os(Linux)
import MQTTWire
import NIOCore
import PetrelServer
import Testing

/// Idle connections hibernate: they give up their NIO channel and keep their MQTT state, and wake on their next
/// packet, the next message for them, their keep alive running out, a takeover, or a shutdown.
@Suite("Hibernation of idle connections")
struct HibernationTests {
    /// Hibernation after 200 ms idle, looked at every 50 ms.
    static func configure(_ configuration: inout ServerConfiguration) {
        configuration.hibernateAfter = .milliseconds(200)
        configuration.connectionTimeoutCheckInterval = .milliseconds(50)
    }

    func connect(
        _ port: Int,
        _ version: ProtocolVersion,
        id: String,
        keepAlive: UInt16 = 0,
        cleanStart: Bool = true,
        will: MQTTPacket.Will? = nil
    ) async throws -> TestClient {
        try await TestClient.connected(
            port: port,
            version: version,
            id: id,
            cleanStart: cleanStart,
            keepAlive: keepAlive,
            will: will
        )
    }

    func subscribe(_ client: TestClient, _ filter: String, qos: QoS) async throws {
        let subscription = MQTTPacket.TopicSubscription(filter: filter, qos: qos)
        try await client.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [subscription])))
        guard case .suback = try await client.next() else {
            Issue.record("expected SUBACK")
            return
        }
    }

    /// Waits until `count` connections hibernate.
    func waitForHibernating(_ server: MQTTServer, count: Int, timeout: Duration = .seconds(5)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while server.hibernatingConnectionCount != count {
            guard clock.now < deadline else {
                Issue.record("\(server.hibernatingConnectionCount) connections hibernating, expected \(count)")
                throw TestTimeout()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test("An idle subscriber hibernates, wakes for a QoS 1 message, acknowledges it and hibernates again")
    func wakesForDelivery() async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            let subscriber = try await connect(port, .v3_1_1, id: "sleeper")
            try await subscribe(subscriber, "hibernation/#", qos: .atLeastOnce)
            try await waitForHibernating(server, count: 1)

            let publisher = try await connect(port, .v3_1_1, id: "publisher")
            for round in 1...2 {
                let publish = MQTTPacket.Publish(
                    topic: "hibernation/\(round)",
                    payload: ByteBuffer(string: "round \(round)"),
                    qos: .atLeastOnce,
                    packetIdentifier: UInt16(round)
                )
                try await publisher.send(.publish(publish))
                #expect(try await publisher.next() == .puback(.init(packetIdentifier: UInt16(round))))
                guard case .publish(let delivered) = try await subscriber.next() else {
                    Issue.record("no delivery in round \(round)")
                    return
                }
                #expect(delivered.topic == "hibernation/\(round)")
                #expect(delivered.payload == ByteBuffer(string: "round \(round)"))
                #expect(delivered.qos == .atLeastOnce)
                try await subscriber.send(.puback(.init(packetIdentifier: delivered.packetIdentifier ?? 0)))
                // Both idle again: both hibernate.
                try await waitForHibernating(server, count: 2)
            }
            await publisher.close()
            await subscriber.close()
        }
    }

    @Test("A hibernating client's PINGREQ and QoS 2 PUBLISH are answered on a new channel [MQTT-3.12.4-1]")
    func wakesForPackets() async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            let watcher = try await connect(port, .v5, id: "watcher")
            try await subscribe(watcher, "woken/#", qos: .exactlyOnce)
            let client = try await connect(port, .v5, id: "pinger", keepAlive: 30)
            try await waitForHibernating(server, count: 2)

            try await client.send(.pingreq)
            #expect(try await client.next() == .pingresp)

            // A QoS 2 exchange cut by hibernation: the PUBREL arrives after it hibernated again.
            let publish = MQTTPacket.Publish(
                topic: "woken/qos2",
                payload: ByteBuffer(string: "once"),
                qos: .exactlyOnce,
                packetIdentifier: 7
            )
            try await client.send(.publish(publish))
            #expect(try await client.next() == .pubrec(.init(packetIdentifier: 7)))
            guard case .publish(let delivered) = try await watcher.next() else {
                Issue.record("no delivery")
                return
            }
            #expect(delivered.payload == ByteBuffer(string: "once"))
            let identifier = delivered.packetIdentifier ?? 0
            try await watcher.send(.pubrec(.init(packetIdentifier: identifier)))
            #expect(try await watcher.next() == .pubrel(.init(packetIdentifier: identifier)))
            try await waitForHibernating(server, count: 2)
            try await watcher.send(.pubcomp(.init(packetIdentifier: identifier)))
            try await client.send(.pubrel(.init(packetIdentifier: 7)))
            #expect(try await client.next() == .pubcomp(.init(packetIdentifier: 7)))
            await #expect(throws: TestTimeout.self, "the message is delivered once only") {
                try await watcher.next(timeout: .milliseconds(300))
            }
        }
    }

    @Test("An MQTT 5 topic alias set before hibernation still stands after it")
    func topicAliasSurvives() async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            let watcher = try await connect(port, .v3_1_1, id: "alias-watcher")
            try await subscribe(watcher, "alias/#", qos: .atMostOnce)
            let client = try await connect(port, .v5, id: "aliaser")
            var properties = MQTTProperties()
            properties.topicAlias = 3
            try await client.send(
                .publish(.init(topic: "alias/long/topic", payload: ByteBuffer(string: "first"), properties: properties))
            )
            guard case .publish(let first) = try await watcher.next() else { Issue.record("no first"); return }
            #expect(first.topic == "alias/long/topic")
            try await waitForHibernating(server, count: 2)

            try await client.send(.publish(.init(topic: "", payload: ByteBuffer(string: "second"), properties: properties)))
            guard case .publish(let second) = try await watcher.next() else { Issue.record("no second"); return }
            #expect(second.topic == "alias/long/topic")
            #expect(second.payload == ByteBuffer(string: "second"))
        }
    }

    @Test(
        "A hibernating client silent for 1.5 times its keep alive is closed and its will published [MQTT-3.1.2-24]",
        arguments: [ProtocolVersion.v3_1_1, .v5]
    )
    func keepAliveRunsOutWhileHibernating(version: ProtocolVersion) async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            let watcher = try await connect(port, .v3_1_1, id: "will-watcher")
            try await subscribe(watcher, "will/#", qos: .atMostOnce)
            let will = MQTTPacket.Will(topic: "will/sleeper", payload: ByteBuffer(string: "gone"))
            let clock = ContinuousClock()
            // Taken before the CONNECT leaves: the broker's keep-alive clock starts when it arrives.
            let connected = clock.now
            let sleeper = try await connect(port, version, id: "sleeper", keepAlive: 1, will: will)
            try await waitForHibernating(server, count: 2)
            if version == .v5 {
                guard case .disconnect(let disconnect) = try await sleeper.next(timeout: .seconds(4)) else {
                    Issue.record("expected DISCONNECT")
                    return
                }
                #expect(disconnect.reasonCode == .keepAliveTimeout)
            }
            #expect(try await sleeper.next(timeout: .seconds(4)) == nil)
            let elapsed = clock.now - connected
            #expect(elapsed >= .milliseconds(1500), "closed after \(elapsed)")
            #expect(elapsed < .milliseconds(2500), "closed after \(elapsed)")
            guard case .publish(let publish) = try await watcher.next() else { Issue.record("no will"); return }
            #expect(publish.topic == "will/sleeper")
            try await waitForHibernating(server, count: 1)
        }
    }

    @Test("A hibernating client whose connection drops has its will published [MQTT-3.1.2-8]")
    func peerClosesWhileHibernating() async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            let watcher = try await connect(port, .v3_1_1, id: "drop-watcher")
            try await subscribe(watcher, "will/#", qos: .atMostOnce)
            let will = MQTTPacket.Will(topic: "will/dropped", payload: ByteBuffer(string: "dropped"))
            let sleeper = try await connect(port, .v3_1_1, id: "dropper", will: will)
            try await waitForHibernating(server, count: 2)
            await sleeper.close()
            guard case .publish(let publish) = try await watcher.next() else { Issue.record("no will"); return }
            #expect(publish.topic == "will/dropped")
            #expect(publish.payload == ByteBuffer(string: "dropped"))
        }
    }

    @Test("A new connection with a hibernating client's identifier takes its session over [MQTT-3.1.4-3]")
    func takeoverOfHibernatingClient() async throws {
        try await withTestServer(configure: Self.configure) { port, server in
            var persistent = MQTTProperties()
            persistent.sessionExpiryInterval = 300
            let first = try await TestClient.connected(
                port: port,
                version: .v5,
                id: "twin",
                cleanStart: false,
                properties: persistent
            )
            try await subscribe(first, "twin/#", qos: .atLeastOnce)
            try await waitForHibernating(server, count: 1)

            let second = try await TestClient.connect(port: port, version: .v5)
            try await second.send(
                .connect(.init(protocolVersion: .v5, clientIdentifier: "twin", cleanStart: false, properties: persistent))
            )
            guard case .connack(let connack) = try await second.next() else { Issue.record("no CONNACK"); return }
            #expect(connack.reasonCode == .success)
            #expect(connack.sessionPresent)
            guard case .disconnect(let disconnect) = try await first.next() else {
                Issue.record("the first connection got no DISCONNECT")
                return
            }
            #expect(disconnect.reasonCode == .sessionTakenOver)
            #expect(try await first.next() == nil)

            // The subscription came with the session.
            let publisher = try await connect(port, .v3_1_1, id: "twin-publisher")
            try await publisher.send(.publish(.init(topic: "twin/a", payload: ByteBuffer(string: "hi"))))
            guard case .publish(let delivered) = try await second.next() else { Issue.record("no delivery"); return }
            #expect(delivered.topic == "twin/a")
        }
    }

    @Test("A graceful shutdown wakes hibernating MQTT 5 clients to say goodbye (DISCONNECT 0x8B)")
    func shutdownWakesHibernatingClients() async throws {
        let client = try await withTestServer(configure: Self.configure) { port, server in
            let client = try await connect(port, .v5, id: "last-one")
            try await waitForHibernating(server, count: 1)
            return client
        }
        guard case .disconnect(let disconnect) = try await client.next() else {
            Issue.record("expected DISCONNECT")
            return
        }
        #expect(disconnect.reasonCode == .serverShuttingDown)
        #expect(try await client.next() == nil)
    }

    @Test("Messages and pings racing the sleep and wake of 40 connections: every QoS 1 message arrives once, in order")
    func wakeRaces() async throws {
        try await withTestServer(configure: { configuration in
            configuration.hibernateAfter = .milliseconds(30)
            configuration.connectionTimeoutCheckInterval = .milliseconds(10)
        }) { port, server in
            let subscriberCount = 40
            let rounds = 30
            var subscribers: [TestClient] = []
            for index in 0..<subscriberCount {
                let subscriber = try await connect(port, index % 2 == 0 ? .v3_1_1 : .v5, id: "racer-\(index)")
                try await subscribe(subscriber, "race/\(index)", qos: .atLeastOnce)
                subscribers.append(subscriber)
            }
            let publisher = try await connect(port, .v3_1_1, id: "race-publisher")
            let received = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
                for (index, subscriber) in subscribers.enumerated() {
                    group.addTask {
                        var payloads: [String] = []
                        while payloads.count < rounds {
                            guard let packet = try await subscriber.next(timeout: .seconds(10)) else { break }
                            switch packet {
                            case .publish(let publish):
                                payloads.append(String(buffer: publish.payload))
                                try await subscriber.send(.puback(.init(packetIdentifier: publish.packetIdentifier ?? 0)))
                                // Now and then a PINGREQ, so that the park and the engine wake connections at once.
                                if payloads.count % 3 == index % 3 { try await subscriber.send(.pingreq) }
                            default:
                                continue
                            }
                        }
                        return (index, payloads)
                    }
                }
                group.addTask {
                    var mostAsleep = 0
                    for round in 0..<rounds {
                        mostAsleep = max(mostAsleep, server.hibernatingConnectionCount)
                        for index in 0..<subscriberCount {
                            let publish = MQTTPacket.Publish(
                                topic: "race/\(index)",
                                payload: ByteBuffer(string: "\(round)"),
                                qos: .atLeastOnce,
                                packetIdentifier: UInt16(1 + (round * subscriberCount + index) % 60000)
                            )
                            try await publisher.send(.publish(publish))
                        }
                        // Around the 30 ms hibernation time: some rounds find the connections asleep.
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0...60)))
                    }
                    return (-1, ["\(mostAsleep)"])
                }
                var received: [Int: [String]] = [:]
                for try await (index, payloads) in group { received[index] = payloads }
                return received
            }
            let mostAsleep = Int(received[-1]?.first ?? "0") ?? 0
            #expect(mostAsleep > 0, "no connection slept during the run")
            let expected = (0..<rounds).map { "\($0)" }
            for index in 0..<subscriberCount {
                #expect(received[index] == expected, "subscriber \(index)")
            }
        }
    }

    @Test("With hibernation off, idle clients stay on their channels and messages flow")
    func hibernationOff() async throws {
        try await withTestServer(configure: { configuration in
            configuration.hibernateAfter = nil
            configuration.connectionTimeoutCheckInterval = .milliseconds(50)
        }) { port, server in
            let subscriber = try await connect(port, .v3_1_1, id: "awake")
            try await subscribe(subscriber, "awake/#", qos: .atMostOnce)
            try await Task.sleep(for: .milliseconds(400))
            #expect(server.hibernatingConnectionCount == 0)
            let publisher = try await connect(port, .v3_1_1, id: "awake-publisher")
            try await publisher.send(.publish(.init(topic: "awake/a", payload: ByteBuffer(string: "x"))))
            guard case .publish(let delivered) = try await subscriber.next() else { Issue.record("no delivery"); return }
            #expect(delivered.payload == ByteBuffer(string: "x"))
        }
    }
}
#endif
