import MQTTWire
import PetrelServer
import Testing

/// An operator's disconnect reaches a connection that hibernates (its channel given up while idle).
@Suite("Admin API and hibernating connections")
struct AdminAPIHibernationTests {
    @Test("a hibernating MQTT 5 client is woken, gets DISCONNECT 0x98 and is closed")
    func disconnectHibernating() async throws {
        try await withAdminAPI(configure: { $0.hibernateAfter = .milliseconds(100) }) { api in
            let client = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "sleepy")
            guard try await api.eventually({ api.server.hibernatingConnectionCount == 1 }) else {
                // Hibernation is Linux only; elsewhere there is nothing to check.
                await client.close()
                return
            }
            #expect(try await api.request(.DELETE, "/api/v1/clients/sleepy").status == 204)
            guard case .disconnect(let disconnect) = try await client.next() else {
                Issue.record("expected DISCONNECT")
                return
            }
            #expect(disconnect.reasonCode == .administrativeAction)
            #expect(try await client.next() == nil)
        }
    }
}
