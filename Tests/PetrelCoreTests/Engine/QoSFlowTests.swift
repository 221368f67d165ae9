import NIOCore
import Testing

@testable import PetrelCore

@Suite("QoS 2 flows, inflight window and limits")
struct QoSFlowTests {
    @Test("[MQTT-4.3.3-10] inbound QoS 2: PUBREC, a duplicate PUBLISH before PUBREL is not routed again, PUBREL -> PUBCOMP")
    func inboundQoS2() {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        let first = publisher.publish("t", "m", qos: .exactlyOnce, packetIdentifier: 4)
        #expect(first.packets(.v5) == [.pubrec(.init(packetIdentifier: 4))])
        #expect(first.wakes(subscriber))
        #expect(subscriber.deliver().publishes.count == 1)
        let again = publisher.publish("t", "m", qos: .exactlyOnce, packetIdentifier: 4, dup: true)
        #expect(again.packets(.v5) == [.pubrec(.init(packetIdentifier: 4))])
        #expect(!again.wakes(subscriber))
        #expect(subscriber.deliver().publishes.isEmpty)
        #expect(publisher.send(.pubrel(.init(packetIdentifier: 4))).packets(.v5) == [.pubcomp(.init(packetIdentifier: 4))])
        // After PUBREL the identifier is free again: a new PUBLISH with it is a new message.
        publisher.publish("t", "n", qos: .exactlyOnce, packetIdentifier: 4)
        #expect(subscriber.deliver().publishes.map(\.body) == ["n"])
    }

