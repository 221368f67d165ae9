import Foundation
import PetrelCore

// The JSON shapes of the admin API (described in OpenAPIDocument.swift; keep both in step). Keys are
// snake_case, as the rest of the operators' surface (metrics, log fields).

struct SubscriptionOptionsBody: Encodable {
    var qos: Int
    var no_local: Bool
    var retain_as_published: Bool
    var retain_handling: Int

    init(_ options: MQTTPacket.SubscriptionOptions) {
        self.qos = Int(options.qos.rawValue)
        self.no_local = options.noLocal
        self.retain_as_published = options.retainAsPublished
        self.retain_handling = Int(options.retainHandling.rawValue)
    }
}

struct SubscriptionBody: Encodable {
    var client_id: String
    var filter: String
    var options: SubscriptionOptionsBody
    var subscription_identifier: UInt32?

    init(_ subscription: SubscriptionSnapshot) {
        self.client_id = subscription.clientIdentifier
        self.filter = subscription.filter
        self.options = SubscriptionOptionsBody(subscription.options)
        self.subscription_identifier = subscription.subscriptionIdentifier
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.client_id, forKey: .client_id)
        try container.encode(self.filter, forKey: .filter)
        try container.encode(self.options, forKey: .options)
        // Always present, null when the SUBSCRIBE had none: one shape for every entry.
        try container.encode(self.subscription_identifier, forKey: .subscription_identifier)
    }

    private enum CodingKeys: String, CodingKey {
        case client_id, filter, options, subscription_identifier
    }
}

/// "3.1", "3.1.1" or "5", as in the metrics' `protocol` label.
func protocolName(_ version: ProtocolVersion) -> String {
    switch version {
    case .v3_1: "3.1"
    case .v3_1_1: "3.1.1"
    case .v5: "5"
    }
}

/// A connected client in a list.
struct ClientSummaryBody: Encodable {
    var client_id: String
    var username: String?
    var address: String
    var listener: String
    var protocol_version: String
    var keep_alive: Int
    var clean_start: Bool
    var subscriptions: Int
    var inflight_messages: Int
    var queued_messages: Int

    init(_ snapshot: SessionSnapshot, _ connection: ConnectionDescription) {
        self.client_id = snapshot.clientIdentifier
        self.username = snapshot.username
        self.address = connection.remoteAddress
        self.listener = connection.listener
        self.protocol_version = protocolName(snapshot.protocolVersion)
        self.keep_alive = Int(connection.keepAlive)
        self.clean_start = connection.cleanStart
        self.subscriptions = snapshot.subscriptions.count
        self.inflight_messages = snapshot.inflightMessages
        self.queued_messages = snapshot.queuedMessages
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.client_id, forKey: .client_id)
        try container.encode(self.username, forKey: .username)
        try container.encode(self.address, forKey: .address)
        try container.encode(self.listener, forKey: .listener)
        try container.encode(self.protocol_version, forKey: .protocol_version)
        try container.encode(self.keep_alive, forKey: .keep_alive)
        try container.encode(self.clean_start, forKey: .clean_start)
        try container.encode(self.subscriptions, forKey: .subscriptions)
        try container.encode(self.inflight_messages, forKey: .inflight_messages)
        try container.encode(self.queued_messages, forKey: .queued_messages)
    }

    private enum CodingKeys: String, CodingKey {
        case client_id, username, address, listener, protocol_version, keep_alive, clean_start, subscriptions
        case inflight_messages, queued_messages
    }
}

/// One session, connected or not, with everything it holds. `connection` is null while no client is connected.
struct SessionBody: Encodable {
    struct Connection: Encodable {
        var address: String
        var listener: String
        var keep_alive: Int
        var clean_start: Bool
    }

    var client_id: String
    var username: String?
    var connected: Bool
    var connection: Connection?
    var protocol_version: String
    /// Null: the session never expires.
    var session_expiry_interval: UInt32?
    var expires_in_seconds: Int64?
    var subscriptions: [SubscriptionBody]
    var inflight_messages: Int
    var inflight_maximum: Int
    var queued_messages: Int
    var queued_bytes: Int
    var has_will: Bool

    init(_ snapshot: SessionSnapshot) {
        self.client_id = snapshot.clientIdentifier
        self.username = snapshot.username
        self.connected = snapshot.isConnected
        self.connection = snapshot.connection.map {
            Connection(
                address: $0.remoteAddress, listener: $0.listener, keep_alive: Int($0.keepAlive),
                clean_start: $0.cleanStart)
        }
        self.protocol_version = protocolName(snapshot.protocolVersion)
        self.session_expiry_interval = snapshot.expiryInterval == .max ? nil : snapshot.expiryInterval
        self.expires_in_seconds = snapshot.expiresInSeconds
        self.subscriptions = snapshot.subscriptions.map(SubscriptionBody.init)
        self.inflight_messages = snapshot.inflightMessages
        self.inflight_maximum = snapshot.inflightLimit
        self.queued_messages = snapshot.queuedMessages
        self.queued_bytes = snapshot.queuedBytes
        self.has_will = snapshot.hasWill
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.client_id, forKey: .client_id)
        try container.encode(self.username, forKey: .username)
        try container.encode(self.connected, forKey: .connected)
        try container.encode(self.connection, forKey: .connection)
        try container.encode(self.protocol_version, forKey: .protocol_version)
        try container.encode(self.session_expiry_interval, forKey: .session_expiry_interval)
        try container.encode(self.expires_in_seconds, forKey: .expires_in_seconds)
        try container.encode(self.subscriptions, forKey: .subscriptions)
        try container.encode(self.inflight_messages, forKey: .inflight_messages)
        try container.encode(self.inflight_maximum, forKey: .inflight_maximum)
        try container.encode(self.queued_messages, forKey: .queued_messages)
        try container.encode(self.queued_bytes, forKey: .queued_bytes)
        try container.encode(self.has_will, forKey: .has_will)
    }

    private enum CodingKeys: String, CodingKey {
        case client_id, username, connected, connection, protocol_version, session_expiry_interval
        case expires_in_seconds, subscriptions, inflight_messages, inflight_maximum, queued_messages, queued_bytes
        case has_will
    }
}

struct TopicBody: Encodable {
    var filter: String
    var subscribers: Int
}

/// A retained message. The payload is given as UTF-8 text when it is valid UTF-8 (`payload`, else null), and
/// always as base64 (`payload_base64`), so that binary payloads survive JSON.
struct RetainedMessageBody: Encodable {
    var topic: String
    var qos: Int
    var payload: String?
    var payload_base64: String
    var payload_bytes: Int
    var content_type: String?

    init(_ message: Message) {
        let bytes = Array(message.payload.readableBytesView)
        self.topic = message.topic
        self.qos = Int(message.qos.rawValue)
        self.payload = String(validating: bytes, as: UTF8.self)
        self.payload_base64 = Data(bytes).base64EncodedString()
        self.payload_bytes = bytes.count
        self.content_type = message.properties.contentType
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.topic, forKey: .topic)
        try container.encode(self.qos, forKey: .qos)
        try container.encode(self.payload, forKey: .payload)
        try container.encode(self.payload_base64, forKey: .payload_base64)
        try container.encode(self.payload_bytes, forKey: .payload_bytes)
        try container.encode(self.content_type, forKey: .content_type)
    }

    private enum CodingKeys: String, CodingKey {
        case topic, qos, payload, payload_base64, payload_bytes, content_type
    }
}
