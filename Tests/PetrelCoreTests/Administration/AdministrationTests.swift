import NIOCore
import Testing

@testable import PetrelCore

@Suite("Operators' actions on the engine")
struct AdministrationTests {
    private func will(delay: UInt32? = nil) -> MQTTPacket.Will {
        var properties = MQTTProperties()
        properties.willDelayInterval = delay
        return MQTTPacket.Will(topic: "will", payload: payload("gone"), qos: .atLeastOnce, properties: properties)
    }

    private func watcher(_ broker: Broker) -> TestClient {
        var watcher = TestClient(broker)
        watcher.connect("watcher")
        watcher.subscribe("will", qos: .atLeastOnce)
        return watcher
    }

    @Test("disconnecting a v5 client wakes its connection, which sends DISCONNECT 0x98 and closes")
    func disconnectV5() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let result = broker.disconnectClient("a")
        #expect(result.found)
        #expect(result.wake.count == 1 && result.wake.first === client.waker)
        let actions = client.deliver(at: at(1))
        #expect(disconnectReason(actions) == .administrativeAction)
        #expect(actions.close)
        #expect(!client.machine.isConnected)
        #expect(broker.statistics.connectionsCurrent == 0)
    }

    @Test("a 3.1.1 client is closed without a DISCONNECT (it has none from the server)")
    func disconnectV311() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, version: .v3_1_1)
        client.connect("a")
        _ = broker.disconnectClient("a")
        let actions = client.deliver(at: at(1))
        #expect(actions.close)
        #expect(disconnectReason(actions) == nil)
    }

    @Test("disconnecting an unknown or offline client finds nothing")
    func disconnectUnknown() {
        let broker = Broker(now: at(0))
        #expect(!broker.disconnectClient("nobody").found)
        var client = TestClient(broker)
        client.connect(
            "offline", cleanStart: false,
            properties: {
                var p = MQTTProperties()
                p.sessionExpiryInterval = 60
                return p
            }())
        _ = client.machine.connectionClosed(now: at(1))
        #expect(!broker.disconnectClient("offline").found)
    }

    @Test("[MQTT-3.1.2-8] the will of an administratively disconnected client is published")
    func disconnectPublishesWill() throws {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will())
        _ = broker.disconnectClient("a")
        let actions = client.deliver(at: at(1))
        #expect(actions.wakes(watcher))
        let delivered = try #require(watcher.deliver().publishes.first)
        #expect(delivered.body == "gone")
    }

    @Test("a persistent session outlives an administrative disconnect; its subscriptions stay")
    func disconnectKeepsSession() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        client.connect("a", cleanStart: false, properties: properties)
        client.subscribe("t/#")
        _ = broker.disconnectClient("a")
        _ = client.deliver(at: at(1))
        let snapshot = try #require(broker.sessionSnapshot(clientIdentifier: "a", now: at(2)))
        #expect(!snapshot.isConnected)
        #expect(snapshot.subscriptions.map(\.filter) == ["t/#"])
        #expect(snapshot.expiresInSeconds == 299)
    }

    @Test("removing the session of a connected client disconnects it with 0x98 and ends the session")
    func removeConnectedSession() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        client.subscribe("t")
        let result = broker.removeSession("a", now: at(1))
        #expect(result.found)
        #expect(result.wake.contains { $0 === client.waker })
        #expect(broker.sessionSnapshot(clientIdentifier: "a", now: at(1)) == nil)
        let actions = client.deliver(at: at(1))
        #expect(disconnectReason(actions) == .administrativeAction)
        #expect(actions.close)
        #expect(broker.subscribedTopics().isEmpty)
    }

    @Test("removing an offline session drops its queue and its subscriptions")
    func removeOfflineSession() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        client.connect("a", cleanStart: false, properties: properties)
        client.subscribe("t", qos: .atLeastOnce)
        _ = client.machine.connectionClosed(now: at(1))
        var publisher = TestClient(broker)
        publisher.connect("p")
        publisher.publish("t", "queued", qos: .atLeastOnce)
        #expect(broker.sessionSnapshot(clientIdentifier: "a", now: at(2))?.queuedMessages == 1)
        #expect(broker.removeSession("a", now: at(2)).found)
        #expect(broker.totals().queuedMessages == 0)
        #expect(broker.subscriptionSnapshots().isEmpty)
        #expect(!broker.removeSession("a", now: at(3)).found)
        // The client comes back to a new session.
        var again = TestClient(broker)
        #expect(
            connack(again.connect("a", cleanStart: false, properties: properties, at: at(4)))?.sessionPresent == false)
    }

    @Test("[MQTT-3.1.2-8] removing a session publishes the will still waiting for its delay")
    func removeSessionPublishesDelayedWill() throws {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        client.connect("a", cleanStart: false, will: self.will(delay: 120), properties: properties)
        let closed = client.machine.connectionClosed(now: at(1))
        #expect(!closed.wakes(watcher))
        let result = broker.removeSession("a", now: at(2))
        #expect(result.wake.contains { $0 === watcher.waker })
        #expect(try #require(watcher.deliver().publishes.first).body == "gone")
        // Not a second time when the delay would have run out.
        #expect(!broker.tick(now: at(200)).wake.contains { $0 === watcher.waker })
    }

    @Test("a retained message is removed once, from the index and the store")
    func removeRetained() {
        let store = InMemoryBrokerStore()
        let broker = Broker(store: store, now: at(0))
        var client = TestClient(broker)
        client.connect("p")
        client.publish("r/1", "kept", retain: true)
        #expect(broker.retainedMessage(topic: "r/1", now: at(1))?.payload == payload("kept"))
        #expect(broker.removeRetainedMessage(topic: "r/1").found)
        #expect(broker.retainedMessage(topic: "r/1", now: at(1)) == nil)
        #expect(!broker.removeRetainedMessage(topic: "r/1").found)
        #expect(broker.statistics.retainedBytes == 0)
        #expect(store.load().retained.isEmpty)
    }

    @Test("[MQTT-3.8.4-8] an own message at QoS 1 reaches a QoS 2 subscriber at QoS 1 and a QoS 0 one at QoS 0")
    func ownMessageQoS() throws {
        let broker = Broker(now: at(0))
        var high = TestClient(broker)
        high.connect("high")
        high.subscribe("t", qos: .exactlyOnce)
        var low = TestClient(broker)
        low.connect("low")
        low.subscribe("t", qos: .atMostOnce)
        let result = broker.publishOwnMessage(
            topic: "t", payload: payload("x"), qos: .atLeastOnce, retain: true, durable: true, now: at(1))
        #expect(result.wake.count == 2)
        #expect(try #require(high.deliver().publishes.first).qos == .atLeastOnce)
        #expect(try #require(low.deliver().publishes.first).qos == .atMostOnce)
        #expect(broker.retainedMessage(topic: "t", now: at(1))?.qos == .atLeastOnce)
    }

    @Test("an own message's QoS is lowered to the broker's maximum QoS")
    func ownMessageMaximumQoS() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumQoS = .atLeastOnce
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        client.subscribe("t", qos: .atLeastOnce)
        _ = broker.publishOwnMessage(topic: "t", payload: payload("x"), qos: .exactlyOnce, retain: false, now: at(1))
        #expect(try #require(client.deliver().publishes.first).qos == .atLeastOnce)
    }
}

@Suite("Operators' disconnect as the connection sees it")
struct DisconnectRequestTests {
    @Test("the connection knows a disconnect is asked for before it drains, and only its own")
    func requestVisible() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        var other = TestClient(broker)
        other.connect("b")
        #expect(!client.machine.isDisconnectRequested)
        _ = broker.disconnectClient("a")
        #expect(client.machine.isDisconnectRequested)
        #expect(!other.machine.isDisconnectRequested)
        _ = client.deliver(at: at(1))
        #expect(!client.machine.isDisconnectRequested)
        // A new connection for the same client is not disconnected by the old request.
        var again = TestClient(broker)
        again.connect("a", at: at(2))
        #expect(!again.machine.isDisconnectRequested)
        #expect(disconnectReason(again.deliver(at: at(2))) == nil)
    }
}
