import Hummingbird
import Logging
import NIOCore
import PetrelCore
import PetrelServer

/// What the app hands the admin API: the token that opens it, the configuration it shows, the log level it sets.
public struct AdminAPIConfiguration: Sendable {
    /// The bearer token every `/api/v1` request but the OpenAPI document must present; nil turns the API off
    /// (404 for every `/api/v1` path).
    public var token: String?
    /// What `GET /api/v1/config` answers, encoded as JSON on each request. The app masks secrets before handing
    /// it over: the admin API shows it as it is.
    public var effectiveConfiguration: (any Encodable & Sendable)?
    /// The level the log handlers follow; `PUT /api/v1/log-level` changes it. Nil: the log level is read-only
    /// here and set answers 404.
    public var logLevel: RuntimeLogLevel?

    public init(
        token: String? = nil, effectiveConfiguration: (any Encodable & Sendable)? = nil,
        logLevel: RuntimeLogLevel? = nil
    ) {
        self.token = token
        self.effectiveConfiguration = effectiveConfiguration
        self.logLevel = logLevel
    }
}

/// The `/api/v1` endpoints, each a thin reading of the request over one engine query or action. Actions return
/// wakers, woken here as `SystemTopics` wakes those of its own messages: each connection then acts on its own
/// event loop.
struct AdminAPI: Sendable {
    let broker: Broker
    let configuration: AdminAPIConfiguration
    let logger: Logger

    func add(to router: Router<some RequestContext>) {
        let api = router.group(RouterPath(AdminAPIMiddleware<BasicRequestContext>.prefix))
        OpenAPIRoute().add(to: api)
        ClientRoutes(api: self).add(to: api)
        SessionRoutes(api: self).add(to: api)
        SubscriptionRoutes(api: self).add(to: api)
        RetainedRoutes(api: self).add(to: api)
        PublishRoute(api: self).add(to: api)
        ConfigurationRoutes(api: self).add(to: api)
    }

    /// Wakes the connections an action named and logs what the engine said about it.
    func carryOut(_ result: AdministrationResult) {
        for waker in result.wake { waker.wake() }
        for record in result.logs { self.log(record) }
    }

    func carryOut(_ result: BrokerTickResult) {
        for waker in result.wake { waker.wake() }
        for record in result.logs { self.log(record) }
    }

    private func log(_ record: LogRecord) {
        let level: Logger.Level =
            switch record.level {
            case .trace: .trace
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .warning: .warning
            case .error: .error
            }
        self.logger.log(level: level, "\(record.message)", metadata: record.metadata.mapValues { .string($0) })
    }

    /// The engine's clock: the one every connection passes in as `now:`.
    var now: NIODeadline { .now() }
}
