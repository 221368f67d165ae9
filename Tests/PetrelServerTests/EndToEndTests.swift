import MQTTWire
import NIOCore
import PetrelServer
import Testing

/// The real server on a loopback socket, driven by a NIO test client: what the handlers do with what the
/// engine decides.
@Suite("End to end over TCP")
struct EndToEndTests {
    static func payload(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func connect(_ port: Int, _ version: ProtocolVersion, id: String, clean: Bool = true) async throws -> TestClient {
        try await TestClient.connected(port: port, version: version, id: id, cleanStart: clean)
    }

    @Test("CONNACK for every protocol version", arguments: ProtocolVersion.allCases)
    func connack(version: ProtocolVersion) async throws {
        try await withTestBroker { port in
            let client = try await connect(port, version, id: "c-\(version.rawValue)")
            await client.close()
        }
    }

    @Test("QoS 1 publish reaches a subscriber with QoS = min(pub, sub) [MQTT-3.8.4-8]")
    func publishSubscribe() async throws {
        try await withTestBroker { port in
            let subscriber = try await connect(port, .v3_1_1, id: "sub")
            try await subscriber.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "a/#", qos: .atLeastOnce)])))
            guard case .suback(let suback) = try await subscriber.next() else { Issue.record("no SUBACK"); return }
            #expect(suback.reasonCodes == [.grantedQoS1])

            let publisher = try await connect(port, .v5, id: "pub")
            try await publisher.send(.publish(.init(topic: "a/b", payload: Self.payload("hi"), qos: .exactlyOnce, packetIdentifier: 7)))
            guard case .pubrec(let pubrec) = try await publisher.next() else { Issue.record("no PUBREC"); return }
            #expect(pubrec.packetIdentifier == 7)
            try await publisher.send(.pubrel(.init(packetIdentifier: 7)))
            guard case .pubcomp = try await publisher.next() else { Issue.record("no PUBCOMP"); return }

            guard case .publish(let publish) = try await subscriber.next() else { Issue.record("no PUBLISH"); return }
            #expect(publish.topic == "a/b")
            #expect(publish.qos == .atLeastOnce)
            #expect(publish.payload == Self.payload("hi"))
            #expect(publish.retain == false)
            let id = try #require(publish.packetIdentifier)
            try await subscriber.send(.puback(.init(packetIdentifier: id)))
            await publisher.close()
            await subscriber.close()
        }
    }

    @Test("Fan-out: one PUBLISH reaches every subscriber, payload intact")
    func fanOut() async throws {
        try await withTestBroker { port in
            var subscribers: [TestClient] = []
            for index in 0..<20 {
                let version: ProtocolVersion = index % 2 == 0 ? .v5 : .v3_1_1
                let client = try await connect(port, version, id: "s\(index)")
                try await client.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "fan/+", qos: .atMostOnce)])))
                guard case .suback = try await client.next() else { Issue.record("no SUBACK"); return }
                subscribers.append(client)
            }
            let publisher = try await connect(port, .v3_1_1, id: "p")
            let big = String(repeating: "x", count: 100_000)
            try await publisher.send(.publish(.init(topic: "fan/out", payload: Self.payload(big))))
            for subscriber in subscribers {
                guard case .publish(let publish) = try await subscriber.next() else { Issue.record("no PUBLISH"); return }
                #expect(publish.payload.readableBytes == 100_000)
                #expect(publish.topic == "fan/out")
                await subscriber.close()
            }
            await publisher.close()
        }
    }

    @Test("QoS 1 fan-out: each subscriber gets its own packet identifier over the shared encoding [MQTT-2.2.1-3]")
    func qos1FanOutPacketIdentifiers() async throws {
        try await withTestBroker { port in
            var subscribers: [TestClient] = []
            for index in 0..<6 {
                let version: ProtocolVersion = [.v3_1, .v3_1_1, .v5][index % 3]
                let client = try await connect(port, version, id: "q\(index)")
                var subscribe = MQTTPacket.Subscribe(
                    packetIdentifier: 1,
                    subscriptions: [.init(filter: "q/+", qos: .exactlyOnce)]
                )
                if version == .v5 && index == 5 {
                    // A subscription identifier makes this subscriber's header unique [MQTT-3.3.4-3].
                    subscribe.properties.subscriptionIdentifiers = [42]
                }
                try await client.send(.subscribe(subscribe))
                guard case .suback = try await client.next() else { Issue.record("no SUBACK"); return }
                subscribers.append(client)
            }
            let publisher = try await connect(port, .v3_1_1, id: "qp")
            for round in 1...3 {
                try await publisher.send(.publish(.init(
                    topic: "q/x", payload: Self.payload("m\(round)"), qos: .atLeastOnce, retain: false,
                    packetIdentifier: UInt16(round)
                )))
                guard case .puback = try await publisher.next() else { Issue.record("no PUBACK"); return }
            }
            for (index, subscriber) in subscribers.enumerated() {
                var seen: Set<UInt16> = []
                for round in 1...3 {
                    guard case .publish(let publish) = try await subscriber.next() else {
                        Issue.record("no PUBLISH for \(index)")
                        return
                    }
                    #expect(publish.topic == "q/x")
                    #expect(publish.qos == .atLeastOnce)
                    #expect(publish.dup == false)
                    #expect(publish.payload == Self.payload("m\(round)"))
                    let id = try #require(publish.packetIdentifier)
                    #expect(seen.insert(id).inserted, "packet id reused while in flight")
                    if index == 5 {
                        #expect(publish.properties.subscriptionIdentifiers == [42])
                    } else {
                        #expect(publish.properties.subscriptionIdentifiers.isEmpty)
                    }
                    try await subscriber.send(.puback(.init(packetIdentifier: id)))
                }
                await subscriber.close()
            }
            await publisher.close()
        }
    }

    @Test("Graceful shutdown sends MQTT 5 clients DISCONNECT 0x8B")
    func shutdownSaysGoodbye() async throws {
        let client = try await withTestBroker { port in
            try await connect(port, .v5, id: "bye")
        }
        guard case .disconnect(let disconnect) = try await client.next() else {
            Issue.record("expected DISCONNECT")
            return
        }
        #expect(disconnect.reasonCode == .serverShuttingDown)
        #expect(try await client.next() == nil)
    }

    @Test("A malformed packet closes only that connection [MQTT-4.13.1-1]")
    func malformedClosesOnlyThatConnection() async throws {
        try await withTestBroker { port in
            let good = try await connect(port, .v3_1_1, id: "good")
            let bad = try await connect(port, .v5, id: "bad")
            // PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4].
            try await bad.sendRaw([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])
            guard case .disconnect(let disconnect) = try await bad.next() else { Issue.record("no DISCONNECT"); return }
            #expect(disconnect.reasonCode == .malformedPacket)
            #expect(try await bad.next() == nil)
            try await good.send(.pingreq)
            #expect(try await good.next() == .pingresp)
            await good.close()
        }
    }

    @Test("Packets cut at any byte, and many packets in one segment, are all framed")
    func framingAcrossReads() async throws {
        try await withTestBroker { port in
            let subscriber = try await connect(port, .v3_1_1, id: "framing-sub")
            try await subscriber.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "f/#", qos: .atLeastOnce)])))
            guard case .suback = try await subscriber.next() else { Issue.record("no SUBACK"); return }
            let publisher = try await TestClient.connect(port: port, version: .v3_1_1)
            var bytes = ByteBuffer()
            try bytes.writeMQTTPacket(.connect(.init(protocolVersion: .v3_1_1, clientIdentifier: "framing-pub")), version: .v3_1_1)
            let payload = ByteBuffer(repeating: 0x5A, count: 3000)
            for index in 1...20 {
                try bytes.writeMQTTPacket(
                    .publish(.init(topic: "f/\(index)", payload: payload, qos: .atLeastOnce, packetIdentifier: UInt16(index))),
                    version: .v3_1_1
                )
            }
            let all = Array(bytes.readableBytesView)
            // The CONNECT and the start of the first PUBLISH one byte at a time, then pieces that cut packets
            // anywhere, then the rest (several whole packets) in one write.
            let dripped = 200
            for byte in all.prefix(dripped) { try await publisher.sendRaw([byte]) }
            var offset = dripped
            while offset < all.count / 2 {
                try await publisher.sendRaw(Array(all[offset..<min(offset + 1777, all.count)]))
                offset += 1777
            }
            try await publisher.sendRaw(Array(all[offset...]))
            guard case .connack = try await publisher.next() else { Issue.record("no CONNACK"); return }
            for index in 1...20 {
                guard case .puback(let puback) = try await publisher.next() else { Issue.record("no PUBACK \(index)"); return }
                #expect(puback.packetIdentifier == UInt16(index))
                guard case .publish(let publish) = try await subscriber.next() else { Issue.record("no PUBLISH \(index)"); return }
                #expect(publish.topic == "f/\(index)")
                #expect(publish.payload == payload)
                try await subscriber.send(.puback(.init(packetIdentifier: publish.packetIdentifier!)))
            }
            await publisher.close()
            await subscriber.close()
        }
    }
}
