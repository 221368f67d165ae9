import NIOCore
import Testing

@testable import PetrelCore

@Suite("Shared subscriptions")
struct SharedSubscriptionTests {
    private func broker(_ strategy: SharedSubscriptionStrategy = .roundRobin) -> Broker {
        var configuration = BrokerConfiguration()
        configuration.sharedSubscriptionStrategy = strategy
        return Broker(configuration: configuration, now: at(0))
    }

    @Test("[MQTT-4.8.2] CONNACK advertises Shared Subscription Available; SUBACK grants $share filters")
    func advertisedAndGranted() throws {
        let broker = self.broker()
        var client = TestClient(broker)
        let connected = client.connect("a")
        #expect(try #require(connack(connected)).properties.sharedSubscriptionAvailable == 1)
        let suback = client.subscribe("$share/g/a/+", qos: .atLeastOnce)
        #expect(suback.packets(.v5) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS1]))])
    }

    @Test("[MQTT-4.8.2] round robin: each message goes to exactly one member, in turn")
    func roundRobin() {
        let broker = self.broker()
        var members = (0..<3).map { _ in TestClient(broker) }
        for index in members.indices {
            members[index].connect("m\(index)")
            members[index].subscribe("$share/g/t/#", qos: .atMostOnce)
        }
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<9 {
            publisher.publish("t/x", "\(number)")
        }
        var counts: [Int] = []
        var all: [String] = []
        for index in members.indices {
            let bodies = members[index].deliver().publishes.map(\.body)
            counts.append(bodies.count)
            all.append(contentsOf: bodies)
        }
        #expect(counts == [3, 3, 3])
        #expect(Set(all) == Set((0..<9).map { "\($0)" }))
        #expect(all.count == 9)
    }

