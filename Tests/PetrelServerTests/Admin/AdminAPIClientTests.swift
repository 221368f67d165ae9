import MQTTWire
import NIOCore
import Testing

/// `/api/v1/clients`: listing, reading and disconnecting connected clients over real MQTT connections.
@Suite("Admin API clients")
struct AdminAPIClientTests {
    @Test("a connected TestClient is listed with its connection; paging and the filter apply")
    func list() async throws {
        try await withAdminAPI { api in
            let first = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "alpha-1", keepAlive: 30)
            let second = try await TestClient.connected(port: api.mqttPort, version: .v3_1_1, id: "beta-2")
            let answer = try await api.get("/api/v1/clients")
            #expect(answer.status == 200)
            #expect(answer.json["total"] as? Int == 2)
            let items = answer.items
            #expect(items.map { $0["client_id"] as? String } == ["alpha-1", "beta-2"])
            #expect(items.first?["protocol_version"] as? String == "5")
            #expect(items.first?["keep_alive"] as? Int == 30)
            #expect(items.first?["listener"] as? String == "mqtt")
            #expect((items.first?["address"] as? String)?.hasPrefix("127.0.0.1:") == true)
            #expect(items.last?["protocol_version"] as? String == "3.1.1")

            let page = try await api.get("/api/v1/clients?limit=1&offset=1")
            #expect(page.items.map { $0["client_id"] as? String } == ["beta-2"])
            #expect(page.json["total"] as? Int == 2)
            let filtered = try await api.get("/api/v1/clients?filter=alpha")
            #expect(filtered.items.map { $0["client_id"] as? String } == ["alpha-1"])
            #expect(filtered.json["total"] as? Int == 1)
            let byAddress = try await api.get("/api/v1/clients?filter=127.0.0.1")
            #expect(byAddress.json["total"] as? Int == 2)
            await first.close()
            await second.close()
        }
    }

    @Test("one client: connection, session expiry, subscriptions with their options; 404 for an unknown one")
    func detail() async throws {
        try await withAdminAPI { api in
            var properties = MQTTProperties()
            properties.sessionExpiryInterval = 120
            let client = try await TestClient.connected(
                port: api.mqttPort, version: .v5, id: "detail/1", cleanStart: false, keepAlive: 15,
                properties: properties
            )
            try await client.send(
                .subscribe(
                    .init(
                        packetIdentifier: 1,
                        subscriptions: [
                            .init(
                                filter: "d/+",
                                options: .init(qos: .atLeastOnce, noLocal: true, retainHandling: .doNotSend))
                        ]
                    )
                )
            )
            _ = try await client.next()
            let answer = try await api.get("/api/v1/clients/detail%2F1")
            #expect(answer.status == 200)
            let json = answer.json
            #expect(json["client_id"] as? String == "detail/1")
            #expect(json["connected"] as? Bool == true)
            #expect(json["session_expiry_interval"] as? Int == 120)
            let connection = json["connection"] as? [String: Any]
            #expect(connection?["keep_alive"] as? Int == 15)
            #expect(connection?["clean_start"] as? Bool == false)
            #expect(connection?["listener"] as? String == "mqtt")
            let subscription = (json["subscriptions"] as? [[String: Any]])?.first
            #expect(subscription?["filter"] as? String == "d/+")
            let options = subscription?["options"] as? [String: Any]
            #expect(options?["qos"] as? Int == 1)
            #expect(options?["no_local"] as? Bool == true)
            #expect(options?["retain_handling"] as? Int == 2)
            #expect(json["inflight_messages"] as? Int == 0)
            #expect(json["queued_messages"] as? Int == 0)

            let unknown = try await api.get("/api/v1/clients/nobody")
            #expect(unknown.status == 404)
            #expect(unknown.json["error"] != nil)
            await client.close()
        }
    }

    @Test("DELETE disconnects an MQTT 5 client with DISCONNECT 0x98, closes it and publishes its will")
    func disconnect() async throws {
        try await withAdminAPI { api in
            let watcher = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "watcher")
            try await watcher.subscribe("wills/#", qos: .atMostOnce)
            let will = MQTTPacket.Will(topic: "wills/kicked", payload: ByteBuffer(string: "bye"))
            let client = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "kicked", will: will)
            let answer = try await api.request(.DELETE, "/api/v1/clients/kicked")
            #expect(answer.status == 204)
            guard case .disconnect(let disconnect) = try await client.next() else {
                Issue.record("expected DISCONNECT")
                return
            }
            #expect(disconnect.reasonCode == .administrativeAction)
            #expect(try await client.next() == nil)
            guard case .publish(let published) = try await watcher.next() else {
                Issue.record("expected the will")
                return
            }
            #expect(published.topic == "wills/kicked")
            #expect(try await api.eventually { try await api.get("/api/v1/clients/kicked").status == 404 })
            #expect(try await api.request(.DELETE, "/api/v1/clients/kicked").status == 404)
            await watcher.close()
        }
    }

    @Test("an MQTT 3.1.1 client is closed without a DISCONNECT")
    func disconnectV311() async throws {
        try await withAdminAPI { api in
            let client = try await TestClient.connected(port: api.mqttPort, version: .v3_1_1, id: "old")
            #expect(try await api.request(.DELETE, "/api/v1/clients/old").status == 204)
            #expect(try await client.next() == nil)
        }
    }

    @Test("bad paging names the field: non-integer limit, limit 0 or above 1000, negative offset")
    func badPaging() async throws {
        try await withAdminAPI { api in
            for (query, field) in [
                ("limit=ten", "limit"), ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=1.5", "limit"),
                ("offset=-1", "offset"), ("offset=x", "offset"),
            ] {
                let answer = try await api.get("/api/v1/clients?\(query)")
                #expect(answer.status == 400, "\(query)")
                #expect(answer.errorField == field, "\(query)")
            }
            let huge = try await api.get("/api/v1/clients?offset=99999999999999999999999")
            #expect(huge.status == 200)
            #expect(huge.items.isEmpty)
        }
    }
}
