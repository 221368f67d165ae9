import Foundation
import MQTTWire
import NIOCore
import Testing

/// `/api/v1/sessions`: sessions connected or not, and removing them.
@Suite("Admin API sessions")
struct AdminAPISessionTests {
    private func persistent(_ seconds: UInt32) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = seconds
        return properties
    }

    @Test("an offline persistent session is listed as such, with its queue, and connected= selects")
    func listOffline() async throws {
        try await withAdminAPI { api in
            let sleeper = try await TestClient.connected(
                port: api.mqttPort, version: .v5, id: "sleeper", cleanStart: false, properties: persistent(600))
            try await sleeper.subscribe("q/#", qos: .atLeastOnce)
            try await sleeper.send(.disconnect(.init()))
            await sleeper.close()
            let online = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "online")
            #expect(
                try await api.eventually {
                    try await api.get("/api/v1/sessions?connected=false").json["total"] as? Int == 1
                })
            try await online.send(
                .publish(
                    .init(topic: "q/1", payload: ByteBuffer(string: "wait"), qos: .atLeastOnce, packetIdentifier: 1)))
            _ = try await online.next()

            let all = try await api.get("/api/v1/sessions")
            #expect(all.items.map { $0["client_id"] as? String } == ["online", "sleeper"])
            let offline = try await api.get("/api/v1/sessions?connected=false")
            let session = try #require(offline.items.first)
            #expect(session["client_id"] as? String == "sleeper")
            #expect(session["connected"] as? Bool == false)
            #expect(session["connection"] is NSNull)
            #expect(session["queued_messages"] as? Int == 1)
            #expect((session["expires_in_seconds"] as? Int ?? 0) > 590)
            #expect(
                try await api.get("/api/v1/sessions?connected=true").items.map { $0["client_id"] as? String } == [
                    "online"
                ])
            #expect(try await api.get("/api/v1/sessions/sleeper").json["queued_messages"] as? Int == 1)
            let bad = try await api.get("/api/v1/sessions?connected=maybe")
            #expect(bad.status == 400)
            #expect(bad.errorField == "connected")
            await online.close()
        }
    }

    @Test("deleting an offline session drops its queued messages: the client comes back to a new session")
    func deleteOffline() async throws {
        try await withAdminAPI { api in
            let sleeper = try await TestClient.connected(
                port: api.mqttPort, version: .v5, id: "gone", cleanStart: false, properties: persistent(600))
            try await sleeper.subscribe("q/#", qos: .atLeastOnce)
            try await sleeper.send(.disconnect(.init()))
            await sleeper.close()
            let publisher = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "pub")
            #expect(
                try await api.eventually {
                    try await api.get("/api/v1/sessions/gone").json["connected"] as? Bool == false
                })
            try await publisher.send(
                .publish(.init(topic: "q/1", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetIdentifier: 1)))
            _ = try await publisher.next()
            #expect(api.broker.totals().queuedMessages == 1)

            #expect(try await api.request(.DELETE, "/api/v1/sessions/gone").status == 204)
            #expect(try await api.get("/api/v1/sessions/gone").status == 404)
            #expect(api.broker.totals().queuedMessages == 0)
            #expect(try await api.request(.DELETE, "/api/v1/sessions/gone").status == 404)

            let back = try await TestClient.connect(port: api.mqttPort, version: .v5)
            try await back.send(
                .connect(
                    .init(
                        protocolVersion: .v5, clientIdentifier: "gone", cleanStart: false, properties: persistent(600)))
            )
            guard case .connack(let connack) = try await back.next() else {
                Issue.record("expected CONNACK")
                return
            }
            #expect(connack.sessionPresent == false)
            // The queued message went with the session.
            await #expect(throws: TestTimeout.self) { _ = try await back.next(timeout: .milliseconds(300)) }
            await back.close()
            await publisher.close()
        }
    }

    @Test("deleting the session of a connected client disconnects it with 0x98 first")
    func deleteConnected() async throws {
        try await withAdminAPI { api in
            let client = try await TestClient.connected(
                port: api.mqttPort, version: .v5, id: "busy", cleanStart: false, properties: persistent(600))
            try await client.subscribe("b/#", qos: .atMostOnce)
            #expect(try await api.request(.DELETE, "/api/v1/sessions/busy").status == 204)
            guard case .disconnect(let disconnect) = try await client.next() else {
                Issue.record("expected DISCONNECT")
                return
            }
            #expect(disconnect.reasonCode == .administrativeAction)
            #expect(try await client.next() == nil)
            #expect(try await api.get("/api/v1/sessions/busy").status == 404)
            #expect(try await api.get("/api/v1/subscriptions").json["total"] as? Int == 0)
        }
    }
}