    @Test("[MQTT-4.8.2] two groups on one filter each get the message, and a non-shared subscription too")
    func groupsAreIndependent() {
        let broker = self.broker()
        var a = TestClient(broker)
        var b = TestClient(broker)
        var plain = TestClient(broker)
        a.connect("a")
        b.connect("b")
        plain.connect("plain")
        a.subscribe("$share/one/t", qos: .atMostOnce)
        b.subscribe("$share/two/t", qos: .atMostOnce)
        plain.subscribe("t", qos: .atMostOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        let actions = publisher.publish("t", "m", qos: .atLeastOnce, packetIdentifier: 2)
        #expect(actions.packets(.v5) == [.puback(.init(packetIdentifier: 2))])
        #expect(a.deliver().publishes.map(\.body) == ["m"])
        #expect(b.deliver().publishes.map(\.body) == ["m"])
        #expect(plain.deliver().publishes.map(\.body) == ["m"])
    }

    @Test("sticky by publisher: every message of one publisher goes to the same member")
    func stickyPublisher() {
        let broker = self.broker(.stickyPublisher)
        var members = (0..<3).map { _ in TestClient(broker) }
        for index in members.indices {
            members[index].connect("m\(index)")
            members[index].subscribe("$share/g/t", qos: .atMostOnce)
        }
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<6 { publisher.publish("t", "\(number)") }
        let counts = members.indices.map { members[$0].deliver().publishes.count }
        #expect(counts.sorted() == [0, 0, 6])
    }

    @Test("sticky by topic: every message on one topic goes to the same member")
    func stickyTopic() {
        let broker = self.broker(.stickyTopic)
        var members = (0..<3).map { _ in TestClient(broker) }
        for index in members.indices {
            members[index].connect("m\(index)")
            members[index].subscribe("$share/g/t/+", qos: .atMostOnce)
        }
        var first = TestClient(broker)
        var second = TestClient(broker)
        first.connect("p1")
        second.connect("p2")
        for number in 0..<4 {
            first.publish("t/a", "\(number)")
            second.publish("t/a", "\(number)")
        }
        let counts = members.indices.map { members[$0].deliver().publishes.count }
        #expect(counts.sorted() == [0, 0, 8])
    }

    @Test("random: each message goes to exactly one member")
    func random() {
        let broker = self.broker(.random)
        var members = (0..<3).map { _ in TestClient(broker) }
        for index in members.indices {
            members[index].connect("m\(index)")
            members[index].subscribe("$share/g/t", qos: .atMostOnce)
        }
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<30 { publisher.publish("t", "\(number)") }
        let counts = members.indices.map { members[$0].deliver().publishes.count }
        #expect(counts.reduce(0, +) == 30)
    }

    @Test("shared subscriptions work for MQTT 3.1.1 clients")
    func v311Members() {
        let broker = self.broker()
        var a = TestClient(broker, version: .v3_1_1)
        var b = TestClient(broker, version: .v3_1_1)
        a.connect("a")
        b.connect("b")
        #expect(a.subscribe("$share/g/t", qos: .atLeastOnce).packets(.v3_1_1) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS1]))])
        b.subscribe("$share/g/t", qos: .atLeastOnce)
        var publisher = TestClient(broker, version: .v3_1_1)
        publisher.connect("pub")
        publisher.publish("t", "1", qos: .atLeastOnce, packetIdentifier: 1)
        publisher.publish("t", "2", qos: .atLeastOnce, packetIdentifier: 2)
        #expect(a.deliver().publishes.count + b.deliver().publishes.count == 2)
    }

    @Test("an offline member is skipped while another member is connected")
    func offlineMemberSkipped() {
        let broker = self.broker()
        var persistent = TestClient(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 600
        persistent.connect("p", cleanStart: false, properties: properties)
        persistent.subscribe("$share/g/t", qos: .atLeastOnce)
        _ = persistent.send(.disconnect(.init()))
        var online = TestClient(broker)
        online.connect("o")
        online.subscribe("$share/g/t", qos: .atLeastOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<4 { publisher.publish("t", "\(number)", qos: .atLeastOnce, packetIdentifier: UInt16(number + 1)) }
        #expect(online.deliver().publishes.map(\.body) == ["0", "1", "2", "3"])
    }

    @Test("[MQTT-4.8.2] a QoS 1 message in flight to a member whose session ends goes to another member")
    func inflightRedelivered() throws {
        let broker = self.broker()
        var first = TestClient(broker)
        var second = TestClient(broker)
        first.connect("first")
        second.connect("second")
        first.subscribe("$share/g/t", qos: .atLeastOnce)
        second.subscribe("$share/g/t", qos: .atLeastOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "A", qos: .atLeastOnce, packetIdentifier: 1)
        publisher.publish("t", "B", qos: .atLeastOnce, packetIdentifier: 2)
        let toFirst = first.deliver().publishes.map(\.body)
        let toSecond = second.deliver().publishes.map(\.body)
        #expect(toFirst.count == 1 && toSecond.count == 1)
        // `first` goes away without acknowledging and without a persistent session.
        let closed = first.machine.connectionClosed(now: at(1))
        #expect(closed.wakes(second))
        let redelivered = second.deliver(at: at(1)).publishes
        #expect(redelivered.map(\.body) == toFirst)
        #expect(redelivered.first?.qos == .atLeastOnce)
    }

    @Test("[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error: DISCONNECT 0x82")
    func noLocalIsProtocolError() {
        let broker = self.broker()
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.subscribe("$share/g/t", options: .init(qos: .atLeastOnce, noLocal: true))
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("[MQTT-4.8.2-1] [MQTT-4.8.2-2] invalid share names: SUBACK 0x8F")
    func invalidShareNames() {
        let broker = self.broker()
        var client = TestClient(broker)
        client.connect("a")
        for filter in ["$share//t", "$share/g+/t", "$share/g#/t", "$share/g", "$share/g/"] {
            let actions = client.subscribe(filter)
            #expect(actions.plainPackets(.v5) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.topicFilterInvalid]))], "\(filter)")
        }
    }

    @Test("retained messages are not sent when a shared subscription is made")
    func noRetainedOnShared() {
        let broker = self.broker()
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "kept", retain: true)
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.subscribe("$share/g/t", qos: .atLeastOnce)
        #expect(actions.publishes.isEmpty)
        #expect(client.deliver().publishes.isEmpty)
    }

    @Test("UNSUBSCRIBE leaves the group; the last member leaving removes it")
    func unsubscribe() {
        let broker = self.broker()
        var a = TestClient(broker)
        var b = TestClient(broker)
        a.connect("a")
        b.connect("b")
        a.subscribe("$share/g/t", qos: .atMostOnce)
        b.subscribe("$share/g/t", qos: .atMostOnce)
        let unsuback = a.send(.unsubscribe(.init(packetIdentifier: 3, filters: ["$share/g/t"])))
        #expect(unsuback.packets(.v5) == [.unsuback(.init(packetIdentifier: 3, reasonCodes: [.success]))])
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for number in 0..<3 { publisher.publish("t", "\(number)") }
        #expect(a.deliver().publishes.isEmpty)
        #expect(b.deliver().publishes.count == 3)
        b.send(.unsubscribe(.init(packetIdentifier: 4, filters: ["$share/g/t"])))
        let nobody = publisher.publish("t", "x", qos: .atLeastOnce, packetIdentifier: 9)
        #expect(nobody.packets(.v5) == [.puback(.init(packetIdentifier: 9, reasonCode: .noMatchingSubscribers))])
    }

    @Test("a persistent member's shared subscription survives a store reload")
    func reload() {
        let store = InMemoryBrokerStore()
        do {
            let broker = Broker(store: store, now: at(0))
            var client = TestClient(broker)
            var properties = MQTTProperties()
            properties.sessionExpiryInterval = 600
            client.connect("p", cleanStart: false, properties: properties)
            client.subscribe("$share/g/t", qos: .atLeastOnce)
        }
        let reloaded = Broker(store: store, now: at(1))
        var client = TestClient(reloaded)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 600
        client.connect("p", cleanStart: false, properties: properties, at: at(1))
        var publisher = TestClient(reloaded)
        publisher.connect("pub", at: at(1))
        publisher.publish("t", "m", qos: .atLeastOnce, packetIdentifier: 1, at: at(1))
        #expect(client.deliver(at: at(1)).publishes.map(\.body) == ["m"])
    }

    @Test("[MQTT-4.8.2] a message queued for a member whose session expires after a store reload goes to another member")
    func orphanAfterReload() {
        let store = InMemoryBrokerStore()
        var shortLived = MQTTProperties()
        shortLived.sessionExpiryInterval = 5
        var longLived = MQTTProperties()
        longLived.sessionExpiryInterval = 600
        var toA: [String] = []
        var toB: [String] = []
        do {
            let broker = Broker(store: store, now: at(0))
            var a = TestClient(broker)
            var b = TestClient(broker)
            a.connect("a", cleanStart: false, properties: shortLived)
            b.connect("b", cleanStart: false, properties: longLived)
            a.subscribe("$share/g/t", qos: .atLeastOnce)
            b.subscribe("$share/g/t", qos: .atLeastOnce)
            _ = a.machine.connectionClosed(now: at(1))
            _ = b.machine.connectionClosed(now: at(1))
            // Both offline: the group queues one message for each, in turn.
            var publisher = TestClient(broker)
            publisher.connect("pub", at: at(1))
            publisher.publish("t", "1", qos: .atLeastOnce, packetIdentifier: 1, at: at(1))
            publisher.publish("t", "2", qos: .atLeastOnce, packetIdentifier: 2, at: at(1))
        }
        let reloaded = Broker(store: store, now: at(2))
        var b = TestClient(reloaded)
        let resumed = b.connect("b", cleanStart: false, properties: longLived, at: at(2))
        toB = resumed.publishes.map(\.body) + b.deliver(at: at(2)).publishes.map(\.body)
        #expect(toB.count == 1)
        // `a` expires 5 s after it disconnected: its queued message goes to `b`.
        let tick = reloaded.tick(now: at(7))
        for waker in tick.wake { waker.wake() }
        toA = b.deliver(at: at(7)).publishes.map(\.body)
        #expect((toB + toA).sorted() == ["1", "2"])
    }
}
