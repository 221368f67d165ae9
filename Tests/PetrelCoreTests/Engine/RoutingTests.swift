import NIOCore
import Testing

@testable import PetrelCore

@Suite("SUBSCRIBE and routing")
struct RoutingTests {
    @Test("[MQTT-3.8.4-8] QoS 0 routing: subscriber woken, message delivered on deliverPending")
    func qos0Routing() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        let suback = subscriber.subscribe("a/b", qos: .atLeastOnce)
        #expect(suback.packets(.v5) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS1]))])
        let published = publisher.publish("a/b", "hello")
        #expect(published.outbound.isEmpty)
        #expect(published.wakes(subscriber))
        let delivered = subscriber.deliver()
        let publish = try #require(delivered.publishes.first)
        #expect(delivered.publishes.count == 1)
        #expect(publish.body == "hello")
        #expect(publish.qos == .atMostOnce)
        #expect(publish.packetIdentifier == nil)
        #expect(!publish.retain)
        #expect(broker.statistics.messagesReceived == 1)
        #expect(broker.statistics.messagesSent == 1)
    }

    @Test("the waker is returned once until the connection drains")
    func wakeOnce() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        #expect(publisher.publish("t", "1").wakes(subscriber))
        #expect(!publisher.publish("t", "2").wakes(subscriber))
        #expect(subscriber.deliver().publishes.map(\.body) == ["1", "2"])
        #expect(publisher.publish("t", "3").wakes(subscriber))
    }

    @Test("QoS 1 both directions: PUBACK to publisher, packet id to subscriber, PUBACK frees the slot")
    func qos1Flow() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        let published = publisher.publish("t", "m", qos: .atLeastOnce, packetIdentifier: 7)
        #expect(published.packets(.v5) == [.puback(.init(packetIdentifier: 7))])
        let delivery = try #require(subscriber.deliver().publishes.first)
        #expect(delivery.qos == .atLeastOnce)
        let identifier = try #require(delivery.packetIdentifier)
        #expect(subscriber.send(.puback(.init(packetIdentifier: identifier))).outbound.isEmpty)
        // An unknown acknowledgement is ignored (logged at debug).
        let unknown = subscriber.send(.puback(.init(packetIdentifier: 999)))
        #expect(unknown.outbound.isEmpty && !unknown.close)
        #expect(unknown.logs.first?.level == .debug)
    }

    @Test("v5 PUBACK 0x10 when no subscription matched")
    func noMatchingSubscribers() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        let actions = publisher.publish("nobody", "m", qos: .atLeastOnce, packetIdentifier: 3)
        #expect(actions.packets(.v5) == [.puback(.init(packetIdentifier: 3, reasonCode: .noMatchingSubscribers))])
        var v3 = TestClient(broker, version: .v3_1_1)
        v3.connect("v3")
        #expect(v3.publish("nobody", "m", qos: .atLeastOnce, packetIdentifier: 3).packets(.v3_1_1) == [.puback(.init(packetIdentifier: 3))])
    }

    @Test("[MQTT-3.8.4-8] delivered QoS is min(published QoS, granted QoS)")
    func minimumQoS() throws {
        let broker = Broker(now: at(0))
        var low = TestClient(broker)
        var high = TestClient(broker)
        var publisher = TestClient(broker)
        low.connect("low")
        high.connect("high")
        publisher.connect("pub")
        low.subscribe("t", qos: .atMostOnce)
        high.subscribe("t", qos: .exactlyOnce)
        publisher.publish("t", "m", qos: .atLeastOnce)
        #expect(try #require(low.deliver().publishes.first).qos == .atMostOnce)
        #expect(try #require(high.deliver().publishes.first).qos == .atLeastOnce)
    }

    @Test("granted QoS is capped at the broker's maximum QoS")
    func grantedQoSCapped() {
        var configuration = BrokerConfiguration()
        configuration.maximumQoS = .atLeastOnce
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        #expect(client.subscribe("t", qos: .exactlyOnce).packets(.v5) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS1]))])
    }

    @Test("[MQTT-3.3.5-1] overlapping subscriptions: one delivery at the highest QoS, all subscription identifiers")
    func overlappingSubscriptions() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("a/+", qos: .atMostOnce, identifier: 1)
        subscriber.subscribe("a/#", qos: .exactlyOnce, packetIdentifier: 2, identifier: 2)
        publisher.publish("a/b", "m", qos: .exactlyOnce, packetIdentifier: 1)
        let delivered = subscriber.deliver()
        #expect(delivered.publishes.count == 1)
        let publish = try #require(delivered.publishes.first)
        #expect(publish.qos == .exactlyOnce)
        #expect(Set(publish.subscriptionIdentifiers) == [1, 2])
        #expect(Set(publish.packet(for: .v5).properties.subscriptionIdentifiers) == [1, 2])
        #expect(publish.packet(for: .v3_1_1).properties.isEmpty)
    }

    @Test("[MQTT-4.7.2-1] wildcards at the first level do not match $-topics")
    func dollarTopics() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("#", qos: .atMostOnce)
        subscriber.subscribe("+/x", qos: .atMostOnce, packetIdentifier: 2)
        #expect(!publisher.publish("$SYS/x", "m").wakes(subscriber))
        subscriber.subscribe("$SYS/#", qos: .atMostOnce, packetIdentifier: 3)
        #expect(publisher.publish("$SYS/x", "m").wakes(subscriber))
    }

    @Test("[MQTT-3.8.4-3] a repeated SUBSCRIBE replaces the subscription's options")
    func replaceSubscription() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .exactlyOnce)
        subscriber.subscribe("t", qos: .atMostOnce, packetIdentifier: 2)
        publisher.publish("t", "m", qos: .exactlyOnce, packetIdentifier: 1)
        let delivered = subscriber.deliver()
        #expect(delivered.publishes.count == 1)
        #expect(try #require(delivered.publishes.first).qos == .atMostOnce)
    }

    @Test("SUBACK reason codes per filter, in order; invalid filters refused, shared ones granted")
    func subackReasonCodes() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let subscribe = MQTTPacket.Subscribe(
            packetIdentifier: 5,
            subscriptions: [
                .init(filter: "a", qos: .atLeastOnce),
                .init(filter: "a/#/b", qos: .atMostOnce),
                .init(filter: "$share/g/a", qos: .atMostOnce),
                .init(filter: "$share//a", qos: .atMostOnce),
                .init(filter: "b", qos: .exactlyOnce),
            ]
        )
        #expect(
            client.send(.subscribe(subscribe)).plainPackets(.v5) == [
                .suback(.init(packetIdentifier: 5, reasonCodes: [.grantedQoS1, .topicFilterInvalid, .grantedQoS0, .topicFilterInvalid, .grantedQoS2]))
            ]
        )
        var v3 = TestClient(broker, version: .v3_1_1)
        v3.connect("b")
        #expect(
            v3.send(.subscribe(subscribe)).packets(.v3_1_1) == [
                .suback(.init(packetIdentifier: 5, reasonCodes: [.grantedQoS1, .unspecifiedError, .grantedQoS0, .unspecifiedError, .grantedQoS2]))
            ]
        )
    }

    @Test("[MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBACK always; v5 0x11 when no subscription existed")
    func unsubscribe() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var publisher = TestClient(broker)
        client.connect("a")
        publisher.connect("p")
        client.subscribe("t")
        let actions = client.send(.unsubscribe(.init(packetIdentifier: 9, filters: ["t", "u"])))
        #expect(actions.packets(.v5) == [.unsuback(.init(packetIdentifier: 9, reasonCodes: [.success, .noSubscriptionExisted]))])
        #expect(!publisher.publish("t", "m").wakes(client))
        var v3 = TestClient(broker, version: .v3_1_1)
        v3.connect("b")
        #expect(v3.send(.unsubscribe(.init(packetIdentifier: 2, filters: ["x"]))).packets(.v3_1_1) == [.unsuback(.init(packetIdentifier: 2))])
    }

    @Test("[MQTT-3.8.3-3] No Local: own messages are not delivered back")
    func noLocal() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        client.subscribe("t", options: .init(qos: .atMostOnce, noLocal: true))
        let actions = client.publish("t", "m")
        #expect(actions.publishes.isEmpty)
        var plain = TestClient(broker)
        plain.connect("b")
        plain.subscribe("t", qos: .atMostOnce)
        // Without No Local the publisher's own subscription gets it, inline in the same actions.
        #expect(plain.publish("t", "m").publishes.map(\.body) == ["m"])
    }

    @Test("[MQTT-4.6.0-5] messages from one publisher on one topic stay in order")
    func ordering() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        for index in 0..<10 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index + 1))
        }
        #expect(subscriber.deliver().publishes.map(\.body) == (0..<10).map { "\($0)" })
    }
}
