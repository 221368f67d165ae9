import MQTTWire
import NIOCore
import PetrelServer
import Testing

/// The connect timeout and keep alive, checked by each event loop's sweep of its connections rather than by a
/// timer per connection.
@Suite("Connection timers over TCP")
struct ConnectionTimerTests {
    func connect(
        _ port: Int,
        _ version: ProtocolVersion,
        id: String,
        keepAlive: UInt16,
        will: MQTTPacket.Will? = nil
    ) async throws -> TestClient {
        try await TestClient.connected(port: port, version: version, id: id, keepAlive: keepAlive, will: will)
    }

    @Test(
        "A client silent for 1.5 times its keep alive is closed and its will published [MQTT-3.1.2-24]",
        arguments: [ProtocolVersion.v3_1_1, .v5]
    )
    func keepAliveTimeout(version: ProtocolVersion) async throws {
        try await withTestBroker { port in
            let subscriber = try await connect(port, .v3_1_1, id: "watcher", keepAlive: 0)
            let subscription = MQTTPacket.TopicSubscription(filter: "will/#", qos: .atMostOnce)
            try await subscriber.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [subscription])))
            guard case .suback = try await subscriber.next() else { Issue.record("no SUBACK"); return }

            let will = MQTTPacket.Will(topic: "will/silent", payload: ByteBuffer(string: "gone"))
            let clock = ContinuousClock()
            // Taken before the CONNECT leaves: the broker's keep-alive clock starts when it arrives.
            let connected = clock.now
            let silent = try await connect(port, version, id: "silent", keepAlive: 1, will: will)
            if version == .v5 {
                // MQTT 5: DISCONNECT 0x8D Keep Alive timeout before the close.
                guard case .disconnect(let disconnect) = try await silent.next(timeout: .seconds(4)) else {
                    Issue.record("expected DISCONNECT")
                    return
                }
                #expect(disconnect.reasonCode == .keepAliveTimeout)
            }
            #expect(try await silent.next(timeout: .seconds(4)) == nil)
            let elapsed = clock.now - connected
            #expect(elapsed >= .milliseconds(1500), "closed after \(elapsed)")
            // Generous: the suite runs its tests in parallel on as few as two cores.
            #expect(elapsed < .milliseconds(3500), "closed after \(elapsed)")

            guard case .publish(let publish) = try await subscriber.next() else { Issue.record("no will"); return }
            #expect(publish.topic == "will/silent")
            #expect(publish.payload == ByteBuffer(string: "gone"))
            await subscriber.close()
        }
    }

    @Test("Packets within 1.5 times the keep alive keep the connection open [MQTT-3.1.2-23]")
    func activityKeepsConnectionOpen() async throws {
        try await withTestBroker { port in
            let client = try await connect(port, .v3_1_1, id: "pinger", keepAlive: 1)
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(500))
                try await client.send(.pingreq)
                #expect(try await client.next() == .pingresp)
            }
            await client.close()
        }
    }

    @Test("Keep alive 0 turns the timeout off [MQTT-3.1.2-10]")
    func keepAliveZero() async throws {
        try await withTestBroker { port in
            let client = try await connect(port, .v3_1_1, id: "forever", keepAlive: 0)
            try await Task.sleep(for: .milliseconds(1500))
            try await client.send(.pingreq)
            #expect(try await client.next() == .pingresp)
            await client.close()
        }
    }

    @Test("A connection that sends no CONNECT is closed at the connect timeout")
    func connectTimeout() async throws {
        try await withTestBroker(configure: { $0.broker.connectTimeout = .milliseconds(500) }) { port in
            let clock = ContinuousClock()
            let started = clock.now
            let client = try await TestClient.connect(port: port, version: .v3_1_1)
            #expect(try await client.next(timeout: .seconds(3)) == nil)
            let elapsed = clock.now - started
            #expect(elapsed >= .milliseconds(500), "closed after \(elapsed)")
            #expect(elapsed < .milliseconds(2500), "closed after \(elapsed)")
        }
    }

    @Test("Graceful shutdown reaches the connections of every event loop")
    func shutdownReachesEveryLoop() async throws {
        let clients = try await withTestBroker(configure: { $0.eventLoopThreads = 3 }) { port in
            var clients: [TestClient] = []
            for index in 0..<6 {
                clients.append(try await connect(port, .v5, id: "bye-\(index)", keepAlive: 60))
            }
            return clients
        }
        for client in clients {
            guard case .disconnect(let disconnect) = try await client.next() else {
                Issue.record("expected DISCONNECT")
                continue
            }
            #expect(disconnect.reasonCode == .serverShuttingDown)
            #expect(try await client.next() == nil)
        }
    }
}
