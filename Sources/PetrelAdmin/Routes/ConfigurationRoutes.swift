import Hummingbird
import Logging
import PetrelCore

/// `GET /api/v1/config` (the effective configuration, secrets masked by the app) and `GET`/`PUT
/// /api/v1/log-level` (the level every log handler follows, changed at once).
struct ConfigurationRoutes {
    let api: AdminAPI

    private struct LogLevelBody: Encodable {
        var level: String
    }

    private static var levelNames: String { Logger.Level.allCases.map(\.rawValue).joined(separator: ", ") }

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.get("config") { _, _ in
            guard let configuration = api.configuration.effectiveConfiguration else {
                throw APIError.notFound("no configuration was given to the admin API")
            }
            return JSONResponse.make(configuration)
        }
        group.get("log-level") { _, _ in
            guard let level = api.configuration.logLevel else {
                throw APIError.notFound("the log level is not managed here")
            }
            return JSONResponse.make(LogLevelBody(level: level.current.rawValue))
        }
        group.put("log-level") { request, _ in
            guard let level = api.configuration.logLevel else {
                throw APIError.notFound("the log level is not managed here")
            }
            let body = try await request.collectBody(upTo: 4096)
            let object = try JSONObjectBody(body, allowed: ["level"])
            guard let name = try object.string("level") else {
                throw APIError.badRequest("level is required", field: "level")
            }
            guard let newLevel = Logger.Level(rawValue: name) else {
                throw APIError.badRequest("level must be one of \(Self.levelNames)", field: "level")
            }
            let previous = level.current
            level.current = newLevel
            api.logger.notice(
                "Log level set through the admin API", metadata: ["from": "\(previous)", "to": "\(newLevel)"])
            return JSONResponse.make(LogLevelBody(level: newLevel.rawValue))
        }
    }
}
