import MQTTWire
import Testing

@testable import PetrelCore

/// `maximumKeepAlive`, as Mosquitto's `max_keepalive`.
@Suite("A maximum keep alive")
struct MaximumKeepAliveTests {
    static func broker(maximum: UInt16 = 60) -> Broker {
        var configuration = BrokerConfiguration()
        configuration.maximumKeepAlive = maximum
        return Broker(configuration: configuration, now: at(0))
    }

    @Test("MQTT 5: more than the maximum, or 0, gets the maximum as Server Keep Alive [MQTT-3.1.2-21]", arguments: [UInt16(0), 61, 65535])
    func v5Lowered(asked: UInt16) {
        var client = TestClient(Self.broker())
        let ack = connack(client.connect("c", keepAlive: asked))
        #expect(ack?.reasonCode == .success)
        #expect(ack?.properties.serverKeepAlive == 60)
        // The broker now holds the client to 60 s: silent for 1.5 times that, it is closed [MQTT-3.1.2-24].
        #expect(!client.machine.tick(now: at(89)).close)
        #expect(client.machine.tick(now: at(91)).close)
    }

    @Test("MQTT 5: a keep alive within the maximum is kept, with no Server Keep Alive")
    func v5Kept() {
        var client = TestClient(Self.broker())
        let ack = connack(client.connect("c", keepAlive: 30))
        #expect(ack?.reasonCode == .success)
        #expect(ack?.properties.serverKeepAlive == nil)
        #expect(client.machine.tick(now: at(46)).close)
    }

    @Test("MQTT 3.1.1: more than the maximum, or 0, is refused with return code 2", arguments: [UInt16(0), 61])
    func v311Refused(asked: UInt16) {
        var client = TestClient(Self.broker(), version: .v3_1_1)
        let actions = client.connect("c", keepAlive: asked)
        let ack = connack(actions)
        #expect(ack?.reasonCode == .clientIdentifierNotValid)
        #expect(ack.map { LegacyConnectReturnCode($0.reasonCode) } == .identifierRejected)
        #expect(actions.close)
    }

    @Test("MQTT 3.1.1: within the maximum is accepted")
    func v311Accepted() {
        var client = TestClient(Self.broker(), version: .v3_1_1)
        #expect(connack(client.connect("c", keepAlive: 60))?.reasonCode == .success)
    }
}
