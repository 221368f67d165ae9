import NIOCore
import Testing

@testable import PetrelCore

@Suite("CONNECT and CONNACK")
struct ConnectTests {
    @Test("[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection")
    func firstPacketMustBeConnect() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        let actions = client.send(.pingreq)
        #expect(actions.close)
        #expect(actions.outbound.isEmpty)
        #expect(actions.logs.count == 1)
    }

    @Test("[MQTT-3.1.0-2] a second CONNECT is a protocol error: v5 DISCONNECT 0x82 and close")
    func secondConnect() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.connect("a")
        #expect(actions.close)
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.logs.contains { $0.level == .warning && $0.metadata["mqtt.client_id"] == "a" })
    }

    @Test("[MQTT-3.1.0-2] 3.1.1: a second CONNECT closes without DISCONNECT")
    func secondConnectV311() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, version: .v3_1_1)
        client.connect("a")
        let actions = client.connect("a")
        #expect(actions.close)
        #expect(actions.outbound.isEmpty)
    }

    @Test("v5 CONNACK advertises the broker's capabilities")
    func connackPropertiesV5() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumQoS = .atLeastOnce
        configuration.retainAvailable = false
        configuration.serverKeepAlive = 30
        configuration.maximumSessionExpiryInterval = 100
        configuration.receiveMaximum = 10
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 1000
        let ack = try #require(connack(client.connect("a", cleanStart: true, properties: properties)))
        #expect(ack.reasonCode == .success)
        #expect(!ack.sessionPresent)
        #expect(ack.properties.receiveMaximum == 10)
        #expect(ack.properties.maximumQoS == 1)
        #expect(ack.properties.retainAvailable == 0)
        #expect(ack.properties.maximumPacketSize == 1_048_576)
        #expect(ack.properties.topicAliasMaximum == 16)
        #expect(ack.properties.wildcardSubscriptionAvailable == 1)
        #expect(ack.properties.subscriptionIdentifierAvailable == 1)
        #expect(ack.properties.sharedSubscriptionAvailable == 1)
        #expect(ack.properties.serverKeepAlive == 30)
        #expect(ack.properties.sessionExpiryInterval == 100)
        #expect(ack.properties.assignedClientIdentifier == nil)
        #expect(client.machine.protocolVersion == .v5)
        #expect(client.machine.clientIdentifier == "a")
    }

    @Test("3.1.1 CONNACK carries no properties")
    func connackV311() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, version: .v3_1_1)
        let ack = try #require(connack(client.connect("a")))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.isEmpty)
    }

    @Test("[MQTT-3.1.3-6] [MQTT-3.2.2-16] v5 empty client identifier gets an Assigned Client Identifier")
    func assignedIdentifierV5() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        let ack = try #require(connack(client.connect("")))
        #expect(ack.reasonCode == .success)
        let assigned = try #require(ack.properties.assignedClientIdentifier)
        #expect(!assigned.isEmpty)
        #expect(client.machine.clientIdentifier == assigned)
    }

    @Test("[MQTT-3.1.3-6] 3.1.1 empty client identifier with clean session is assigned one")
    func assignedIdentifierV311() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, version: .v3_1_1)
        let ack = try #require(connack(client.connect("", cleanStart: true)))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.assignedClientIdentifier == nil)
        #expect(client.machine.clientIdentifier?.isEmpty == false)
    }

    @Test("[MQTT-3.1.3-8] 3.1.1 empty client identifier with clean session 0 gets 0x02 and close")
    func emptyIdentifierPersistentV311() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker, version: .v3_1_1)
        let actions = client.connect("", cleanStart: false)
        let ack = try #require(connack(actions))
        #expect(LegacyConnectReturnCode(ack.reasonCode) == .identifierRejected)
        #expect(actions.close)
    }

    @Test("3.1 empty client identifier is refused with 0x02; long ones are accepted")
    func identifiersV31() throws {
        let broker = Broker(now: at(0))
        var empty = TestClient(broker, version: .v3_1)
        let refused = empty.connect("")
        #expect(LegacyConnectReturnCode(try #require(connack(refused)).reasonCode) == .identifierRejected)
        #expect(refused.close)
        var long = TestClient(broker, version: .v3_1)
        let accepted = long.connect(String(repeating: "x", count: 40))
        #expect(try #require(connack(accepted)).reasonCode == .success)
    }

    @Test("client identifier longer than the configured maximum is refused")
    func identifierTooLong() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumClientIdentifierLength = 4
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        let actions = client.connect("abcde")
        #expect(try #require(connack(actions)).reasonCode == .clientIdentifierNotValid)
        #expect(actions.close)
    }

    @Test("[MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01 then close")
    func unsupportedLevel() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        let actions = client.machine.unsupportedProtocolVersion(level: 7, now: at(0))
        let ack = try #require(connack(actions))
        #expect(LegacyConnectReturnCode(ack.reasonCode) == .unacceptableProtocolVersion)
        #expect(actions.close)
    }

    @Test("[MQTT-4.12.0-1] CONNECT with an Authentication Method gets 0x8C")
    func authenticationMethod() throws {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.authenticationMethod = "SCRAM-SHA-1"
        let actions = client.connect("a", properties: properties)
        #expect(try #require(connack(actions)).reasonCode == .badAuthenticationMethod)
        #expect(actions.close)
    }

    @Test("AUTH after CONNECT is a protocol error")
    func authPacket() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.send(.auth(.init(reasonCode: .reAuthenticate)))
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("[MQTT-3.2.2-12] [MQTT-3.2.2-13] v5 will QoS above maximum or retained will without retain support refused")
    func willCapabilities() throws {
        var configuration = BrokerConfiguration()
        configuration.maximumQoS = .atMostOnce
        configuration.retainAvailable = false
        let broker = Broker(configuration: configuration, now: at(0))
        var first = TestClient(broker)
        let qosRefused = first.connect("a", will: .init(topic: "w", payload: payload("x"), qos: .atLeastOnce))
        #expect(try #require(connack(qosRefused)).reasonCode == .qosNotSupported)
        var second = TestClient(broker)
        let retainRefused = second.connect("b", will: .init(topic: "w", payload: payload("x"), retain: true))
        #expect(try #require(connack(retainRefused)).reasonCode == .retainNotSupported)
    }

    @Test("[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP")
    func ping() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        #expect(client.send(.pingreq).packets(.v5) == [.pingresp])
    }

    @Test("connect timeout closes a connection that sent nothing")
    func connectTimeout() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        #expect(!client.machine.tick(now: at(9)).close)
        #expect(client.machine.tick(now: at(10)).close)
    }

    @Test("[MQTT-3.1.2-24] keep alive: silence beyond 1.5 x keep alive closes with v5 DISCONNECT 0x8D")
    func keepAliveTimeout() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a", keepAlive: 10)
        client.send(.pingreq, at: at(5))
        #expect(!client.machine.tick(now: at(20)).close)
        let actions = client.machine.tick(now: at(20, milliseconds: 1))
        #expect(actions.close)
        #expect(disconnectReason(actions) == .keepAliveTimeout)
    }

    @Test("[MQTT-3.1.2-24] the tick deadline: connect timeout, then 1.5 x keep alive after the last packet")
    func tickDeadline() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        #expect(client.machine.tickDeadline == at(10))
        client.connect("a", keepAlive: 10, at: at(2))
        #expect(client.machine.tickDeadline == at(17))
        client.send(.pingreq, at: at(5))
        #expect(client.machine.tickDeadline == at(20))
        #expect(client.machine.tick(now: at(21)).close)
        #expect(client.machine.tickDeadline == nil)

        var unlimited = TestClient(broker)
        unlimited.connect("b", keepAlive: 0)
        #expect(unlimited.machine.tickDeadline == nil)
    }

    @Test("[MQTT-3.1.2-21] Server Keep Alive overrides the client's keep alive")
    func serverKeepAlive() {
        var configuration = BrokerConfiguration()
        configuration.serverKeepAlive = 2
        let broker = Broker(configuration: configuration, now: at(0))
        var client = TestClient(broker)
        client.connect("a", keepAlive: 600)
        #expect(client.machine.tick(now: at(4)).close)
    }

    @Test("server shutdown sends v5 DISCONNECT 0x8B and closes")
    func shutdown() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        let actions = client.machine.shutdown(now: at(1))
        #expect(disconnectReason(actions) == .serverShuttingDown)
        #expect(actions.close)
        broker.shutdown(now: at(1))
    }

    @Test("statistics count connections")
    func connectionStatistics() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a")
        #expect(broker.statistics.connectionsCurrent == 1)
        #expect(broker.statistics.sessions == 1)
        _ = client.machine.connectionClosed(now: at(1))
        #expect(broker.statistics.connectionsCurrent == 0)
        #expect(broker.statistics.connectionsTotal == 1)
        #expect(broker.statistics.sessions == 0)
    }
}
