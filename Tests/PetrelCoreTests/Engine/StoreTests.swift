import NIOCore
import Testing

@testable import PetrelCore

@Suite("BrokerStore persistence")
struct StoreTests {
    @Test("a new Broker on the same store gets back sessions, subscriptions, queued and inflight messages and retained messages")
    func reloadFromStore() throws {
        let store = InMemoryBrokerStore()
        var persistent = MQTTProperties()
        persistent.sessionExpiryInterval = .max
        var firstIdentifier: UInt16 = 0
        var secondIdentifier: UInt16 = 0
        do {
            let broker = Broker(store: store, now: at(0))
            var subscriber = TestClient(broker)
            var publisher = TestClient(broker)
            subscriber.connect("sub", cleanStart: false, properties: persistent)
            publisher.connect("pub")
            subscriber.subscribe("t/#", qos: .exactlyOnce, identifier: 42)
            publisher.publish("t/1", "one", qos: .exactlyOnce, packetIdentifier: 1)
            publisher.publish("t/2", "two", qos: .atLeastOnce, packetIdentifier: 2)
            let sent = subscriber.deliver().publishes
            firstIdentifier = try #require(sent[0].packetIdentifier)
            secondIdentifier = try #require(sent[1].packetIdentifier)
            subscriber.send(.pubrec(.init(packetIdentifier: firstIdentifier)))
            // Inbound QoS 2 awaiting PUBREL is part of the session too.
            subscriber.publish("x", "in", qos: .exactlyOnce, packetIdentifier: 77)
            _ = subscriber.machine.connectionClosed(now: at(1))
            publisher.publish("t/3", "three", qos: .atLeastOnce, packetIdentifier: 3, at: at(2))
            publisher.publish("r", "retained", qos: .atLeastOnce, retain: true, packetIdentifier: 4, at: at(2))
            broker.shutdown(now: at(3))
        }
        #expect(store.sessionCount == 1)
        #expect(store.retainedCount == 1)

        let broker = Broker(store: store, now: at(10))
        #expect(broker.statistics.sessions == 1)
        #expect(broker.statistics.retainedMessages == 1)
        var subscriber = TestClient(broker)
        let actions = subscriber.connect("sub", cleanStart: false, properties: persistent, at: at(11))
        #expect(try #require(connack(actions)).sessionPresent)
        let packets = Array(actions.packets(.v5).dropFirst())
        #expect(packets.count == 3)
        #expect(packets.first == .pubrel(.init(packetIdentifier: firstIdentifier)))
        if packets.count == 3, case .publish(let resent) = packets[1], case .publish(let queued) = packets[2] {
            #expect(resent.dup && resent.packetIdentifier == secondIdentifier)
            #expect(String(buffer: queued.payload) == "three")
            #expect(queued.properties.subscriptionIdentifiers == [42])
        } else {
            Issue.record("unexpected packets \(packets)")
        }
        // The inbound QoS 2 identifier survived: a retransmission is not routed again.
        #expect(subscriber.send(.pubrel(.init(packetIdentifier: 77))).packets(.v5) == [.pubcomp(.init(packetIdentifier: 77))])
        // The subscription survived.
        var publisher = TestClient(broker)
        publisher.connect("pub2", at: at(12))
        #expect(publisher.publish("t/4", "four", at: at(12)).wakes(subscriber))
        // The retained message survived.
        var late = TestClient(broker)
        late.connect("late", at: at(12))
        #expect(late.subscribe("r", at: at(12)).publishes.map(\.body) == ["retained"])
    }

    @Test("non-persistent sessions are not written; ending a persistent session removes it")
    func onlyPersistentSessionsStored() {
        let store = InMemoryBrokerStore()
        let broker = Broker(store: store, now: at(0))
        var transient = TestClient(broker)
        transient.connect("t")
        transient.subscribe("x")
        #expect(store.sessionCount == 0)
        var persistent = TestClient(broker, version: .v3_1_1)
        persistent.connect("p", cleanStart: false)
        #expect(store.sessionCount == 1)
        _ = persistent.machine.connectionClosed(now: at(1))
        var clean = TestClient(broker, version: .v3_1_1)
        clean.connect("p", cleanStart: true)
        #expect(store.sessionCount == 0)
    }

    @Test("a stored will of a session that was connected is re-armed at load")
    func willRearmed() {
        let store = InMemoryBrokerStore()
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 100
        do {
            let broker = Broker(store: store, now: at(0))
            var client = TestClient(broker)
            client.connect("a", cleanStart: false, will: .init(topic: "w", payload: payload("x"), retain: true), properties: properties)
            // The process "dies" here: no connectionClosed.
        }
        let broker = Broker(store: store, now: at(10))
        _ = broker.tick(now: at(10))
        var late = TestClient(broker)
        late.connect("late", at: at(11))
        #expect(late.subscribe("w", at: at(11)).publishes.map(\.body) == ["x"])
    }
}
