import Foundation

/// What `GET /api/v1/config` shows: the options `petrel serve` runs with, as given or defaulted. Files are named,
/// never read into it (a password file's hashes stay out), and every value that is a secret (a callout header's
/// value, a password in a URL) is "***".
struct EffectiveConfiguration: Encodable, Sendable {
    static let mask = "***"

    struct Listeners: Encodable, Sendable {
        var listen: [String]
        var host: [String]
        var port: Int?
        var tls_cert: String?
        var tls_key: String?
        var tls_ca: String?
        var tls_require_client_cert: Bool
        var tls_use_identity_as_username: Bool
        var tls_min_version: String
        var tls_ciphers: String?
    }

    struct Limits: Encodable, Sendable {
        var max_packet_size: UInt32
        var receive_maximum: UInt16
        var max_inflight: Int
        var max_queued_messages: Int
        var max_queued_bytes: Int
        var queue_qos0: Bool
        var connect_timeout: Int64
        var server_keep_alive: UInt16?
        var max_keep_alive: UInt16?
        var max_session_expiry: UInt32?
        var max_topic_levels: Int
        var max_topic_length: Int
        var max_subscriptions: Int
        var max_publish_rate: Int
        var max_queued_memory: Int
        var max_connections: Int
        var max_connections_per_address: Int
        var topic_alias_maximum: UInt16
    }

    struct Authentication: Encodable, Sendable {
        var password_file: String?
        var allow_anonymous: Bool
        var jwt_key: String?
        var jwt_jwks: String?
        var jwt_audience: String?
        var http_auth_url: String?
        var http_acl_url: String?
        var http_header: [String]
        var http_timeout: Double
        var http_cache_seconds: Double
        var http_cache_size: Int
        var max_login_delay: Double
        var acl_file: String?
    }

    struct Storage: Encodable, Sendable {
        var storage: String
        var data_dir: String
        var durability: String
        var commit_interval_ms: Int
        var commit_batch: Int
        var max_retained_messages: Int
        var max_retained_bytes: Int
        var max_database_size: Int?
    }

    struct Operations: Encodable, Sendable {
        var http: String?
        var admin_token_file: String?
        var log_level_at_start: String
        var log_format: String
        var sys_interval: Double
        var hibernate_after: Double
        var threads: Int?
    }

    var version: String
    var listeners: Listeners
    var limits: Limits
    var shared_subscription_strategy: String
    var response_information: String?
    var server_reference: String?
    var redirect: String
    var authentication: Authentication
    var storage: Storage
    var operations: Operations

    /// `Name: value` with the value masked: callout headers carry credentials (`Authorization: Bearer ...`).
    static func maskedHeader(_ header: String) -> String {
        guard let colon = header.firstIndex(of: ":") else { return mask }
        return header[..<colon].trimmingCharacters(in: .whitespaces) + ": " + mask
    }

    /// The URL with any user name and password in it masked.
    static func maskedURL(_ text: String?) -> String? {
        guard let text else { return nil }
        guard var components = URLComponents(string: text) else { return mask }
        if components.user != nil || components.password != nil {
            components.user = mask
            components.password = nil
        }
        return components.string ?? mask
    }
}

extension Serve {
    /// The options as running, for the admin API; `anonymous` is the decision made from them at start.
    func effectiveConfiguration(anonymous: Bool) -> EffectiveConfiguration {
        EffectiveConfiguration(
            version: Petrel.version,
            listeners: .init(
                listen: listeners.listen,
                host: listeners.host,
                port: listeners.port,
                tls_cert: listeners.tlsCert,
                tls_key: listeners.tlsKey,
                tls_ca: listeners.tlsCa,
                tls_require_client_cert: listeners.tlsRequireClientCert,
                tls_use_identity_as_username: listeners.tlsUseIdentityAsUsername,
                tls_min_version: listeners.tlsMinVersion.rawValue,
                tls_ciphers: listeners.tlsCiphers
            ),
            limits: .init(
                max_packet_size: maxPacketSize,
                receive_maximum: receiveMaximum,
                max_inflight: maxInflight,
                max_queued_messages: maxQueuedMessages,
                max_queued_bytes: maxQueuedBytes,
                queue_qos0: queueQos0,
                connect_timeout: connectTimeout,
                server_keep_alive: serverKeepAlive,
                max_keep_alive: maxKeepAlive,
                max_session_expiry: maxSessionExpiry,
                max_topic_levels: maxTopicLevels,
                max_topic_length: maxTopicLength,
                max_subscriptions: maxSubscriptions,
                max_publish_rate: maxPublishRate,
                max_queued_memory: maxQueuedMemory,
                max_connections: maxConnections,
                max_connections_per_address: maxConnectionsPerAddress,
                topic_alias_maximum: topicAliasMaximum
            ),
            shared_subscription_strategy: sharedSubscriptionStrategy.rawValue,
            response_information: responseInformation,
            server_reference: serverReference,
            redirect: redirect.rawValue,
            authentication: .init(
                password_file: passwordFile,
                allow_anonymous: anonymous,
                jwt_key: jwtKey,
                jwt_jwks: jwtJwks,
                jwt_audience: jwtAudience,
                http_auth_url: EffectiveConfiguration.maskedURL(http.httpAuthUrl),
                http_acl_url: EffectiveConfiguration.maskedURL(http.httpAclUrl),
                http_header: http.httpHeader.map(EffectiveConfiguration.maskedHeader),
                http_timeout: http.httpTimeout,
                http_cache_seconds: http.httpCacheSeconds,
                http_cache_size: http.httpCacheSize,
                max_login_delay: maxLoginDelay,
                acl_file: aclFile
            ),
            storage: .init(
                storage: storage.storage.rawValue,
                data_dir: storage.dataDir,
                durability: storage.durability.rawValue,
                commit_interval_ms: storage.commitIntervalMs,
                commit_batch: storage.commitBatch,
                max_retained_messages: storage.maxRetainedMessages,
                max_retained_bytes: storage.maxRetainedBytes,
                max_database_size: storage.maxDatabaseSize
            ),
            operations: .init(
                http: admin.address,
                admin_token_file: admin.tokenFile,
                log_level_at_start: logLevel.rawValue,
                log_format: logFormat.rawValue,
                sys_interval: sysInterval,
                hibernate_after: hibernateAfter,
                threads: threads
            )
        )
    }
}
