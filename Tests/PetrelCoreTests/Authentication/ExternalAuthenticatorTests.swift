import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore

/// Stands in for an HTTP or token backend: the tests hand its verdicts to the machine themselves.
private struct UnusedExternalAuthenticator: ExternalAuthenticator {
    func decide(_ credentials: ConnectCredentials) async -> AuthenticationVerdict {
        AuthenticationVerdict(decision: .refuse(.notAuthorized))
    }
}

/// An authenticator whose verdict takes I/O: the engine asks and waits; the server answers.
@Suite("External authenticators")
struct ExternalAuthenticatorTests {
    static func broker() -> Broker {
        var configuration = BrokerConfiguration()
        configuration.externalAuthenticator = UnusedExternalAuthenticator()
        return Broker(configuration: configuration, now: at(0))
    }

    @Test("A CONNECT asks for a verdict and waits; accepted with the token's rules, those rules hold")
    func acceptedWithRules() {
        let broker = Self.broker()
        var client = TestClient(broker)
        let asked = client.connect("device-7", username: "alice")
        #expect(asked.outbound.isEmpty)
        #expect(asked.authenticationRequest?.username == "alice")
        #expect(asked.authenticationRequest?.clientIdentifier == "device-7")
        #expect(client.machine.isAwaitingDecision)
        let verdict = AuthenticationVerdict(
            decision: .accept(user: "alice"),
            rules: ClientRules(publish: ["devices/device-7/#"], subscribe: ["commands/device-7"])
        )
        let answered = client.machine.externalAuthenticationDecided(verdict, now: at(1))
        #expect(connack(answered)?.reasonCode == .success)
        #expect(client.machine.authenticatedUser == "alice")
        #expect(!client.machine.isAwaitingDecision)
        func ack(_ actions: ConnectionActions) -> ReasonCode? {
            for case .puback(let ack) in actions.nonPublishPackets { return ack.reasonCode }
            return nil
        }
        #expect(ack(client.publish("devices/device-7/t", "x", qos: .atLeastOnce, packetIdentifier: 1)) == .noMatchingSubscribers)
        #expect(ack(client.publish("devices/device-8/t", "x", qos: .atLeastOnce, packetIdentifier: 2)) == .notAuthorized)
        let suback = client.subscribe("commands/#", qos: .atLeastOnce)
        #expect(suback.nonPublishPackets.contains { if case .suback(let ack) = $0 { ack.reasonCodes == [.notAuthorized] } else { false } })
    }

    @Test("A refusal is a CONNACK 0x86 / 0x87, counted and answered late like any failed login")
    func refused() {
        let broker = Self.broker()
        var client = TestClient(broker, version: .v3_1_1)
        _ = client.connect("c", username: "mallory")
        let answered = client.machine.externalAuthenticationDecided(
            AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword), reason: "token expired"),
            now: at(1)
        )
        #expect(connack(answered)?.reasonCode == .badUserNameOrPassword)
        #expect(answered.close)
        #expect(answered.answerDelay != nil)
        #expect(answered.logs.contains { $0.message.contains("token expired") })
        #expect(broker.statistics.authenticationFailures == 1)
    }

    @Test("No verdict within the connect timeout: closed, and a late verdict changes nothing")
    func timeout() {
        let broker = Self.broker()
        var client = TestClient(broker)
        _ = client.connect("c", username: "slow")
        #expect(!client.machine.tick(now: at(5)).close)
        #expect(client.machine.tick(now: at(11)).close)
        let late = client.machine.externalAuthenticationDecided(AuthenticationVerdict(decision: .accept(user: "slow")), now: at(12))
        #expect(late.outbound.isEmpty)
        #expect(!client.machine.isConnected)
    }

    @Test("MQTT 5 enhanced authentication still goes to the authenticator, not the external one")
    func enhancedAuthenticationUntouched() {
        let broker = Self.broker()
        var client = TestClient(broker)
        var properties = MQTTProperties()
        properties.authenticationMethod = "SCRAM-SHA-256"
        let actions = client.connect("c", properties: properties)
        #expect(actions.authenticationRequest == nil)
        #expect(connack(actions)?.reasonCode == .badAuthenticationMethod)
    }
}
