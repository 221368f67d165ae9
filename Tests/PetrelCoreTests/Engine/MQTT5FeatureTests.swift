import NIOCore
import Testing

@testable import PetrelCore

@Suite("MQTT 5 features")
struct MQTT5FeatureTests {
    @Test("[MQTT-3.3.4-6] a client PUBLISH carrying a Subscription Identifier: DISCONNECT 0x82")
    func subscriptionIdentifierInPublish() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        var properties = MQTTProperties()
        properties.subscriptionIdentifiers = [7]
        let actions = client.publish("t", "m", properties: properties)
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("[MQTT-3.3.4-3] [MQTT-3.8.2-1] subscription identifiers are sent with the matching deliveries only")
    func subscriptionIdentifiers() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("a/+", qos: .atMostOnce, identifier: 5)
        subscriber.subscribe("a/b", qos: .atMostOnce, packetIdentifier: 2)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("a/b", "1")
        publisher.publish("a/c", "2")
        let delivered = subscriber.deliver().publishes
        #expect(delivered.map(\.subscriptionIdentifiers) == [[5], [5]])
    }

    @Test("[MQTT-3.3.2-5] Broker.tick purges expired messages anywhere in an offline session's queue")
    func tickPurgesExpiredQueued() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var sessionProperties = MQTTProperties()
        sessionProperties.sessionExpiryInterval = 3600
        subscriber.connect("sub", cleanStart: false, properties: sessionProperties)
        subscriber.subscribe("t", qos: .atLeastOnce)
        subscriber.send(.disconnect(.init()))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        var short = MQTTProperties()
        short.messageExpiryInterval = 5
        publisher.publish("t", "keep-1", qos: .atLeastOnce, packetIdentifier: 1)
        publisher.publish("t", "short", qos: .atLeastOnce, packetIdentifier: 2, properties: short)
        publisher.publish("t", "keep-2", qos: .atLeastOnce, packetIdentifier: 3)
        let session = broker.registry.withLock { $0.sessions["sub"] }
        #expect(session?.queuedCount == 3)
        _ = broker.tick(now: at(3))
        #expect(session?.queuedCount == 3)
        _ = broker.tick(now: at(6))
        #expect(session?.queuedCount == 2)
        #expect(broker.statistics.messagesDroppedExpired == 1)
        var back = TestClient(broker)
        let resumed = back.connect("sub", cleanStart: false, properties: sessionProperties, at: at(7))
        #expect(resumed.publishes.map(\.body) == ["keep-1", "keep-2"])
    }

    @Test("the expiry purge does no more than its budget per tick")
    func purgeBudget() {
        var configuration = BrokerConfiguration()
        configuration.expiryPurgeBudget = 2
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var sessionProperties = MQTTProperties()
        sessionProperties.sessionExpiryInterval = 3600
        subscriber.connect("sub", cleanStart: false, properties: sessionProperties)
        subscriber.subscribe("t", qos: .atLeastOnce)
        subscriber.send(.disconnect(.init()))
        var publisher = TestClient(broker)
        publisher.connect("pub")
        var short = MQTTProperties()
        short.messageExpiryInterval = 1
        for index in 1...5 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index), properties: short)
        }
        let session = broker.registry.withLock { $0.sessions["sub"] }
        _ = broker.tick(now: at(2))
        #expect(session?.queuedCount == 3)
        _ = broker.tick(now: at(3))
        _ = broker.tick(now: at(4))
        #expect(session?.queuedCount == 0)
    }

    @Test("Response Information in CONNACK only when requested and configured")
    func responseInformation() throws {
        var configuration = BrokerConfiguration()
        configuration.responseInformationPrefix = "replies"
        let broker = Broker(configuration: configuration, now: at(0))
        var asking = TestClient(broker)
        var properties = MQTTProperties()
        properties.requestResponseInformation = 1
        #expect(try #require(connack(asking.connect("asker", properties: properties))).properties.responseInformation == "replies/asker")
        var silent = TestClient(broker)
        #expect(try #require(connack(silent.connect("silent"))).properties.responseInformation == nil)
        let unconfigured = Broker(now: at(0))
        var other = TestClient(unconfigured)
        #expect(try #require(connack(other.connect("x", properties: properties))).properties.responseInformation == nil)
    }

    @Test("Response Topic and Correlation Data are forwarded unchanged")
    func requestResponseForwarded() throws {
        let broker = Broker(now: at(0))
        var responder = TestClient(broker)
        responder.connect("responder")
        responder.subscribe("requests", qos: .atLeastOnce)
        var requester = TestClient(broker)
        requester.connect("requester")
        var properties = MQTTProperties()
        properties.responseTopic = "replies/requester"
        properties.correlationData = ByteBuffer(bytes: [1, 2, 3])
        requester.publish("requests", "q", qos: .atLeastOnce, properties: properties)
        let request = try #require(responder.deliver().publishes.first).packet(for: .v5)
        #expect(request.properties.responseTopic == "replies/requester")
        #expect(request.properties.correlationData == ByteBuffer(bytes: [1, 2, 3]))
    }

    @Test("server redirection: v5 CONNACK 0x9C / 0x9D with Server Reference; 3.1.1 gets 0x03 Server unavailable")
    func redirection() throws {
        var configuration = BrokerConfiguration()
        configuration.serverReference = "other.example:1884"
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        let actions = client.connect("a")
        let ack = try #require(connack(actions))
        #expect(ack.reasonCode == .useAnotherServer)
        #expect(ack.properties.serverReference == "other.example:1884")
        #expect(actions.close)

        configuration.redirectReasonCode = .serverMoved
        let moved = Broker(configuration: configuration, now: at(0))
        var movedClient = TestClient(moved)
        #expect(try #require(connack(movedClient.connect("a"))).reasonCode == .serverMoved)

        var v3 = TestClient(moved, version: .v3_1_1)
        let refused = v3.connect("b")
        let v3ack = try #require(connack(refused))
        #expect(LegacyConnectReturnCode(v3ack.reasonCode) == .serverUnavailable)
        #expect(v3ack.properties.serverReference == nil)
        #expect(refused.close)
    }

    @Test("[MQTT-3.1.2-29] a server DISCONNECT carries a Reason String, even with Request Problem Information 0")
    func disconnectReasonString() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.requestProblemInformation = 0
        client.connect("a", properties: properties)
        let actions = client.publish("", "m")
        guard case .disconnect(let disconnect)? = actions.nonPublishPackets.first else {
            Issue.record("no DISCONNECT")
            return
        }
        #expect(disconnect.reasonCode == .protocolError)
        #expect(disconnect.properties.reasonString != nil)
        #expect(disconnect.properties.userProperties.isEmpty)
    }

    @Test("[MQTT-3.1.2-29] Reason String on failed acknowledgements unless Request Problem Information is 0")
    func ackReasonStrings() throws {
        let broker = Broker(now: at(0))
        var asking = TestClient(broker)
        asking.connect("a")
        let suback = asking.subscribe("a/#/b")
        guard case .suback(let ack)? = suback.nonPublishPackets.first else {
            Issue.record("no SUBACK")
            return
        }
        #expect(ack.properties.reasonString != nil)
        let pubcomp = asking.send(.pubrel(.init(packetIdentifier: 44)))
        #expect(pubcomp.nonPublishPackets.first.map { if case .pubcomp(let p) = $0 { p.properties.reasonString != nil } else { false } } == true)

        var quiet = TestClient(broker)
        var properties = MQTTProperties()
        properties.requestProblemInformation = 0
        quiet.connect("q", properties: properties)
        let quietSuback = quiet.subscribe("a/#/b")
        #expect(quietSuback.packets(.v5) == [.suback(.init(packetIdentifier: 1, reasonCodes: [.topicFilterInvalid]))])
        let quietPubcomp = quiet.send(.pubrel(.init(packetIdentifier: 44)))
        #expect(quietPubcomp.packets(.v5) == [.pubcomp(.init(packetIdentifier: 44, reasonCode: .packetIdentifierNotFound))])
        // Successful acknowledgements carry no properties at all.
        #expect(asking.subscribe("ok", packetIdentifier: 2).packets(.v5) == [.suback(.init(packetIdentifier: 2, reasonCodes: [.grantedQoS2]))])
    }

    @Test("[MQTT-3.1.2-25] Reason String and User Properties are what is left out to fit the Maximum Packet Size")
    func withoutProblemInformation() {
        var properties = MQTTProperties()
        properties.reasonString = "why"
        properties.userProperties = [UserProperty(name: "k", value: "v")]
        let disconnect = MQTTPacket.disconnect(.init(reasonCode: .protocolError, properties: properties))
        #expect(disconnect.withoutProblemInformation == .disconnect(.init(reasonCode: .protocolError)))
        #expect(MQTTPacket.disconnect(.init(reasonCode: .protocolError)).withoutProblemInformation == nil)
        #expect(MQTTPacket.pingresp.withoutProblemInformation == nil)
        let counted = Broker(now: at(0))
        var client = TestClient(counted)
        client.connect("a")
        _ = client.machine.outboundPacketTooLarge(.pingresp)
        #expect(counted.statistics.packetsDroppedTooLarge == 1)
    }

    @Test("3.3.4 Receive Maximum: more inbound QoS 2 than the broker's Receive Maximum: DISCONNECT 0x93")
    func receiveMaximumExceeded() {
        var configuration = BrokerConfiguration()
        configuration.receiveMaximum = 2
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        client.publish("t", "1", qos: .exactlyOnce, packetIdentifier: 1)
        client.publish("t", "2", qos: .exactlyOnce, packetIdentifier: 2)
        let actions = client.publish("t", "3", qos: .exactlyOnce, packetIdentifier: 3)
        #expect(disconnectReason(actions) == .receiveMaximumExceeded)
        #expect(actions.close)
    }

    @Test("[MQTT-3.3.4-9] never more unacknowledged QoS 1/2 PUBLISH than the client's Receive Maximum, QoS 2 included")
    func clientReceiveMaximum() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var properties = MQTTProperties()
        properties.receiveMaximum = 1
        subscriber.connect("sub", properties: properties)
        subscriber.subscribe("t", qos: .exactlyOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        publisher.publish("t", "1", qos: .exactlyOnce, packetIdentifier: 1)
        publisher.publish("t", "2", qos: .exactlyOnce, packetIdentifier: 2)
        let first = subscriber.deliver().publishes
        #expect(first.map(\.body) == ["1"])
        let identifier = try #require(first.first?.packetIdentifier)
        // PUBREC does not free the slot; PUBCOMP does.
        #expect(subscriber.send(.pubrec(.init(packetIdentifier: identifier))).publishes.isEmpty)
        #expect(subscriber.send(.pubcomp(.init(packetIdentifier: identifier))).wakes(subscriber))
        #expect(subscriber.deliver().publishes.map(\.body) == ["2"])
    }

    @Test("[MQTT-3.1.2-8] will delay longer than the session expiry: the will is sent when the session ends")
    func willAtEarlierOfDelayAndExpiry() {
        let broker = Broker(now: at(0))
        var watcher = TestClient(broker)
        watcher.connect("watcher")
        watcher.subscribe("will", qos: .atMostOnce)
        var willProperties = MQTTProperties()
        willProperties.willDelayInterval = 100
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 10
        var client = TestClient(broker)
        client.connect(
            "dying",
            will: MQTTPacket.Will(topic: "will", payload: payload("bye"), qos: .atMostOnce, retain: false, properties: willProperties),
            properties: properties
        )
        _ = client.machine.connectionClosed(now: at(1))
        #expect(broker.tick(now: at(10)).wake.isEmpty)
        #expect(!broker.tick(now: at(11)).wake.isEmpty)
        #expect(watcher.deliver(at: at(11)).publishes.map(\.body) == ["bye"])
    }
}

