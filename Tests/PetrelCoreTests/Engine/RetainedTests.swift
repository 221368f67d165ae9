import NIOCore
import Testing

@testable import PetrelCore

@Suite("Retained messages")
struct RetainedTests {
    @Test("[MQTT-3.3.1-5] [MQTT-3.3.1-8] retained message stored and sent with RETAIN 1 to new subscriptions, via wildcards too")
    func retainedOnSubscribe() throws {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("a/b", "one", qos: .atLeastOnce, retain: true)
        publisher.publish("a/c", "two", qos: .exactlyOnce, retain: true, packetIdentifier: 2)
        #expect(broker.statistics.retainedMessages == 2)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        let actions = subscriber.subscribe("a/+", qos: .atLeastOnce)
        guard case .packet(.suback) = try #require(actions.outbound.first) else {
            Issue.record("SUBACK must come first")
            return
        }
        let retained = actions.publishes
        #expect(Set(retained.map(\.body)) == ["one", "two"])
        #expect(retained.allSatisfy { $0.retain })
        #expect(retained.allSatisfy { $0.qos == .atLeastOnce })
    }

    @Test("[MQTT-3.3.1-9] forwarded to existing subscriptions with RETAIN 0; Retain As Published keeps it [MQTT-3.3.1-13]")
    func retainFlagOnLiveDelivery() throws {
        let broker = Broker(now: at(0))
        var plain = TestClient(broker)
        var asPublished = TestClient(broker)
        var publisher = TestClient(broker)
        plain.connect("plain")
        asPublished.connect("rap")
        publisher.connect("pub")
        plain.subscribe("t", qos: .atMostOnce)
        asPublished.subscribe("t", options: .init(qos: .atMostOnce, retainAsPublished: true))
        publisher.publish("t", "m", retain: true)
        #expect(try #require(plain.deliver().publishes.first).retain == false)
        #expect(try #require(asPublished.deliver().publishes.first).retain == true)
    }

    @Test("[MQTT-3.3.1-5] a retained message replaces the previous one; [MQTT-3.3.1-6] [MQTT-3.3.1-7] empty payload deletes it")
    func replaceAndDelete() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "old", retain: true)
        publisher.publish("t", "new", retain: true)
        var first = TestClient(broker)
        first.connect("first")
        #expect(first.subscribe("t").publishes.map(\.body) == ["new"])
        publisher.publish("t", "", retain: true)
        #expect(broker.statistics.retainedMessages == 0)
        var second = TestClient(broker)
        second.connect("second")
        #expect(second.subscribe("t").publishes.isEmpty)
    }

    @Test("retained delivery QoS is min(message QoS, granted QoS)")
    func retainedQoS() throws {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "m", qos: .exactlyOnce, retain: true)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        #expect(try #require(subscriber.subscribe("t", qos: .atMostOnce).publishes.first).qos == .atMostOnce)
    }

    @Test("[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] v5 Retain Handling 0 always, 1 only when new, 2 never")
    func retainHandling() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "m", retain: true)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        let always = MQTTPacket.SubscriptionOptions(qos: .atMostOnce, retainHandling: .sendOnSubscribe)
        let onlyNew = MQTTPacket.SubscriptionOptions(qos: .atMostOnce, retainHandling: .sendOnNewSubscribe)
        let never = MQTTPacket.SubscriptionOptions(qos: .atMostOnce, retainHandling: .doNotSend)
        #expect(subscriber.subscribe("t", options: always).publishes.count == 1)
        #expect(subscriber.subscribe("t", options: always).publishes.count == 1)
        #expect(subscriber.subscribe("t", options: onlyNew).publishes.isEmpty)
        #expect(subscriber.subscribe("u/#", options: never).publishes.isEmpty)
        #expect(subscriber.subscribe("#", options: onlyNew).publishes.count == 1)
    }

    @Test("expired retained messages are removed by tick and not sent")
    func retainedExpiry() {
        let broker = Broker(now: at(0))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        var properties = MQTTProperties()
        properties.messageExpiryInterval = 5
        publisher.publish("t", "m", retain: true, properties: properties)
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        #expect(subscriber.subscribe("t", at: at(6)).publishes.isEmpty)
        _ = broker.tick(now: at(6))
        #expect(broker.statistics.retainedMessages == 0)
    }
}
