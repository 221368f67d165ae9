import NIOCore
import Testing

@testable import PetrelCore

@Suite("Topic aliases")
struct TopicAliasTests {
    private func aliased(_ alias: UInt16) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.topicAlias = alias
        return properties
    }

    @Test("CONNACK advertises the configured Topic Alias Maximum")
    func advertised() throws {
        var configuration = BrokerConfiguration()
        configuration.topicAliasMaximum = 5
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        #expect(try #require(connack(client.connect("a"))).properties.topicAliasMaximum == 5)
    }

    @Test("[MQTT-3.3.2-12] inbound: topic and alias set the mapping, an empty topic with the alias uses it")
    func inboundMapping() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("a/#", qos: .atMostOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("a/one", "1", properties: self.aliased(16))
        publisher.publish("", "2", properties: self.aliased(16))
        publisher.publish("a/two", "3", properties: self.aliased(16))
        publisher.publish("", "4", properties: self.aliased(16))
        let delivered = subscriber.deliver().publishes
        #expect(delivered.map(\.message.topic) == ["a/one", "a/one", "a/two", "a/two"])
        // The alias is not forwarded: the subscriber's deliveries carry no Topic Alias of the publisher.
        #expect(delivered.allSatisfy { $0.packet(for: .v5).properties.topicAlias == nil })
    }

    @Test("[MQTT-3.3.2-8] alias 0 is refused: DISCONNECT 0x94")
    func aliasZero() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.publish("t", "m", properties: self.aliased(0))
        #expect(disconnectReason(actions) == .topicAliasInvalid)
        #expect(actions.close)
    }

    @Test("[MQTT-3.3.2-9] an alias above the Topic Alias Maximum is refused: DISCONNECT 0x94")
    func aliasTooLarge() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.publish("t", "m", properties: self.aliased(17))
        #expect(disconnectReason(actions) == .topicAliasInvalid)
    }

    @Test("an alias with an empty topic that was never set is a protocol error: DISCONNECT 0x82")
    func unknownAlias() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.publish("", "m", properties: self.aliased(3))
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("[MQTT-3.3.2-7] inbound mappings are not carried to the next connection")
    func notCarriedForward() {
        let broker = Broker(now: at(0))
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 60
        var first = TestClient(broker)
        first.connect("a", cleanStart: false, properties: properties)
        first.publish("t", "m", properties: self.aliased(1))
        first.send(.disconnect(.init()))
        var second = TestClient(broker)
        second.connect("a", cleanStart: false, properties: properties)
        #expect(disconnectReason(second.publish("", "m", properties: self.aliased(1))) == .protocolError)
    }

    @Test("[MQTT-3.1.2-27] no outbound alias when the client's Topic Alias Maximum is absent")
    func noOutboundWithoutMaximum() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("t", qos: .atMostOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "1")
        let delivery = try #require(subscriber.deliver().publishes.first)
        let prepared = subscriber.machine.prepareForSending(delivery)
        #expect(prepared.topicAlias == nil && !prepared.omitsTopic)
    }

    @Test("[MQTT-3.1.2-26] [MQTT-3.3.2-11] outbound: topic with a new alias once, then the alias alone; LRU beyond the maximum")
    func outbound() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var properties = MQTTProperties()
        properties.topicAliasMaximum = 2
        subscriber.connect("sub", properties: properties)
        subscriber.subscribe("#", qos: .atMostOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for topic in ["a", "a", "b", "a", "c", "c", "b"] {
            publisher.publish(topic, topic)
        }
        let packets = subscriber.deliver().publishes.map { subscriber.machine.prepareForSending($0).packet(for: .v5) }
        let sent = packets.map { ($0.topic, $0.properties.topicAlias) }
        // a -> 1, b -> 2; c evicts the least recently used (b) and takes alias 2; b then evicts a (alias 1).
        let expected: [(String, UInt16?)] = [("a", 1), ("", 1), ("b", 2), ("", 1), ("c", 2), ("", 2), ("b", 1)]
        #expect(sent.count == expected.count)
        for (got, want) in zip(sent, expected) {
            #expect(got.0 == want.0 && got.1 == want.1)
        }
        #expect(packets.allSatisfy { ($0.properties.topicAlias ?? 0) <= 2 })
    }

    @Test("an aliased PUBLISH too large for the client is dropped and its alias forgotten")
    func tooLargeForgetsAlias() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var properties = MQTTProperties()
        properties.topicAliasMaximum = 4
        subscriber.connect("sub", properties: properties)
        subscriber.subscribe("t", qos: .atMostOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "big")
        publisher.publish("t", "small")
        let deliveries = subscriber.deliver().publishes
        let first = subscriber.machine.prepareForSending(deliveries[0])
        #expect(first.topicAlias == 1 && !first.omitsTopic)
        _ = subscriber.machine.outboundPublishTooLarge(first, now: at(0))
        let second = subscriber.machine.prepareForSending(deliveries[1])
        #expect(second.topicAlias != nil && !second.omitsTopic)
    }

    @Test("OutboundTopicAliases reuses forgotten aliases and never exceeds its capacity")
    func table() {
        var table = OutboundTopicAliases(capacity: 3)
        #expect(table.assign("x") == .set(1))
        #expect(table.assign("y") == .set(2))
        table.forget(1)
        #expect(table.assign("z") == .set(1))
        #expect(table.assign("w") == .set(3))
        #expect(table.assign("v") == .set(2))  // y was least recently used
        #expect(table.count == 3)
        var none = OutboundTopicAliases(capacity: 0)
        #expect(none.assign("x") == .none)
    }
}
