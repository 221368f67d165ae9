import NIOCore
import PetrelTestSupport
import Testing

@testable import PetrelCore

/// Packets built to hurt: topics and filters as deep as the wire allows, huge fields, many filters at once, and
/// the property combinations the specification forbids.
@Suite("Hostile input")
struct HostileInputTests {
    private func broker(maximumTopicLevels: Int = 1_000, store: any BrokerStore = InMemoryBrokerStore()) -> Broker {
        var configuration = BrokerConfiguration()
        configuration.maximumTopicLevels = maximumTopicLevels
        return Broker(configuration: configuration, store: store, now: at(0))
    }

    private func subackCodes(_ actions: ConnectionActions) -> [ReasonCode] {
        for packet in actions.nonPublishPackets {
            if case .suback(let suback) = packet { return suback.reasonCodes }
        }
        return []
    }

    /// The PUBACK or PUBREC, without Reason String.
    private func ack(_ actions: ConnectionActions) -> MQTTPacket? {
        let found = actions.nonPublishPackets.first { packet in
            switch packet {
            case .puback, .pubrec: return true
            default: return false
            }
        }
        return found.map { $0.withoutProblemInformation ?? $0 }
    }

    // MARK: - Topic levels

    @Test("A filter deeper than --max-topic-levels: SUBACK 0x97 (v5) / 0x80 (3.1.1), counted; the others granted")
    func deepFilterRefused() {
        let broker = self.broker(maximumTopicLevels: 1_000)
        var v5 = TestClient(broker)
        v5.connect("v5")
        let deep = "a" + String(repeating: "/+", count: 1_000)
        let fits = "a" + String(repeating: "/+", count: 999)
        let actions = v5.send(
            .subscribe(
                MQTTPacket.Subscribe(
                    packetIdentifier: 1,
                    subscriptions: [.init(filter: deep, options: .init(qos: .atLeastOnce)), .init(filter: fits, options: .init(qos: .atLeastOnce))]
                )
            )
        )
        #expect(subackCodes(actions) == [.quotaExceeded, .grantedQoS1])
        #expect(actions.logs.contains { $0.message.contains("more than 1000 levels") })
        var legacy = TestClient(broker, version: .v3_1_1)
        legacy.connect("legacy")
        #expect(subackCodes(legacy.subscribe(deep, qos: .atMostOnce)) == [.unspecifiedError])
        #expect(broker.statistics.topicsRefusedTooManyLevels == 2)
    }