@Suite("Receive Maximum on resume")
struct ResumeReceiveMaximumTests {
    @Test("[MQTT-3.3.4-9] a resumed session resends no more unacknowledged PUBLISH than the new Receive Maximum")
    func resendWithinReceiveMaximum() throws {
        let broker = Broker(now: at(0))
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 600
        properties.receiveMaximum = 3
        var first = TestClient(broker)
        first.connect("sub", cleanStart: false, properties: properties)
        first.subscribe("t", qos: .atLeastOnce)
        var publisher = TestClient(broker)
        publisher.connect("pub")
        for index in 1...4 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index))
        }
        #expect(first.deliver().publishes.map(\.body) == ["1", "2", "3"])
        _ = first.machine.connectionClosed(now: at(1))

        properties.receiveMaximum = 2
        var second = TestClient(broker)
        let resumed = second.connect("sub", cleanStart: false, properties: properties, at: at(2))
        let resent = resumed.publishes
        #expect(resent.map(\.body) == ["1", "2"])
        #expect(resent.allSatisfy { $0.dup })
        // Each acknowledgement lets exactly one more through: first the remaining resend, then the queue.
        #expect(second.send(.puback(.init(packetIdentifier: try #require(resent[0].packetIdentifier))), at: at(2)).wakes(second))
        let next = second.deliver(at: at(2))
        #expect(next.publishes.map(\.body) == ["3"])
        #expect(next.publishes.first?.dup == true)
        #expect(second.send(.puback(.init(packetIdentifier: try #require(resent[1].packetIdentifier))), at: at(2)).wakes(second))
        let last = second.deliver(at: at(2))
        #expect(last.publishes.map(\.body) == ["4"])
        #expect(last.publishes.first?.dup == false)
    }
}
