import MQTTWire
import Testing

/// `/api/v1/subscriptions` and `/api/v1/topics`.
@Suite("Admin API subscriptions and topics")
struct AdminAPISubscriptionTests {
    @Test("subscriptions are listed per session, topics with their subscriber counts; paging and filter apply")
    func listing() async throws {
        try await withAdminAPI { api in
            let one = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "one")
            try await one.subscribe("sensors/+/temp", qos: .atLeastOnce)
            try await one.subscribe("alerts/#", qos: .atMostOnce, packetIdentifier: 2)
            let two = try await TestClient.connected(port: api.mqttPort, version: .v3_1_1, id: "two")
            try await two.subscribe("sensors/+/temp", qos: .exactlyOnce)
            try await two.subscribe("$share/workers/jobs", qos: .atLeastOnce, packetIdentifier: 2)

            let subscriptions = try await api.get("/api/v1/subscriptions")
            #expect(subscriptions.json["total"] as? Int == 4)
            #expect(
                subscriptions.items.map { "\($0["client_id"] as? String ?? "") \($0["filter"] as? String ?? "")" } == [
                    "one alerts/#", "one sensors/+/temp", "two $share/workers/jobs", "two sensors/+/temp",
                ])
            let granted = subscriptions.items.last?["options"] as? [String: Any]
            #expect(granted?["qos"] as? Int == 2)
            #expect(try await api.get("/api/v1/subscriptions?filter=sensors").json["total"] as? Int == 2)
            #expect(try await api.get("/api/v1/subscriptions?limit=1&offset=3").items.count == 1)

            let topics = try await api.get("/api/v1/topics")
            #expect(
                topics.items.map { "\($0["filter"] as? String ?? "")=\($0["subscribers"] as? Int ?? 0)" } == [
                    "$share/workers/jobs=1", "alerts/#=1", "sensors/+/temp=2",
                ])
            #expect(try await api.get("/api/v1/topics?filter=alerts").json["total"] as? Int == 1)
            let bad = try await api.get("/api/v1/topics?limit=-3")
            #expect(bad.status == 400 && bad.errorField == "limit")
            await one.close()
            await two.close()
        }
    }
}
