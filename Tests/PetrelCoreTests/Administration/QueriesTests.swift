import NIOCore
import Testing

@testable import PetrelCore

@Suite("Operators' read-only queries")
struct QueriesTests {
    private func persistent(_ seconds: UInt32) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = seconds
        return properties
    }

    @Test("a connected client's snapshot says how it connected and what it holds")
    func connectedSnapshot() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, address: "10.0.0.9:5000")
        client.connect("sensor-1", cleanStart: true, keepAlive: 30, username: "alice", properties: persistent(60))
        client.subscribe("a/+", qos: .atLeastOnce, identifier: 7)
        client.subscribe("$share/g/b/#", qos: .atMostOnce, packetIdentifier: 2)
        let snapshot = try #require(broker.sessionSnapshot(clientIdentifier: "sensor-1", now: at(1)))
        let connection = try #require(snapshot.connection)
        #expect(connection.remoteAddress == "10.0.0.9:5000")
        #expect(connection.listener == "mqtt")
        #expect(connection.keepAlive == 30)
        #expect(connection.cleanStart)
        #expect(snapshot.username == "alice")
        #expect(snapshot.protocolVersion == .v5)
        #expect(snapshot.expiryInterval == 60)
        #expect(snapshot.expiresInSeconds == nil)
        #expect(snapshot.subscriptions.map(\.filter) == ["$share/g/b/#", "a/+"])
        #expect(snapshot.subscriptions.last?.options.qos == .atLeastOnce)
        #expect(snapshot.subscriptions.last?.subscriptionIdentifier == 7)
        #expect(snapshot.inflightMessages == 0 && snapshot.queuedMessages == 0)
        #expect(broker.sessionSnapshot(clientIdentifier: "other", now: at(1)) == nil)
    }

    @Test("sessions are sorted, filtered by id, user or address, and connected ones told apart")
    func sessionListing() {
        let broker = Broker(now: at(0))
        var a = TestClient(broker, address: "10.0.0.1:1")
        a.connect("b-client", username: "bob")
        var b = TestClient(broker, address: "192.168.1.5:2")
        b.connect("a-client", cleanStart: false, properties: persistent(600))
        _ = b.machine.connectionClosed(now: at(1))
        #expect(broker.sessionSnapshots(now: at(2)).map(\.clientIdentifier) == ["a-client", "b-client"])
        #expect(broker.sessionSnapshots(connectedOnly: true, now: at(2)).map(\.clientIdentifier) == ["b-client"])
        #expect(broker.sessionSnapshots(matching: "bob", now: at(2)).map(\.clientIdentifier) == ["b-client"])
        #expect(broker.sessionSnapshots(matching: "10.0.0", now: at(2)).map(\.clientIdentifier) == ["b-client"])
        #expect(broker.sessionSnapshots(matching: "a-cl", now: at(2)).map(\.clientIdentifier) == ["a-client"])
        // The offline session no longer has an address to match.
        #expect(broker.sessionSnapshots(matching: "192.168", now: at(2)).isEmpty)
    }

    @Test("a page keeps its offset and limit within the list and reports the whole length")
    func paging() {
        let page = QueryPage(of: Array(0..<10), offset: 8, limit: 5)
        #expect(page.items == [8, 9])
        #expect(page.total == 10)
        #expect(QueryPage(of: Array(0..<3), offset: 5, limit: 2).items.isEmpty)
        #expect(QueryPage(of: Array(0..<3), offset: 0, limit: 0).items.isEmpty)
        #expect(QueryPage(of: Array(0..<3), offset: Int.max, limit: Int.max).items.isEmpty)
        #expect(QueryPage(of: Array(0..<3), offset: 1, limit: Int.max).items == [1, 2])
    }

    @Test("subscriptions and topics count each session once per filter")
    func subscriptionsAndTopics() {
        let broker = Broker(now: at(0))
        for name in ["x", "y"] {
            var client = TestClient(broker)
            client.connect(name)
            client.subscribe("shared/topic")
            if name == "y" { client.subscribe("only/y", packetIdentifier: 2) }
        }
        #expect(
            broker.subscriptionSnapshots().map { "\($0.clientIdentifier) \($0.filter)" } == [
                "x shared/topic", "y only/y", "y shared/topic",
            ])
        #expect(broker.subscriptionSnapshots(matching: "only").count == 1)
        #expect(
            broker.subscribedTopics() == [
                TopicSubscriberCount(filter: "only/y", subscribers: 1),
                TopicSubscriberCount(filter: "shared/topic", subscribers: 2),
            ])
    }

    @Test("[MQTT-4.7.2-1] retained messages listed by an MQTT filter; '#' leaves $ topics out, no filter keeps them")
    func retainedListing() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("p")
        client.publish("home/kitchen/temp", "21", retain: true)
        client.publish("home/hall/temp", "19", retain: true)
        client.publish("office/temp", "22", retain: true)
        _ = broker.publishOwnMessage(topic: "$SYS/broker/uptime", payload: payload("5"), retain: true, now: at(0))
        #expect(
            broker.retainedMessageList(filter: nil, now: at(1)).map(\.topic) == [
                "$SYS/broker/uptime", "home/hall/temp", "home/kitchen/temp", "office/temp",
            ])
        #expect(broker.retainedMessageList(filter: "#", now: at(1)).count == 3)
        #expect(
            broker.retainedMessageList(filter: "home/+/temp", now: at(1)).map(\.topic) == [
                "home/hall/temp", "home/kitchen/temp",
            ])
        #expect(broker.retainedMessageList(filter: "+/temp", now: at(1)).map(\.topic) == ["office/temp"])
    }

    @Test("[MQTT-3.3.2-5] an expired retained message is neither listed nor read")
    func retainedExpiry() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("p")
        var properties = MQTTProperties()
        properties.messageExpiryInterval = 10
        client.publish("short", "x", retain: true, properties: properties)
        #expect(broker.retainedMessage(topic: "short", now: at(5)) != nil)
        #expect(broker.retainedMessage(topic: "short", now: at(11)) == nil)
        #expect(broker.retainedMessageList(filter: nil, now: at(11)).isEmpty)
    }
}
