import NIOCore
import Testing

@testable import PetrelCore

@Suite("Sessions, takeover and persistence")
struct SessionTests {
    private func persistent(_ seconds: UInt32 = .max) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = seconds
        return properties
    }

    @Test("[MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] 3.1.1 session present flag")
    func sessionPresentV311() throws {
        let broker = Broker(now: at(0))
        var first = TestClient(broker, version: .v3_1_1)
        #expect(try #require(connack(first.connect("a", cleanStart: false))).sessionPresent == false)
        _ = first.machine.connectionClosed(now: at(1))
        var second = TestClient(broker, version: .v3_1_1)
        #expect(try #require(connack(second.connect("a", cleanStart: false))).sessionPresent == true)
        _ = second.machine.connectionClosed(now: at(2))
        var third = TestClient(broker, version: .v3_1_1)
        #expect(try #require(connack(third.connect("a", cleanStart: true))).sessionPresent == false)
        _ = third.machine.connectionClosed(now: at(3))
        // Clean session 1 ends the session with the connection.
        var fourth = TestClient(broker, version: .v3_1_1)
        #expect(try #require(connack(fourth.connect("a", cleanStart: false))).sessionPresent == false)
    }

    @Test("[MQTT-3.1.4-3] takeover: old connection gets DISCONNECT 0x8E on deliverPending and closes")
    func takeover() throws {
        let broker = Broker(now: at(0))
        var old = TestClient(broker)
        old.connect("a")
        var new = TestClient(broker)
        let actions = new.connect("a")
        #expect(try #require(connack(actions)).reasonCode == .success)
        #expect(actions.wakes(old))
        let oldActions = old.deliver(at: at(1))
        #expect(disconnectReason(oldActions) == .sessionTakenOver)
        #expect(oldActions.close)
        #expect(old.machine.connectionClosed(now: at(1)).outbound.isEmpty)
        #expect(broker.statistics.connectionsCurrent == 1)
        // The new connection keeps working.
        #expect(new.subscribe("t").packets(.v5).count == 1)
    }

    @Test("[MQTT-3.1.4-2] 3.1.1 takeover closes the old connection without DISCONNECT")
    func takeoverV311() {
        let broker = Broker(now: at(0))
        var old = TestClient(broker, version: .v3_1_1)
        old.connect("a")
        var new = TestClient(broker, version: .v3_1_1)
        new.connect("a")
        let oldActions = old.deliver()
        #expect(oldActions.close)
        #expect(oldActions.outbound.isEmpty)
    }

    @Test("a taken-over connection cannot touch the session: its packets close it")
    func takenOverConnectionRefused() {
        let broker = Broker(now: at(0))
        var old = TestClient(broker)
        old.connect("a", cleanStart: false, properties: persistent())
        var new = TestClient(broker)
        new.connect("a", cleanStart: false, properties: persistent())
        let actions = old.subscribe("t")
        #expect(actions.close)
        #expect(disconnectReason(actions) == .sessionTakenOver)
    }

    @Test("[MQTT-3.2.2-2] [MQTT-4.4.0-1] resumed session: subscriptions kept, PUBLISH resent with DUP and PUBREL resent in order, then queued")
    func resumeWithRetransmission() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub", cleanStart: false, properties: persistent())
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .exactlyOnce)
        publisher.publish("t", "1", qos: .exactlyOnce, packetIdentifier: 1)
        publisher.publish("t", "2", qos: .atLeastOnce, packetIdentifier: 2)
        let sent = subscriber.deliver().publishes
        #expect(sent.map(\.body) == ["1", "2"])
        let first = try #require(sent[0].packetIdentifier)
        let second = try #require(sent[1].packetIdentifier)
        // PUBREC for the QoS 2 one; no ack for the QoS 1 one.
        #expect(subscriber.send(.pubrec(.init(packetIdentifier: first))).packets(.v5) == [.pubrel(.init(packetIdentifier: first))])
        _ = subscriber.machine.connectionClosed(now: at(1))
        // While offline: QoS 1 queued, QoS 0 not (queueQoS0ForOfflineSessions is false).
        publisher.publish("t", "3", qos: .atLeastOnce, packetIdentifier: 3, at: at(2))
        publisher.publish("t", "4", at: at(2))

        var resumed = TestClient(broker)
        let actions = resumed.connect("sub", cleanStart: false, properties: persistent(), at: at(3))
        #expect(try #require(connack(actions)).sessionPresent)
        let packets = Array(actions.packets(.v5).dropFirst())
        #expect(packets.count == 3)
        #expect(packets[0] == .pubrel(.init(packetIdentifier: first)))
        guard case .publish(let dupPublish) = packets[1], case .publish(let queued) = packets[2] else {
            Issue.record("expected two PUBLISH packets, got \(packets)")
            return
        }
        #expect(dupPublish.dup && dupPublish.packetIdentifier == second && String(buffer: dupPublish.payload) == "2")
        #expect(!queued.dup && String(buffer: queued.payload) == "3")
        #expect(queued.packetIdentifier != first && queued.packetIdentifier != second)
        // The subscription survived the reconnect.
        publisher.publish("t", "5", at: at(4))
        #expect(resumed.deliver(at: at(4)).publishes.map(\.body) == ["5"])
    }

    @Test("QoS 0 is queued for offline sessions when configured")
    func queueQoS0Offline() {
        var configuration = BrokerConfiguration()
        configuration.queueQoS0ForOfflineSessions = true
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker, version: .v3_1_1)
        var publisher = TestClient(broker)
        subscriber.connect("sub", cleanStart: false)
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        _ = subscriber.machine.connectionClosed(now: at(1))
        publisher.publish("t", "m")
        var resumed = TestClient(broker, version: .v3_1_1)
        #expect(resumed.connect("sub", cleanStart: false).publishes.map(\.body) == ["m"])
    }

    @Test("v5 session expiry 0 ends the session at disconnect; a non-zero expiry is removed by tick")
    func sessionExpiry() throws {
        let broker = Broker(now: at(0))
        var transient = TestClient(broker)
        transient.connect("t", cleanStart: false)
        _ = transient.machine.connectionClosed(now: at(1))
        var again = TestClient(broker)
        #expect(try #require(connack(again.connect("t", cleanStart: false))).sessionPresent == false)
        _ = again.machine.connectionClosed(now: at(1))

        var expiring = TestClient(broker)
        expiring.connect("e", cleanStart: false, properties: persistent(10))
        _ = expiring.machine.connectionClosed(now: at(1))
        #expect(broker.statistics.sessions == 1)
        _ = broker.tick(now: at(10))
        #expect(broker.statistics.sessions == 1)
        let result = broker.tick(now: at(11))
        #expect(broker.statistics.sessions == 0)
        #expect(result.logs.contains { $0.message == "Session expired" })
    }

    @Test("v5 DISCONNECT may change the session expiry interval: to 0 ends the session")
    func disconnectChangesExpiry() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a", cleanStart: false, properties: persistent(100))
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 0
        #expect(client.send(.disconnect(.init(properties: properties))).close)
        var again = TestClient(broker)
        #expect(try #require(connack(again.connect("a", cleanStart: false))).sessionPresent == false)
    }

    @Test("[MQTT-3.14.2-2] DISCONNECT with a non-zero session expiry after 0 on CONNECT is a protocol error")
    func disconnectExpiryFromZero() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 10
        let actions = client.send(.disconnect(.init(properties: properties)))
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("[MQTT-3.1.2-4] clean start discards the existing session and its subscriptions")
    func cleanStartDiscards() {
        let broker = Broker(now: at(0))
        var first = TestClient(broker)
        var publisher = TestClient(broker)
        first.connect("a", cleanStart: false, properties: persistent())
        publisher.connect("pub")
        first.subscribe("t")
        _ = first.machine.connectionClosed(now: at(1))
        var second = TestClient(broker)
        second.connect("a", cleanStart: true, properties: persistent())
        #expect(!publisher.publish("t", "m").wakes(second))
        #expect(second.deliver().publishes.isEmpty)
    }
}