    @Test("v5 PUBCOMP 0x92 for a PUBREL with an unknown packet identifier")
    func unknownPubrel() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        #expect(client.send(.pubrel(.init(packetIdentifier: 8))).plainPackets(.v5) == [.pubcomp(.init(packetIdentifier: 8, reasonCode: .packetIdentifierNotFound))])
        var v3 = TestClient(broker, version: .v3_1_1)
        v3.connect("b")
        #expect(v3.send(.pubrel(.init(packetIdentifier: 8))).packets(.v3_1_1) == [.pubcomp(.init(packetIdentifier: 8))])
    }

    @Test("outbound QoS 2: PUBREC -> PUBREL, PUBCOMP frees the slot")
    func outboundQoS2() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .exactlyOnce)
        publisher.publish("t", "m", qos: .exactlyOnce, packetIdentifier: 1)
        let delivery = try #require(subscriber.deliver().publishes.first)
        #expect(delivery.qos == .exactlyOnce)
        let identifier = try #require(delivery.packetIdentifier)
        #expect(subscriber.send(.pubrec(.init(packetIdentifier: identifier))).packets(.v5) == [.pubrel(.init(packetIdentifier: identifier))])
        // A repeated PUBREC gets the PUBREL again.
        #expect(subscriber.send(.pubrec(.init(packetIdentifier: identifier))).packets(.v5) == [.pubrel(.init(packetIdentifier: identifier))])
        #expect(subscriber.send(.pubcomp(.init(packetIdentifier: identifier))).outbound.isEmpty)
        #expect(subscriber.send(.pubcomp(.init(packetIdentifier: identifier))).logs.first?.level == .debug)
    }

    @Test("[MQTT-3.3.4-9] the inflight window is min(maximumInflightMessages, client Receive Maximum); acks pull queued messages")
    func inflightWindow() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumInflightMessages = 3
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        var properties = MQTTProperties()
        properties.receiveMaximum = 2
        subscriber.connect("sub", properties: properties)
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        for index in 1...5 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index))
        }
        let first = subscriber.deliver().publishes
        #expect(first.map(\.body) == ["1", "2"])
        // The acknowledgement frees a slot and wakes the connection, whose drain sends the next message.
        let acked = subscriber.send(.puback(.init(packetIdentifier: try #require(first[0].packetIdentifier))))
        #expect(acked.publishes.isEmpty)
        #expect(acked.wakes(subscriber))
        #expect(subscriber.deliver().publishes.map(\.body) == ["3"])
        // QoS 0 messages never wait for the window unless queued behind a QoS 1/2 message.
    }

    @Test("acknowledgements of one read wake the connection once; none when nothing waits")
    func acknowledgementsWakeOnce() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumInflightMessages = 2
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        for index in 1...3 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index))
        }
        let first = subscriber.deliver().publishes
        #expect(first.map(\.body) == ["1", "2"])
        // Both slots freed before the connection drains: one wake between them.
        let one = subscriber.send(.puback(.init(packetIdentifier: try #require(first[0].packetIdentifier))))
        let two = subscriber.send(.puback(.init(packetIdentifier: try #require(first[1].packetIdentifier))))
        #expect(one.wakes(subscriber))
        #expect(!two.wakes(subscriber))
        let last = subscriber.deliver().publishes
        #expect(last.map(\.body) == ["3"])
        // Nothing is queued any more: the last acknowledgement wakes nobody.
        #expect(!subscriber.send(.puback(.init(packetIdentifier: try #require(last[0].packetIdentifier)))).wakes(subscriber))
    }

    @Test("[MQTT-2.2.1-3] packet identifiers are never reused while in flight")
    func packetIdentifiersNotReused() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumInflightMessages = 10
        configuration.maximumQueuedMessages = 100_000
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        // Keep identifier of the first delivery in flight while 70,000 others cycle through the window.
        publisher.publish("t", "first", qos: .atLeastOnce)
        let pinned = try #require(subscriber.deliver().publishes.first?.packetIdentifier)
        var inflight: Set<UInt16> = [pinned]
        for index in 0..<70_000 {
            publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: 1)
            for delivery in subscriber.deliver().publishes {
                let identifier = try #require(delivery.packetIdentifier)
                #expect(!inflight.contains(identifier))
                inflight.insert(identifier)
                let acked = subscriber.send(.puback(.init(packetIdentifier: identifier)))
                inflight.remove(identifier)
                #expect(acked.publishes.isEmpty)
            }
        }
        #expect(inflight == [pinned])
    }

    @Test("inbound QoS 2 above Receive Maximum: DISCONNECT 0x93")
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
        #expect(actions.logs.contains { $0.level == .warning })
    }

    @Test("queue bound: the NEW message is dropped, counted, and logged once per burst")
    func queueFull() {
        var configuration = BrokerConfiguration()
        configuration.maximumInflightMessages = 1
        configuration.maximumQueuedMessages = 2
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        var warnings = 0
        for index in 1...6 {
            warnings += publisher.publish("t", "\(index)", qos: .atLeastOnce, packetIdentifier: UInt16(index)).logs.count { $0.level == .warning }
        }
        #expect(broker.statistics.messagesDroppedQueueFull == 4)
        #expect(warnings == 1)
        // The oldest ones survive.
        #expect(subscriber.deliver().publishes.map(\.body) == ["1"])
    }

    @Test("queue bound by bytes")
    func queueBytes() {
        var configuration = BrokerConfiguration()
        configuration.maximumQueuedBytes = 10
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        publisher.publish("t", "12345678")
        publisher.publish("t", "12345678")
        #expect(broker.statistics.messagesDroppedQueueFull == 1)
    }

    @Test("[MQTT-3.2.2-11] [MQTT-3.2.2-14] v5 PUBLISH above Maximum QoS -> 0x9B; retained without retain support -> 0x9A")
    func publishCapabilities() {
        var configuration = BrokerConfiguration()
        configuration.maximumQoS = .atLeastOnce
        configuration.retainAvailable = false
        let broker = Broker(configuration: configuration, now: at(0))
        var first = TestClient(broker)
        first.connect("a")
        #expect(disconnectReason(first.publish("t", "m", qos: .exactlyOnce)) == .qosNotSupported)
        var second = TestClient(broker)
        second.connect("b")
        #expect(disconnectReason(second.publish("t", "m", retain: true)) == .retainNotSupported)
    }

    @Test("v5 Topic Alias is refused with DISCONNECT 0x94 when Topic Alias Maximum is 0")
    func topicAlias() {
        var configuration = BrokerConfiguration()
        configuration.topicAliasMaximum = 0
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        var properties = MQTTProperties()
        properties.topicAlias = 1
        let actions = client.publish("t", "m", properties: properties)
        #expect(disconnectReason(actions) == .topicAliasInvalid)
        #expect(actions.close)
    }

    @Test("receiveError: v5 DISCONNECT with the decoder's reason, 3.1.1 just close")
    func decoderError() {
        struct Malformed: Error {}
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.machine.receiveError(Malformed(), reason: .malformedPacket, now: at(1))
        #expect(disconnectReason(actions) == .malformedPacket)
        #expect(actions.close)
        var v3 = TestClient(broker, version: .v3_1_1)
        v3.connect("b")
        let closed = v3.machine.receiveError(Malformed(), reason: .packetTooLarge, now: at(1))
        #expect(closed.outbound.isEmpty && closed.close)
    }

    @Test("[MQTT-3.3.2-5] [MQTT-3.3.2-6] message expiry: remaining interval sent, expired messages not delivered")
    func messageExpiry() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        var properties = MQTTProperties()
        properties.messageExpiryInterval = 10
        publisher.publish("t", "a", properties: properties, at: at(0))
        let delivered = try #require(subscriber.deliver(at: at(4)).publishes.first)
        #expect(delivered.messageExpiryInterval == 6)
        #expect(delivered.packet(for: .v5).properties.messageExpiryInterval == 6)
        publisher.publish("t", "b", properties: properties, at: at(0))
        #expect(subscriber.deliver(at: at(11)).publishes.isEmpty)
        #expect(broker.statistics.messagesDroppedExpired == 1)
    }

    @Test("[MQTT-3.1.2-25] an outbound PUBLISH too large for the client is discarded as if completed")
    func outboundTooLarge() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumInflightMessages = 1
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        var properties = MQTTProperties()
        properties.maximumPacketSize = 20
        subscriber.connect("sub", properties: properties)
        #expect(subscriber.machine.maximumOutboundPacketSize == 20)
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atLeastOnce)
        publisher.publish("t", String(repeating: "x", count: 100), qos: .atLeastOnce)
        publisher.publish("t", "small", qos: .atLeastOnce)
        let big = try #require(subscriber.deliver().publishes.first)
        let next = subscriber.machine.outboundPublishTooLarge(big, now: at(0))
        #expect(next.publishes.map(\.body) == ["small"])
        #expect(broker.statistics.messagesDroppedTooLarge == 1)
    }

    @Test("PUBLISH forwards only the forwarded v5 properties")
    func forwardedProperties() throws {
        let broker = Broker(now: at(0))
        var subscriber = TestClient(broker)
        var publisher = TestClient(broker)
        subscriber.connect("sub")
        publisher.connect("pub")
        subscriber.subscribe("t", qos: .atMostOnce)
        var properties = MQTTProperties()
        properties.contentType = "text/plain"
        properties.responseTopic = "reply"
        properties.payloadFormatIndicator = 1
        properties.userProperties = [.init(name: "k", value: "v")]
        publisher.publish("t", "m", properties: properties)
        let packet = try #require(subscriber.deliver().publishes.first).packet(for: .v5)
        #expect(packet.properties.contentType == "text/plain")
        #expect(packet.properties.responseTopic == "reply")
        #expect(packet.properties.payloadFormatIndicator == 1)
        #expect(packet.properties.userProperties == [.init(name: "k", value: "v")])
        #expect(packet.properties.messageExpiryInterval == nil)
    }
}
