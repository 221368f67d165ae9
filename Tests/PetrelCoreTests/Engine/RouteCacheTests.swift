import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore

/// A publishing connection keeps the subscribers of its last topic (`RouteCache`); every change to the
/// subscriptions must reach its next PUBLISH all the same.
@Suite("Routing through a publisher's route cache")
struct RouteCacheTests {
    @Test("[MQTT-3.8.4-8] a subscription made between two PUBLISHes to the same topic gets the second")
    func newSubscriberSeen() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        var first = TestClient(broker)
        var second = TestClient(broker)
        publisher.connect("pub")
        first.connect("first")
        second.connect("second")
        first.subscribe("sensors/+/t", qos: .atMostOnce)
        publisher.publish("sensors/1/t", "a")
        second.subscribe("sensors/#", qos: .atMostOnce)
        publisher.publish("sensors/1/t", "b")
        #expect(first.deliver().publishes.map(\.body) == ["a", "b"])
        #expect(second.deliver().publishes.map(\.body) == ["b"])
    }

    @Test("[MQTT-3.10.4-6] after UNSUBSCRIBE the next PUBLISH to the same topic is not delivered")
    func unsubscribeSeen() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        var subscriber = TestClient(broker)
        publisher.connect("pub")
        subscriber.connect("sub")
        subscriber.subscribe("t", qos: .atMostOnce)
        publisher.publish("t", "1")
        subscriber.send(.unsubscribe(.init(packetIdentifier: 2, filters: ["t"])))
        publisher.publish("t", "2")
        #expect(subscriber.deliver().publishes.map(\.body) == ["1"])
    }

    @Test("[MQTT-3.8.4-3] a SUBSCRIBE that replaces a subscription changes the QoS of the next PUBLISH")
    func replacedSubscriptionSeen() throws {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        var subscriber = TestClient(broker)
        publisher.connect("pub")
        subscriber.connect("sub")
        subscriber.subscribe("t", qos: .atMostOnce)
        publisher.publish("t", "1", qos: .atLeastOnce, packetIdentifier: 1)
        subscriber.subscribe("t", qos: .atLeastOnce, packetIdentifier: 2)
        publisher.publish("t", "2", qos: .atLeastOnce, packetIdentifier: 2)
        let qos = subscriber.deliver().publishes.map(\.qos)
        #expect(qos == [.atMostOnce, .atLeastOnce])
    }

    @Test("a session that ends is no longer a target, and a new session of that client is")
    func endedSessionSeen() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        var subscriber = TestClient(broker)
        publisher.connect("pub")
        subscriber.connect("sub")
        subscriber.subscribe("t", qos: .atMostOnce)
        publisher.publish("t", "1")
        _ = subscriber.machine.connectionClosed(now: at(0))
        publisher.publish("t", "2")
        var again = TestClient(broker)
        again.connect("sub")
        again.subscribe("t", qos: .atMostOnce)
        publisher.publish("t", "3")
        #expect(again.deliver().publishes.map(\.body) == ["3"])
    }

    @Test("[MQTT-4.8.2] a member joining a shared group between two PUBLISHes takes its turn")
    func sharedMemberSeen() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        var one = TestClient(broker)
        var two = TestClient(broker)
        publisher.connect("pub")
        one.connect("one")
        two.connect("two")
        one.subscribe("$share/g/t", qos: .atMostOnce)
        publisher.publish("t", "1")
        two.subscribe("$share/g/t", qos: .atMostOnce)
        for body in ["2", "3", "4", "5"] { publisher.publish("t", body) }
        let first = one.deliver().publishes.map(\.body)
        let second = two.deliver().publishes.map(\.body)
        #expect(first.first == "1")
        #expect(first.count + second.count == 5)
        #expect(second.count == 2)
    }

    @Test("[MQTT-3.8.3-3] No Local is kept per publisher: another client's PUBLISH to the topic still arrives")
    func noLocalPerPublisher() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var other = TestClient(broker)
        client.connect("self")
        other.connect("other")
        client.subscribe("t", options: .init(qos: .atMostOnce, noLocal: true))
        client.publish("t", "own")
        other.publish("t", "other")
        client.publish("t", "own again")
        #expect(client.deliver().publishes.map(\.body) == ["other"])
    }

    @Test("alternating topics and a fan-out above the cache's bound are routed like any other")
    func alternatingAndLargeFanOut() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        var subscribers = (0..<(RouteCache.maximumTargets + 6)).map { _ in TestClient(broker) }
        for index in subscribers.indices {
            subscribers[index].connect("s\(index)")
            subscribers[index].subscribe(index % 2 == 0 ? "even" : "odd", qos: .atMostOnce)
            subscribers[index].subscribe("all", qos: .atMostOnce, packetIdentifier: 2)
        }
        for round in 0..<3 {
            publisher.publish("even", "e\(round)")
            publisher.publish("odd", "o\(round)")
            publisher.publish("all", "a\(round)")
        }
        for index in subscribers.indices {
            let expected = (0..<3).flatMap { [index % 2 == 0 ? "e\($0)" : "o\($0)", "a\($0)"] }
            #expect(subscribers[index].deliver().publishes.map(\.body) == expected)
        }
    }
}
