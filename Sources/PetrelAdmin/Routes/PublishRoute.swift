import Foundation
import Hummingbird
import PetrelCore

/// `POST /api/v1/publish`: a message from the operator, routed as a client's would be (each receiver's access
/// rules applied, QoS lowered to each subscription's), retained when asked, with the store, as a client's.
struct PublishRoute {
    let api: AdminAPI
    /// The largest body read; a larger one is refused with 413 before it is decoded.
    static let maximumBodySize = 1 << 20

    private struct Published: Encodable {
        var topic: String
        var qos: Int
        var retain: Bool
        var payload_bytes: Int
    }

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.post("publish") { request, _ in
            let body = try await request.collectBody(upTo: Self.maximumBodySize)
            let object = try JSONObjectBody(body, allowed: ["topic", "payload", "payload_base64", "qos", "retain"])
            guard let topic = try object.string("topic") else {
                throw APIError.badRequest("topic is required", field: "topic")
            }
            guard MQTTTopic.isValidTopicName(topic) else {
                throw APIError.badRequest(
                    "topic must be a valid MQTT topic name (no wildcards, no U+0000, 1 to 65535 bytes)", field: "topic")
            }
            // The limits a client's PUBLISH is held to (--max-topic-length, --max-topic-levels).
            let configuration = api.broker.configuration
            if topic.utf8.count > configuration.maximumTopicLength {
                throw APIError.badRequest(
                    "topic is longer than \(configuration.maximumTopicLength) bytes", field: "topic")
            }
            if configuration.maximumTopicLevels > 0, MQTTTopic.levelCount(topic) > configuration.maximumTopicLevels {
                throw APIError.badRequest(
                    "topic has more than \(configuration.maximumTopicLevels) levels", field: "topic")
            }
            let payload: ByteBuffer
            switch (try object.string("payload"), try object.string("payload_base64")) {
            case (let text?, nil):
                payload = ByteBuffer(string: text)
            case (nil, let encoded?):
                guard let data = Data(base64Encoded: encoded) else {
                    throw APIError.badRequest("payload_base64 must be base64", field: "payload_base64")
                }
                payload = ByteBuffer(bytes: data)
            case (nil, nil):
                payload = ByteBuffer()
            case (_?, _?):
                throw APIError.badRequest("give payload or payload_base64, not both", field: "payload_base64")
            }
            let qosValue = try object.integer("qos") ?? 0
            guard (0...2).contains(qosValue), let qos = QoS(rawValue: UInt8(qosValue)) else {
                throw APIError.badRequest("qos must be 0, 1 or 2", field: "qos")
            }
            let retain = try object.bool("retain") ?? false
            let result = api.broker.publishOwnMessage(
                topic: topic,
                payload: payload,
                qos: qos,
                retain: retain,
                durable: true,
                now: api.now
            )
            api.carryOut(result)
            return JSONResponse.make(
                Published(topic: topic, qos: qosValue, retain: retain, payload_bytes: payload.readableBytes))
        }
    }
}