    @Test("A PUBLISH deeper than the limit: v5 PUBACK / PUBREC 0x97 and QoS 0 dropped, 3.1.1 closed unacknowledged")
    func deepTopicRefused() {
        let broker = self.broker(maximumTopicLevels: 10)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("#")
        var v5 = TestClient(broker)
        v5.connect("v5")
        let deep = String(repeating: "x/", count: 10) + "x"
        #expect(ack(v5.publish(deep, "1", qos: .atLeastOnce, packetIdentifier: 1)) == .puback(.init(packetIdentifier: 1, reasonCode: .quotaExceeded)))
        #expect(ack(v5.publish(deep, "2", qos: .exactlyOnce, packetIdentifier: 2)).map { packet in
            if case .pubrec(let pubrec) = packet { return pubrec.reasonCode == .quotaExceeded } else { return false }
        } == true)
        // The refused QoS 2 flow is over: the same identifier starts a new one.
        #expect(ack(v5.publish("ok", "3", qos: .exactlyOnce, packetIdentifier: 2)) == .pubrec(.init(packetIdentifier: 2)))
        let qos0 = v5.publish(deep, "4")
        #expect(qos0.outbound.isEmpty && !qos0.close)
        #expect(subscriber.deliver().publishes.map(\.body) == ["3"])
        var legacy = TestClient(broker, version: .v3_1_1)
        legacy.connect("legacy")
        let closed = legacy.publish(deep, "5", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(closed.close && closed.outbound.isEmpty)
        #expect(broker.statistics.topicsRefusedTooManyLevels == 4)
    }

    @Test("A will topic deeper than the limit: CONNACK 0x97")
    func deepWillRefused() {
        let broker = self.broker(maximumTopicLevels: 10)
        var client = TestClient(broker)
        let will = MQTTPacket.Will(topic: String(repeating: "w/", count: 10) + "w", payload: payload("gone"), qos: .atMostOnce, retain: false)
        let actions = client.connect("c", will: will)
        #expect(connack(actions)?.reasonCode == .quotaExceeded)
        #expect(actions.close)
    }

    @Test("With no limit, 32,768-level filters (shared ones too) and topics are subscribed, routed, retained and delivered on a small stack")
    func deepestTopicsWithoutLimit() {
        onSmallStack {
            let broker = self.broker(maximumTopicLevels: 0)
            var subscriber = TestClient(broker)
            subscriber.connect("sub")
            #expect(subackCodes(subscriber.subscribe(DeepTopics.wildcardFilter, qos: .atLeastOnce)) == [.grantedQoS1])
            var member = TestClient(broker)
            member.connect("member")
            let sharedFilter = "$share/g/x" + String(repeating: "/+", count: 32_000) + "/#"
            #expect(subackCodes(member.subscribe(sharedFilter, qos: .atMostOnce)) == [.grantedQoS0])
            var publisher = TestClient(broker)
            publisher.connect("pub")
            #expect(ack(publisher.publish(DeepTopics.topic, "deep", qos: .atLeastOnce, retain: true, packetIdentifier: 1)) == .puback(.init(packetIdentifier: 1)))
            #expect(subscriber.deliver().publishes.map(\.body) == ["deep"])
            #expect(member.deliver().publishes.map(\.body) == ["deep"])
            var late = TestClient(broker)
            late.connect("late")
            let retained = late.subscribe(DeepTopics.exactThenPlus, qos: .atMostOnce)
            #expect(retained.publishes.map(\.body) == ["deep"])
            #expect(broker.statistics.retainedMessages == 1)
            // Deleting the retained message and ending the sessions walks the same depth back.
            publisher.publish(DeepTopics.topic, "", retain: true)
            #expect(broker.statistics.retainedMessages == 0)
            _ = subscriber.machine.connectionClosed(now: at(1))
            _ = late.machine.connectionClosed(now: at(1))
            _ = member.machine.connectionClosed(now: at(1))
            #expect(broker.subscriptionTrie.withReadLock { $0.isEmpty })
            #expect(broker.sharedTrie.withReadLock { $0.isEmpty })
        }
    }

    @Test("Deep persistent subscriptions and retained messages come back from the store at start-up")
    func deepRestore() {
        onSmallStack {
            let store = InMemoryBrokerStore()
            var persistent = MQTTProperties()
            persistent.sessionExpiryInterval = .max
            do {
                let broker = self.broker(maximumTopicLevels: 0, store: store)
                var subscriber = TestClient(broker)
                subscriber.connect("sub", cleanStart: false, properties: persistent)
                subscriber.subscribe(DeepTopics.wildcardFilter, qos: .atLeastOnce)
                var publisher = TestClient(broker)
                publisher.connect("pub")
                publisher.publish(DeepTopics.topic, "kept", qos: .atLeastOnce, retain: true, packetIdentifier: 1)
                _ = subscriber.machine.connectionClosed(now: at(1))
                broker.shutdown(now: at(2))
            }
            // A broker with the default limit starts on this store: what was stored is loaded whatever the limit.
            #expect(self.broker(store: store).statistics.retainedMessages == 1)
            let broker = self.broker(maximumTopicLevels: 0, store: store)
            #expect(broker.statistics.retainedMessages == 1)
            var subscriber = TestClient(broker)
            let resumed = subscriber.connect("sub", cleanStart: false, properties: persistent, at: at(3))
            #expect(connack(resumed)?.sessionPresent == true)
            #expect(resumed.publishes.map(\.body) == ["kept"])
            var publisher = TestClient(broker)
            publisher.connect("pub", at: at(3))
            publisher.publish(DeepTopics.topic, "again", at: at(3))
            #expect(subscriber.deliver(at: at(3)).publishes.map(\.body) == ["again"])
        }
    }

    // MARK: - Size of one packet

    @Test("Thousands of wide filters in one SUBSCRIBE gather no more retained messages than the session can hold")
    func manyFiltersBoundedRetained() {
        var configuration = BrokerConfiguration()
        configuration.maximumQueuedMessages = 50
        configuration.maximumInflightMessages = 10
        let broker = Broker(configuration: configuration, now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<200 {
            publisher.publish("r/\(number)", "\(number)", retain: true)
        }
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        let filters = (0..<5_000).map { MQTTPacket.TopicSubscription(filter: $0 == 0 ? "#" : "r/+/\($0)/#", options: .init(qos: .atMostOnce)) }
        let actions = subscriber.send(.subscribe(MQTTPacket.Subscribe(packetIdentifier: 1, subscriptions: filters + [.init(filter: "r/#", options: .init(qos: .atMostOnce))])))
        #expect(subackCodes(actions).count == 5_001)
        #expect(subackCodes(actions).allSatisfy { $0 == .grantedQoS0 })
        #expect(actions.publishes.count <= 60)
        #expect(actions.logs.contains { $0.message.contains("later filters get none") })
        let session = broker.registry.withLock { $0.sessions["sub"] }
        #expect((session?.queuedCount ?? 0) <= 50)
    }

    @Test("A 65,535-byte client identifier and user name, and 10,000 user properties, are served")
    func hugeFields() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        let identifier = String(repeating: "c", count: 65_535)
        var properties = MQTTProperties()
        properties.userProperties = (0..<10_000).map { UserProperty(name: "k\($0)", value: "v") }
        let connected = client.send(
            .connect(MQTTPacket.Connect(protocolVersion: .v5, clientIdentifier: identifier, cleanStart: true, keepAlive: 60, username: String(repeating: "u", count: 65_535), properties: properties))
        )
        #expect(connack(connected)?.reasonCode == .success)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("t")
        client.publish("t", "many", properties: properties)
        let delivered = subscriber.deliver().publishes
        #expect(delivered.map(\.body) == ["many"])
        #expect(delivered.first?.packet(for: .v5).properties.userProperties.count == 10_000)
    }

    // MARK: - Forbidden property combinations

    @Test("Authentication Data without Authentication Method: CONNACK 0x82 and close (3.1.2.11.10)")
    func authenticationDataWithoutMethod() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.authenticationData = ByteBuffer(bytes: [1, 2, 3])
        let actions = client.connect("c", properties: properties)
        #expect(connack(actions)?.reasonCode == .protocolError)
        #expect(actions.close)
        #expect(broker.statistics.sessions == 0)
    }

    @Test("[MQTT-3.3.2-14] a Response Topic with a wildcard: DISCONNECT 0x82 for a PUBLISH, CONNACK 0x82 for a will")
    func wildcardResponseTopic() {
        let broker = Broker(now: at(0))
        for responseTopic in ["reply/+", "reply/#", "#"] {
            var client = TestClient(broker)
            client.connect("c")
            var properties = MQTTProperties()
            properties.responseTopic = responseTopic
            let actions = client.publish("t", "m", qos: .atLeastOnce, packetIdentifier: 1, properties: properties)
            #expect(disconnectReason(actions) == .protocolError)
            #expect(actions.close)
            #expect(ack(actions) == nil)
        }
        var willProperties = MQTTProperties()
        willProperties.responseTopic = "reply/+"
        var client = TestClient(broker)
        let actions = client.connect("w", will: MQTTPacket.Will(topic: "will", payload: payload("x"), qos: .atMostOnce, retain: false, properties: willProperties))
        #expect(connack(actions)?.reasonCode == .protocolError)
        #expect(actions.close)
        var fine = TestClient(broker)
        fine.connect("ok")
        var properties = MQTTProperties()
        properties.responseTopic = "reply/ok"
        #expect(ack(fine.publish("t", "m", qos: .atLeastOnce, packetIdentifier: 1, properties: properties)) != nil)
    }
}
