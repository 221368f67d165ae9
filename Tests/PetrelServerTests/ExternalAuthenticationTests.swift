import MQTTWire
import NIOCore
import PetrelCore
import PetrelServer
import Testing

/// Takes its time, as an HTTP call would, and lets in only "alice".
private struct SlowAuthenticator: ExternalAuthenticator {
    func decide(_ credentials: ConnectCredentials) async -> AuthenticationVerdict {
        try? await Task.sleep(for: .milliseconds(200))
        guard credentials.username == "alice" else {
            return AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword))
        }
        return AuthenticationVerdict(decision: .accept(user: "alice"))
    }
}

@Suite("An external authenticator over TCP")
struct ExternalAuthenticationTests {
    static func configure(_ configuration: inout ServerConfiguration) {
        configuration.broker.externalAuthenticator = SlowAuthenticator()
        configuration.broker.loginThrottle = nil
    }

    @Test("Packets sent right after the CONNECT wait for the verdict and are then handled in order")
    func pipelinedPackets() async throws {
        try await withTestBroker(configure: Self.configure) { port in
            let client = try await TestClient.connect(port: port, version: .v5)
            try await client.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "c", username: "alice")))
            try await client.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "t", qos: .atMostOnce)])))
            try await client.send(.publish(.init(topic: "t", payload: ByteBuffer(string: "hi"))))
            guard case .connack(let ack) = try await client.next() else {
                Issue.record("expected CONNACK first")
                return
            }
            #expect(ack.reasonCode == .success)
            guard case .suback = try await client.next() else {
                Issue.record("expected SUBACK second")
                return
            }
            guard case .publish(let publish) = try await client.next() else {
                Issue.record("expected the PUBLISH back")
                return
            }
            #expect(String(buffer: publish.payload) == "hi")
        }
    }

    @Test("A refused client gets its CONNACK and nothing it sent after is handled")
    func refused() async throws {
        try await withTestBroker(configure: Self.configure) { port in
            let client = try await TestClient.connect(port: port, version: .v5)
            try await client.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "m", username: "mallory")))
            try await client.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "t", qos: .atMostOnce)])))
            guard case .connack(let ack) = try await client.next() else {
                Issue.record("expected CONNACK")
                return
            }
            #expect(ack.reasonCode == .badUserNameOrPassword)
            #expect(try await client.next(timeout: .seconds(1)) == nil)
        }
    }
}
