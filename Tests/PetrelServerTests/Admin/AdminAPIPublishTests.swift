import MQTTWire
import NIOCore
import Testing

/// `POST /api/v1/publish`: an operator's message, routed like a client's.
@Suite("Admin API publish")
struct AdminAPIPublishTests {
    @Test("a QoS 1 message reaches a subscribed client at QoS 1 and, retained, is kept")
    func reachesSubscriber() async throws {
        try await withAdminAPI { api in
            let subscriber = try await TestClient.connected(port: api.mqttPort, version: .v5, id: "listener")
            try await subscriber.subscribe("ops/#", qos: .exactlyOnce)
            let answer = try await api.request(
                .POST, "/api/v1/publish",
                body: #"{"topic":"ops/notice","payload":"maintenance at 10","qos":1,"retain":true}"#)
            #expect(answer.status == 200)
            #expect(answer.json["qos"] as? Int == 1)
            #expect(answer.json["payload_bytes"] as? Int == 17)
            guard case .publish(let publish) = try await subscriber.next() else {
                Issue.record("expected PUBLISH")
                return
            }
            #expect(publish.topic == "ops/notice")
            #expect(String(buffer: publish.payload) == "maintenance at 10")
            #expect(publish.qos == .atLeastOnce)
            // Delivered to an existing subscription: RETAIN 0 [MQTT-3.3.1-9].
            #expect(!publish.retain)
            if let identifier = publish.packetIdentifier {
                try await subscriber.send(.puback(.init(packetIdentifier: identifier)))
            }
            #expect(try await api.get("/api/v1/retained/ops/notice").json["payload"] as? String == "maintenance at 10")
            await subscriber.close()
        }
    }

    @Test("payload_base64 carries bytes; a QoS 0 subscriber gets QoS 0")
    func base64() async throws {
        try await withAdminAPI { api in
            let subscriber = try await TestClient.connected(port: api.mqttPort, version: .v3_1_1, id: "low")
            try await subscriber.subscribe("bin", qos: .atMostOnce)
            let answer = try await api.request(
                .POST, "/api/v1/publish", body: #"{"topic":"bin","payload_base64":"/wD+","qos":2}"#)
            #expect(answer.status == 200)
            guard case .publish(let publish) = try await subscriber.next() else {
                Issue.record("expected PUBLISH")
                return
            }
            #expect(Array(publish.payload.readableBytesView) == [0xFF, 0x00, 0xFE])
            #expect(publish.qos == .atMostOnce)
            await subscriber.close()
        }
    }

    @Test(
        "a bad body gets 400 naming the field",
        arguments: [
            (#"{"topic":"a","qos":3}"#, "qos"),
            (#"{"topic":"a","qos":"1"}"#, "qos"),
            (#"{"topic":"a","qos":1.5}"#, "qos"),
            (#"{"topic":"a/#"}"#, "topic"),
            (#"{"topic":"a/+/b"}"#, "topic"),
            (#"{"topic":""}"#, "topic"),
            (#"{"payload":"x"}"#, "topic"),
            (#"{"topic":7}"#, "topic"),
            (#"{"topic":"a","retain":"yes"}"#, "retain"),
            (#"{"topic":"a","payload":"x","payload_base64":"eA=="}"#, "payload_base64"),
            (#"{"topic":"a","payload_base64":"***"}"#, "payload_base64"),
            (#"{"topic":"a","colour":"red"}"#, "colour"),
            (#"{"topic":"a","payload":null}"#, "payload"),
            (#"{"topic":"a""#, "body"),
            (#"[1,2]"#, "body"),
            (#""#, "body"),
            (String(repeating: "[", count: 100_000), "body"),
        ]
    )
    func badBody(body: String, field: String) async throws {
        try await withAdminAPI { api in
            let answer = try await api.request(.POST, "/api/v1/publish", body: body)
            #expect(answer.status == 400)
            #expect(answer.errorField == field)
        }
    }

    @Test("the topic limits a client is held to apply: --max-topic-levels and --max-topic-length")
    func topicLimits() async throws {
        try await withAdminAPI(configure: {
            $0.broker.maximumTopicLevels = 3
            $0.broker.maximumTopicLength = 20
        }) { api in
            let deep = try await api.request(.POST, "/api/v1/publish", body: #"{"topic":"a/b/c/d"}"#)
            #expect(deep.status == 400 && deep.errorField == "topic")
            let long = try await api.request(.POST, "/api/v1/publish", body: #"{"topic":"abcdefghijklmnopqrstuvwxyz"}"#)
            #expect(long.status == 400 && long.errorField == "topic")
            #expect(try await api.request(.POST, "/api/v1/publish", body: #"{"topic":"a/b/c"}"#).status == 200)
        }
    }

    @Test("a body above 1 MiB is refused with 413")
    func tooLarge() async throws {
        let payload = String(repeating: "x", count: 1 << 20)
        let body = "{\"topic\":\"a\",\"payload\":\"\(payload)\"}"
        try await withAdminAPI { api in
            let answer = try await api.request(.POST, "/api/v1/publish", body: body)
            #expect(answer.status == 413)
        }
    }
}
