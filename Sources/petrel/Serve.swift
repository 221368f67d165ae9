import ArgumentParser
import Foundation
import Logging
import NIOCore
import PetrelAdmin
import PetrelCore
import PetrelServer
import PetrelStorage
import Prometheus
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the broker until SIGINT or SIGTERM."
    )

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A YAML or JSON file of options (keys: the options' names); environment PETREL_<KEY> and flags override it.",
            valueName: "file"
        )
    )
    var config: String?

    @OptionGroup(title: "Listeners") var listeners: ListenerOptions

    @Option(name: .long, help: "Largest MQTT packet accepted, in bytes; larger ones close the connection.")
    var maxPacketSize: UInt32 = BrokerConfiguration().maximumPacketSize

    @Option(name: .long, help: "Unacknowledged QoS 1 and 2 messages a client may send at once (MQTT 5 Receive Maximum).")
    var receiveMaximum: UInt16 = BrokerConfiguration().receiveMaximum

    @Option(name: .long, help: "Unacknowledged QoS 1 and 2 messages sent to one client at once.")
    var maxInflight: Int = BrokerConfiguration().maximumInflightMessages

    @Option(name: .long, help: "Messages queued per session (offline or behind a full window); new ones beyond are dropped.")
    var maxQueuedMessages: Int = BrokerConfiguration().maximumQueuedMessages

    @Option(name: .long, help: "Bytes of payload queued per session; new messages beyond are dropped.")
    var maxQueuedBytes: Int = BrokerConfiguration().maximumQueuedBytes

    @Flag(name: .long, help: "Queue QoS 0 messages for offline persistent sessions too.")
    var queueQos0: Bool = false

    @Option(name: .long, help: "Seconds a new connection has to send CONNECT.")
    var connectTimeout: Int64 = 10

    @Option(name: .long, help: "Keep alive, in seconds, that the broker imposes on MQTT 5 clients (Server Keep Alive).")
    var serverKeepAlive: UInt16?

    @Option(
        name: .long,
        help: """
            Longest keep alive a client may ask for, in seconds (Mosquitto's max_keepalive): MQTT 5 clients asking \
            for more or for 0 get this as Server Keep Alive; MQTT 3.1.1 clients are refused.
            """
    )
    var maxKeepAlive: UInt16?

    @Option(name: .long, help: "Longest session expiry interval granted to MQTT 5 clients, in seconds.")
    var maxSessionExpiry: UInt32?

    @Option(
        name: .long,
        help: "How a shared subscription picks the member for a message: round-robin, random, sticky-publisher, sticky-topic."
    )
    var sharedSubscriptionStrategy: SharedSubscriptionStrategy = .roundRobin

    @Option(
        name: .long,
        help: "Most levels a topic name or filter may have; deeper ones are refused (MQTT 5: 0x97). 0 sets no limit."
    )
    var maxTopicLevels: Int = BrokerConfiguration().maximumTopicLevels

    @Option(name: .long, help: "Most bytes in a topic name or filter (refused like a too deep one).")
    var maxTopicLength: Int = BrokerConfiguration().maximumTopicLength

    @Option(name: .long, help: "Most subscriptions one session may hold (0: no limit); more get 0x97 / 0x80.")
    var maxSubscriptions: Int = 0

    @Option(
        name: .long,
        help: "Most PUBLISH packets per second from one client (0: no limit); a faster one is disconnected (0x96)."
    )
    var maxPublishRate: Int = 0

    @Option(
        name: .long,
        help: "Most bytes queued in all sessions together (0: no limit beyond --max-queued-bytes per session)."
    )
    var maxQueuedMemory: Int = 0

    @Option(name: .long, help: "Most connections open at once (0: no limit); more are closed when accepted.")
    var maxConnections: Int = 0

    @Option(name: .long, help: "Most connections open at once from one client address (0: no limit).")
    var maxConnectionsPerAddress: Int = 0

    @Option(name: .long, help: "Topic aliases an MQTT 5 client may set (Topic Alias Maximum); 0 refuses them.")
    var topicAliasMaximum: UInt16 = BrokerConfiguration().topicAliasMaximum

    @Option(
        name: .long,
        help: ArgumentHelp("Response Information for MQTT 5 clients that request it: PREFIX/<client id>.", valueName: "prefix")
    )
    var responseInformation: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Redirect every client to this server (MQTT 5 Server Reference).", valueName: "host[:port]")
    )
    var serverReference: String?

    @Option(name: .long, help: "With --server-reference: use-another (CONNACK 0x9C) or moved (0x9D).")
    var redirect: RedirectKind = .useAnother

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Users allowed to connect (user name and password, or SCRAM-SHA-256); create it with 'petrel passwd'.",
            valueName: "file"
        )
    )
    var passwordFile: String?

    @Flag(
        inversion: .prefixedNo,
        help: "Let clients without credentials connect (default: yes without --password-file, no with one)."
    )
    var allowAnonymous: Bool?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Check a JSON Web Token in the CONNECT password against this public key (PEM, RSA or EC).",
            valueName: "file"
        )
    )
    var jwtKey: String?

    @Option(name: .long, help: ArgumentHelp("Check JSON Web Tokens against the keys of this JWKS file.", valueName: "file"))
    var jwtJwks: String?

    @Option(name: .long, help: "With --jwt-key or --jwt-jwks: the audience a token's aud claim must name.")
    var jwtAudience: String?

    @OptionGroup(title: "HTTP callout") var http: HTTPCalloutOptions

    @Option(
        name: .long,
        help: """
            Longest wait before answering a failed login; each failure from an address doubles its wait from \
            0.1 s up to this (0 answers at once).
            """
    )
    var maxLoginDelay: Double = 10

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Topics each client may publish to, subscribe to and receive, in Mosquitto's ACL file syntax.",
            valueName: "file"
        )
    )
    var aclFile: String?

    @Option(
        name: .long,
        help: """
            Seconds without traffic after which a connected client hibernates: it gives up its network channel \
            and keeps its MQTT state until its next packet or message (Linux; 0 turns it off).
            """
    )
    var hibernateAfter: Double = 10

    @Option(
        name: .long,
        help: "Seconds between publications of the $SYS/broker/... topics (retained; 0 turns them off)."
    )
    var sysInterval: Double = 10

    @Option(name: .long, help: "Event loop threads (default: one per core).")
    var threads: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "Log lines as text, or as one JSON object each (json).")
    var logFormat: LogFormat = .text

    @OptionGroup var storage: StorageOptions

    @OptionGroup(title: "Operations") var admin: AdminOptions

    func validate() throws {
        if http.httpAuthUrl != nil, jwtKey != nil || jwtJwks != nil {
            throw ValidationError("--http-auth-url and --jwt-key/--jwt-jwks each decide CONNECTs: choose one")
        }
        guard maxPacketSize >= 16 else { throw ValidationError("--max-packet-size must be at least 16 bytes") }
        guard receiveMaximum >= 1 else { throw ValidationError("--receive-maximum must be at least 1") }
        guard maxInflight >= 1, maxInflight <= 65535 else {
            throw ValidationError("--max-inflight must be between 1 and 65535")
        }
        guard maxQueuedMessages >= 0 else { throw ValidationError("--max-queued-messages must not be negative") }
        guard maxQueuedBytes >= 0 else { throw ValidationError("--max-queued-bytes must not be negative") }
        guard maxTopicLevels >= 0 else { throw ValidationError("--max-topic-levels must be 0 (no limit) or more") }
        guard maxTopicLength >= 1 else { throw ValidationError("--max-topic-length must be at least 1 byte") }
        for (value, flag) in [
            (maxSubscriptions, "--max-subscriptions"), (maxPublishRate, "--max-publish-rate"),
            (maxQueuedMemory, "--max-queued-memory"), (maxConnections, "--max-connections"),
            (maxConnectionsPerAddress, "--max-connections-per-address"),
        ] where value < 0 {
            throw ValidationError("\(flag) must be 0 (no limit) or more")
        }
        guard maxLoginDelay >= 0, maxLoginDelay.isFinite else {
            throw ValidationError("--max-login-delay must be 0 (off) or a number of seconds")
        }
        if let maxKeepAlive, maxKeepAlive < 1 { throw ValidationError("--max-keep-alive must be at least 1 second") }
        guard connectTimeout >= 1 else { throw ValidationError("--connect-timeout must be at least 1 second") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard sysInterval >= 0, sysInterval.isFinite else {
            throw ValidationError("--sys-interval must be 0 (off) or a number of seconds")
        }
        guard hibernateAfter >= 0, hibernateAfter.isFinite else {
            throw ValidationError("--hibernate-after must be 0 (off) or a number of seconds")
        }
        try storage.validate()
        if let serverReference, serverReference.isEmpty {
            throw ValidationError("--server-reference needs a host")
        }
    }

    func run() async throws {
        let level = RuntimeLogLevel(logLevel)
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .text: TextLogHandler(label: label, level: level)
            case .json: JSONLogHandler(label: label, level: level)
            }
        }
        let logger = Logger(label: "petrel")
        let registry = PrometheusCollectorRegistry()
        if admin.configuration != nil { AdminOptions.bootstrapMetrics(into: registry) }
        // A bad password or ACL file stops the start with a clear error.
        let passwords = try passwordFile.map { try PasswordFileIO.load($0) }
        let adminToken: String?
        do {
            adminToken = try admin.loadToken()
        } catch {
            logger.critical("Cannot start: \(error)")
            throw ExitCode(2)
        }
        let accessRules = try aclFile.map { try AccessControlFileIO.load($0) }

        var configuration = ServerConfiguration()
        let (hosts, port, otherListeners) = try listeners.listeners()
        configuration.hosts = hosts
        configuration.port = port
        configuration.listeners = otherListeners
        if let threads { configuration.eventLoopThreads = threads }
        configuration.hibernateAfter = hibernateAfter > 0 ? .nanoseconds(Int64(hibernateAfter * 1e9)) : nil
        configuration.broker.maximumPacketSize = maxPacketSize
        configuration.broker.receiveMaximum = receiveMaximum
        configuration.broker.maximumInflightMessages = maxInflight
        configuration.broker.maximumQueuedMessages = maxQueuedMessages
        configuration.broker.maximumQueuedBytes = maxQueuedBytes
        configuration.broker.queueQoS0ForOfflineSessions = queueQos0
        configuration.broker.connectTimeout = .seconds(connectTimeout)
        configuration.broker.serverKeepAlive = serverKeepAlive
        configuration.broker.maximumKeepAlive = maxKeepAlive
        if let maxSessionExpiry { configuration.broker.maximumSessionExpiryInterval = maxSessionExpiry }
        configuration.broker.sharedSubscriptionStrategy = sharedSubscriptionStrategy
        configuration.broker.topicAliasMaximum = topicAliasMaximum
        configuration.broker.maximumTopicLevels = maxTopicLevels
        configuration.broker.maximumTopicLength = maxTopicLength
        configuration.broker.maximumSubscriptionsPerSession = maxSubscriptions
        configuration.broker.maximumPublishRate = maxPublishRate
        configuration.broker.maximumQueuedBytesTotal = maxQueuedMemory > 0 ? maxQueuedMemory : .max
        configuration.maximumConnections = maxConnections
        configuration.maximumConnectionsPerAddress = maxConnectionsPerAddress
        configuration.broker.responseInformationPrefix = responseInformation
        configuration.broker.serverReference = serverReference
        configuration.broker.redirectReasonCode = redirect == .moved ? .serverMoved : .useAnotherServer
        if maxLoginDelay > 0 {
            var throttle = LoginThrottle.Settings()
            throttle.maximumDelay = .nanoseconds(Int64(maxLoginDelay * 1e9))
            throttle.baseDelay = min(throttle.baseDelay, throttle.maximumDelay)
            configuration.broker.loginThrottle = LoginThrottle(settings: throttle)
        } else {
            configuration.broker.loginThrottle = nil
        }
        let anonymous = allowAnonymous ?? (passwords == nil)
        if jwtKey != nil || jwtJwks != nil {
            do {
                configuration.broker.externalAuthenticator = try await JWTAuthenticator.load(
                    keyFile: jwtKey,
                    jwksFile: jwtJwks,
                    audience: jwtAudience
                )
            } catch {
                logger.critical("Cannot start: \(error)")
                throw ExitCode(2)
            }
        }
        if let authenticator = http.authenticator {
            configuration.broker.externalAuthenticator = authenticator
        }
        configuration.broker.externalAuthorizer = http.authorizer(logger: logger)
        // With authenticated users, one user's client id cannot be taken over by another.
        configuration.broker.sessionsBelongToTheirUser =
            passwords != nil || listeners.tlsSettings?.useIdentityAsUsername == true
            || configuration.broker.externalAuthenticator != nil
        var reloads: [ReloadOnHangup.Reload] = []
        if passwords != nil || !anonymous {
            let authenticator = ReplaceableAuthenticator(
                PasswordAuthenticator(file: passwords ?? PasswordFile(), allowAnonymous: anonymous)
            )
            configuration.broker.authenticator = authenticator
            if let passwordFile {
                reloads.append(
                    .init(name: "the password file") {
                        let file = try PasswordFileIO.load(passwordFile)
                        authenticator.replace(with: PasswordAuthenticator(file: file, allowAnonymous: anonymous))
                        return ["file": "\(passwordFile)", "users": "\(file.entries.count)"]
                    }
                )
            }
        }
        if let accessRules, let aclFile {
            let accessControl = AccessControl(accessRules)
            configuration.broker.authorizer = accessControl
            reloads.append(
                .init(name: "the ACL file") {
                    let list = try AccessControlFileIO.load(aclFile)
                    accessControl.replace(with: list)
                    return ["file": "\(aclFile)", "users": "\(list.userRules.count)", "patterns": "\(list.patterns.count)"]
                }
            )
        }

        logger.notice("Petrel \(Petrel.version) starting", metadata: ["pid": "\(getpid())"])
        var tls: TLSContextStore?
        if let settings = listeners.tlsSettings {
            do {
                tls = try TLSContextStore(settings: settings)
            } catch {
                logger.critical("Cannot start: \(error)")
                throw ExitCode(2)
            }
        }
        if let passwords, let passwordFile {
            logger.notice(
                "Loaded password file",
                metadata: ["file": "\(passwordFile)", "users": "\(passwords.entries.count)", "anonymous": "\(anonymous)"]
            )
        }
        if let accessRules, let aclFile {
            logger.notice(
                "Loaded ACL file",
                metadata: ["file": "\(aclFile)", "users": "\(accessRules.userRules.count)", "patterns": "\(accessRules.patterns.count)"]
            )
        }
        if http.httpAuthUrl != nil || http.httpAclUrl != nil {
            logger.notice(
                "HTTP callout",
                metadata: [
                    "connect": "\(http.httpAuthUrl ?? "-")",
                    "acl": "\(http.httpAclUrl ?? "-")",
                    "timeout_s": "\(http.httpTimeout)",
                    "cache_s": "\(http.httpCacheSeconds)",
                ]
            )
        }
        if let tls {
            reloads.insert(
                .init(name: "the TLS certificate") {
                    try tls.reload()
                    return ["tls.cert": "\(tls.settings.certificatePath)", "tls.key": "\(tls.settings.privateKeyPath)"]
                },
                at: 0
            )
        }
        let store: any BrokerStore
        let sqlite: SQLiteBrokerStore?
        switch storage.storage {
        case .memory:
            store = InMemoryBrokerStore()
            sqlite = nil
        case .sqlite:
            let started = ContinuousClock.now
            do {
                let opened = try SQLiteBrokerStore(
                    directory: storage.dataDir,
                    configuration: storage.sqliteConfiguration,
                    onError: { logger.error("\($0)") }
                )
                store = opened
                sqlite = opened
            } catch {
                logger.critical("Cannot start: \(error)", metadata: ["petrel.data_dir": "\(storage.dataDir)"])
                throw ExitCode(2)
            }
            logger.notice(
                "Storage opened",
                metadata: [
                    "petrel.data_dir": "\(storage.dataDir)",
                    "petrel.durability": "\(storage.durability.rawValue)",
                    "petrel.load_time": "\(ContinuousClock.now - started)",
                ]
            )
        }
        let broker = Broker(configuration: configuration.broker, store: store, now: .now())
        logger.notice(
            "Loaded state",
            metadata: [
                "petrel.sessions": "\(broker.statistics.sessions)",
                "petrel.retained": "\(broker.statistics.retainedMessages)",
            ]
        )
        defer { sqlite?.close() }
        let server = MQTTServer(configuration: configuration, broker: broker, tls: tls, logger: logger)
        if config != nil {
            let reload = try ConfigurationReload(
                commandLine: Array(CommandLine.arguments.dropFirst()),
                environment: ProcessInfo.processInfo.environment,
                level: level,
                server: server
            )
            reloads.append(.init(name: "the configuration file") { try reload.reload() })
        }
        // Stopped in reverse order: the HTTP listener last, so /ready answers 503 while clients are let go.
        var services: [any Service] = []
        if let adminConfiguration = admin.configuration {
            services.append(
                AdminServer(
                    configuration: adminConfiguration,
                    broker: broker,
                    server: server,
                    registry: registry,
                    version: Petrel.version,
                    api: AdminAPIConfiguration(
                        token: adminToken,
                        effectiveConfiguration: effectiveConfiguration(anonymous: anonymous),
                        // The instance the log handlers follow: a level set through the API applies to every line.
                        logLevel: level
                    ),
                    logger: logger
                )
            )
        }
        services.append(server)
        if sysInterval > 0 {
            services.append(
                SystemTopics(
                    server: server,
                    interval: .nanoseconds(Int64(sysInterval * 1e9)),
                    version: Petrel.version
                )
            )
        }
        services.append(ReloadOnHangup(reloads: reloads, logger: logger))
        let group = ServiceGroup(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension SharedSubscriptionStrategy: ExpressibleByArgument {}

/// `--log-format`.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// `--redirect`: the CONNACK reason code of a redirection.
enum RedirectKind: String, ExpressibleByArgument, CaseIterable {
    case useAnother = "use-another"
    case moved
}
