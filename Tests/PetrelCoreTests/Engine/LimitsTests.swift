import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore

/// Per-client limits with documented defaults and the spec's reason codes.
@Suite("Limits: topic length, subscriptions, publish rate, queued memory")
struct LimitsTests {
    static func broker(_ configure: (inout BrokerConfiguration) -> Void) -> Broker {
        var configuration = BrokerConfiguration()
        configure(&configuration)
        return Broker(configuration: configuration, now: at(0))
    }

    static func suback(_ actions: ConnectionActions) -> [ReasonCode] {
        for case .suback(let ack) in actions.nonPublishPackets { return ack.reasonCodes }
        return []
    }

    @Test("A topic longer than maximumTopicLength: PUBACK 0x97 (v5); SUBACK 0x97 / 0x80; will: CONNACK 0x97")
    func topicLength() {
        let broker = Self.broker { $0.maximumTopicLength = 16 }
        var client = TestClient(broker)
        _ = client.connect("c")
        let long = String(repeating: "x", count: 17)
        let refused = client.publish(long, "p", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(refused.nonPublishPackets.contains { if case .puback(let ack) = $0 { ack.reasonCode == .quotaExceeded } else { false } })
        #expect(Self.suback(client.subscribe(long)) == [.quotaExceeded])
        #expect(Self.suback(client.subscribe("short/#", qos: .atLeastOnce)) == [.grantedQoS1])
        var old = TestClient(broker, version: .v3_1_1)
        _ = old.connect("o")
        #expect(Self.suback(old.subscribe(long)).map(\.isFailure) == [true])
        var willing = TestClient(broker)
        let will = MQTTPacket.Will(topic: long, payload: payload("w"), qos: .atMostOnce, retain: false)
        #expect(connack(willing.connect("w", will: will))?.reasonCode == .quotaExceeded)
        #expect(broker.statistics.topicsRefusedTooLong == 4)
    }

    @Test("Subscriptions beyond the per-session maximum get 0x97; replacing one held is fine")
    func subscriptionQuota() {
        let broker = Self.broker { $0.maximumSubscriptionsPerSession = 2 }
        var client = TestClient(broker)
        _ = client.connect("c")
        #expect(Self.suback(client.subscribe("a", qos: .atMostOnce)) == [.grantedQoS0])
        #expect(Self.suback(client.subscribe("b", qos: .atMostOnce)) == [.grantedQoS0])
        #expect(Self.suback(client.subscribe("c", qos: .atMostOnce)) == [.quotaExceeded])
        #expect(Self.suback(client.subscribe("a", qos: .atLeastOnce)) == [.grantedQoS1])
        _ = client.send(.unsubscribe(MQTTPacket.Unsubscribe(packetIdentifier: 9, filters: ["b"])))
        #expect(Self.suback(client.subscribe("c", qos: .atMostOnce)) == [.grantedQoS0])
        #expect(broker.statistics.subscriptionsRefusedQuota == 1)
    }

    @Test("Limits changed while running hold from the next packet: subscriptions, then the publish rate")
    func liveLimits() {
        let broker = Self.broker { $0.maximumSubscriptionsPerSession = 1 }
        var client = TestClient(broker)
        _ = client.connect("c")
        #expect(Self.suback(client.subscribe("a", qos: .atMostOnce)) == [.grantedQoS0])
        #expect(Self.suback(client.subscribe("b", qos: .atMostOnce)) == [.quotaExceeded])
        broker.limits.update(
            maximumQueuedMessages: broker.configuration.maximumQueuedMessages,
            maximumQueuedBytes: broker.configuration.maximumQueuedBytes,
            maximumPublishRate: 2,
            maximumSubscriptionsPerSession: 2
        )
        #expect(Self.suback(client.subscribe("b", qos: .atMostOnce)) == [.grantedQoS0])
        #expect(!client.publish("t", "1", at: at(1)).close)
        #expect(!client.publish("t", "2", at: at(1)).close)
        let flooded = client.publish("t", "3", at: at(1))
        #expect(flooded.close)
        #expect(disconnectReason(flooded) == .messageRateTooHigh)
        // The configuration itself stays as it was given.
        #expect(broker.configuration.maximumPublishRate == 0)
    }

    @Test("A client publishing faster than the maximum rate is disconnected with 0x96 Message rate too high")
    func publishRate() {
        let broker = Self.broker { $0.maximumPublishRate = 10 }
        var client = TestClient(broker)
        _ = client.connect("c")
        // Ten in a burst are fine, and one more after a tenth of a second.
        for index in 0..<10 { #expect(!client.publish("t", "\(index)", at: at(1)).close) }
        #expect(!client.publish("t", "later", at: at(1, milliseconds: 150)).close)
        let flooded = client.publish("t", "too many", at: at(1, milliseconds: 151))
        #expect(flooded.close)
        #expect(disconnectReason(flooded) == .messageRateTooHigh)
        #expect(broker.statistics.clientsDisconnectedPublishRate == 1)
    }

    @Test("A global budget for queued messages drops what does not fit, in every session; freed bytes count again")
    func queuedMemoryBudget() {
        let broker = Self.broker { $0.maximumQueuedBytesTotal = 4_000 }
        var subscribers = (0..<2).map { index -> TestClient in
            var subscriber = TestClient(broker)
            _ = subscriber.connect("s\(index)")
            _ = subscriber.subscribe("load", qos: .atLeastOnce)
            return subscriber
        }
        var publisher = TestClient(broker)
        _ = publisher.connect("p")
        let body = String(repeating: "x", count: 500)
        for index in 0..<10 { _ = publisher.publish("load", body, qos: .atLeastOnce, packetIdentifier: UInt16(index + 1)) }
        let stats = broker.statistics
        #expect(stats.messagesDroppedMemoryBudget > 0)
        #expect(stats.queuedBytes <= 4_000)
        // Draining one subscriber frees its bytes for new messages.
        let delivered = subscribers[0].deliver().publishes.count
        #expect(delivered > 0)
        #expect(broker.statistics.queuedBytes < stats.queuedBytes)
        _ = subscribers
    }
}

@Suite("A session belongs to its user")
struct SessionOwnershipTests {
    static func broker() -> Broker {
        var configuration = BrokerConfiguration()
        configuration.sessionsBelongToTheirUser = true
        return Broker(configuration: configuration, now: at(0))
    }

    @Test("Another user cannot take over a client id: CONNACK 0x87, and the owner stays connected", arguments: [ProtocolVersion.v3_1_1, .v5])
    func takeoverByAnotherUser(version: ProtocolVersion) {
        let broker = Self.broker()
        var alice = TestClient(broker, version: version)
        #expect(connack(alice.connect("device-1", cleanStart: false, username: "alice"))?.reasonCode == .success)
        var mallory = TestClient(broker, version: version)
        let refused = mallory.connect("device-1", cleanStart: false, username: "mallory")
        #expect(connack(refused)?.reasonCode == .notAuthorized)
        #expect(refused.close)
        #expect(refused.wake.isEmpty)  // alice's connection is not told to close
        #expect(alice.machine.isConnected)
        // The same user may take its own session over, as MQTT says [MQTT-3.1.4-3].
        var again = TestClient(broker, version: version)
        let takeover = again.connect("device-1", cleanStart: false, username: "alice")
        #expect(connack(takeover)?.reasonCode == .success)
        #expect(takeover.wakes(alice))
    }

    @Test("Without the setting, the spec's takeover applies to anyone")
    func defaultTakeover() {
        let broker = Broker(configuration: BrokerConfiguration(), now: at(0))
        var alice = TestClient(broker)
        _ = alice.connect("device-1", username: "alice")
        var bob = TestClient(broker)
        #expect(connack(bob.connect("device-1", username: "bob"))?.reasonCode == .success)
    }
}
