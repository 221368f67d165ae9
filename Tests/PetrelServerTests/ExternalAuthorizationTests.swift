import MQTTWire
import NIOCore
import PetrelCore
import PetrelServer
import Testing

/// Takes its time, as an HTTP call would, allows topics below `open/`, and caches nothing.
private struct SlowAuthorizer: ExternalAuthorizer {
    func cachedDecision(_ request: AuthorizationRequest, now: NIODeadline) -> Bool? { nil }

    func decide(_ request: AuthorizationRequest) async -> Bool {
        try? await Task.sleep(for: .milliseconds(100))
        return request.topic.hasPrefix("open/")
    }
}

@Suite("An external authorizer over TCP")
struct ExternalAuthorizationTests {
    @Test("Packets behind one that waits for its access check are handled after it, in order")
    func pipelinedPackets() async throws {
        try await withTestBroker(configure: { $0.broker.externalAuthorizer = SlowAuthorizer() }) { port in
            let client = try await TestClient.connect(port: port, version: .v5)
            try await client.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "c")))
            guard case .connack(let connack) = try await client.next() else {
                Issue.record("expected CONNACK")
                return
            }
            #expect(connack.reasonCode == .success)
            let filters = ["open/#", "closed/#"].map { MQTTPacket.TopicSubscription(filter: $0, options: .init(qos: .atLeastOnce)) }
            try await client.send(.subscribe(.init(packetIdentifier: 1, subscriptions: filters)))
            try await client.send(.publish(.init(topic: "closed/x", payload: ByteBuffer(string: "no"), qos: .atLeastOnce, packetIdentifier: 2)))
            try await client.send(.publish(.init(topic: "open/x", payload: ByteBuffer(string: "yes"), qos: .atLeastOnce, packetIdentifier: 3)))
            try await client.send(.pingreq)
            guard case .suback(let suback) = try await client.next() else {
                Issue.record("expected SUBACK first")
                return
            }
            #expect(suback.reasonCodes == [.grantedQoS1, .notAuthorized])
            guard case .puback(let denied) = try await client.next() else {
                Issue.record("expected the PUBACK of the denied PUBLISH")
                return
            }
            #expect(denied.packetIdentifier == 2 && denied.reasonCode == .notAuthorized)
            var rest: [MQTTPacket] = []
            while rest.count < 3, let packet = try await client.next() { rest.append(packet) }
            #expect(rest.contains { if case .puback(let ack) = $0 { ack.packetIdentifier == 3 && ack.reasonCode == .success } else { false } })
            #expect(rest.contains { if case .publish(let publish) = $0 { String(buffer: publish.payload) == "yes" } else { false } })
            guard case .pingresp? = rest.last else {
                Issue.record("expected PINGRESP last, got \(rest)")
                return
            }
        }
    }
}
