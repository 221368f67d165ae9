import Foundation
import MQTTWire
import NIOCore
import Testing

/// `/api/v1/retained`: retained messages published over MQTT, listed, read and deleted.
@Suite("Admin API retained messages")
struct AdminAPIRetainedTests {
    @Test("a retained message published via MQTT is listed, read (topic with '/' in the path) and deleted")
    func lifecycle() async throws {
        try await withAdminAPI { api in
            let publisher = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "pub")
            for (topic, body) in [("home/kitchen/temp", "21"), ("home/hall/temp", "19"), ("office/temp", "22")] {
                try await publisher.send(
                    .publish(
                        .init(
                            topic: topic, payload: ByteBuffer(string: body), qos: .atLeastOnce, retain: true,
                            packetIdentifier: 1)))
                _ = try await publisher.next()
            }
            let all = try await api.get("/api/v1/retained?filter=%23")
            #expect(all.json["total"] as? Int == 3)
            let filtered = try await api.get("/api/v1/retained?filter=home/+/temp")
            #expect(filtered.items.map { $0["topic"] as? String } == ["home/hall/temp", "home/kitchen/temp"])

            let one = try await api.get("/api/v1/retained/home/kitchen/temp")
            #expect(one.status == 200)
            #expect(one.json["payload"] as? String == "21")
            #expect(one.json["payload_base64"] as? String == "MjE=")
            #expect(one.json["qos"] as? Int == 1)
            #expect(try await api.get("/api/v1/retained/home%2Fkitchen%2Ftemp").json["payload"] as? String == "21")

            #expect(try await api.request(.DELETE, "/api/v1/retained/home/kitchen/temp").status == 204)
            #expect(try await api.get("/api/v1/retained/home/kitchen/temp").status == 404)
            #expect(try await api.request(.DELETE, "/api/v1/retained/home/kitchen/temp").status == 404)
            #expect(api.broker.statistics.retainedMessages == 2)
            // A new subscriber no longer receives it.
            let late = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "late")
            try await late.subscribe("home/kitchen/temp", qos: .atMostOnce)
            await #expect(throws: TestTimeout.self) { _ = try await late.next(timeout: .milliseconds(300)) }
            await late.close()
            await publisher.close()
        }
    }

    @Test("a binary payload reads as base64 with payload null")
    func binary() async throws {
        try await withAdminAPI { api in
            let publisher = try await TestClient.connected(port: api.mqttPort, version: .v3_1_1, id: "bin")
            try await publisher.send(
                .publish(.init(topic: "bin", payload: ByteBuffer(bytes: [0xFF, 0x00, 0xFE]), retain: true)))
            #expect(try await api.eventually { try await api.get("/api/v1/retained/bin").status == 200 })
            let answer = try await api.get("/api/v1/retained/bin")
            #expect(answer.json["payload"] is NSNull)
            #expect(answer.json["payload_base64"] as? String == "/wD+")
            #expect(answer.json["payload_bytes"] as? Int == 3)
            await publisher.close()
        }
    }

    @Test("an invalid filter or topic gets 400 naming it")
    func invalid() async throws {
        try await withAdminAPI { api in
            for filter in ["a/%23/b", "a%2B", "%24share/g/t", ""] {
                let answer = try await api.get("/api/v1/retained?filter=\(filter)")
                #expect(answer.status == 400, "\(filter)")
                #expect(answer.errorField == "filter", "\(filter)")
            }
            let wildcard = try await api.get("/api/v1/retained/a/%2B/b")
            #expect(wildcard.status == 400)
            #expect(wildcard.errorField == "topic")
            // A broken percent-encoding ("a%zz") is checked by the interop test: AsyncHTTPClient escapes it.
        }
    }
}
