import Logging
import MQTTWire
import Testing

/// `/api/v1/config` and `/api/v1/log-level`.
@Suite("Admin API configuration and log level")
struct AdminAPIConfigurationTests {
    @Test("the configuration given by the app is returned as JSON")
    func configuration() async throws {
        try await withAdminAPI { api in
            let answer = try await api.get("/api/v1/config")
            #expect(answer.status == 200)
            #expect(answer.json["storage"] as? String == "memory")
            #expect(answer.json["admin_token_file"] as? String == "/etc/petrel/token")
            #expect(!answer.body.contains(adminTestToken))
        }
    }

    @Test("the log level is read and set on the RuntimeLogLevel the handlers follow")
    func logLevel() async throws {
        try await withAdminAPI { api in
            #expect(try await api.get("/api/v1/log-level").json["level"] as? String == "info")
            let set = try await api.request(.PUT, "/api/v1/log-level", body: #"{"level":"debug"}"#)
            #expect(set.status == 200)
            #expect(set.json["level"] as? String == "debug")
            #expect(api.logLevel.current == .debug)
            #expect(try await api.get("/api/v1/log-level").json["level"] as? String == "debug")
        }
    }

    @Test("an unknown level or a bad body gets 400 naming the field, and the level stays")
    func badLevel() async throws {
        try await withAdminAPI { api in
            for (body, field) in [
                (#"{"level":"loud"}"#, "level"), (#"{"level":3}"#, "level"), (#"{}"#, "level"),
                (#"{"level":"info","extra":1}"#, "extra"), ("nope", "body"),
            ] {
                let answer = try await api.request(.PUT, "/api/v1/log-level", body: body)
                #expect(answer.status == 400, "\(body)")
                #expect(answer.errorField == field, "\(body)")
            }
            #expect(api.logLevel.current == .info)
        }
    }
}
