import MQTTWire
import NIOHTTP1
import Testing

/// The bearer token in front of the admin API, and the API turned off without one.
@Suite("Admin API authentication")
struct AdminAPIAuthenticationTests {
    @Test("no token or a wrong one gets 401 with a JSON error, counted in petrel_admin_unauthorized_total")
    func unauthorized() async throws {
        try await withAdminAPI { api in
            let missing = try await api.get("/api/v1/clients", token: nil)
            #expect(missing.status == 401)
            #expect(missing.contentType?.hasPrefix("application/json") == true)
            #expect((missing.json["error"] as? String)?.isEmpty == false)
            let wrong = try await api.get("/api/v1/clients", token: "not-the-token")
            #expect(wrong.status == 401)
            let prefix = try await api.get("/api/v1/clients", token: String(adminTestToken.dropLast()))
            #expect(prefix.status == 401)
            // An unknown endpoint is not revealed to a caller without the token either.
            #expect(try await api.get("/api/v1/no-such-thing", token: nil).status == 401)
            let metrics = try await api.get("/metrics", token: nil)
            #expect(prometheusSample(metrics.body, "petrel_admin_unauthorized_total") == 4)
            #expect(try await api.get("/api/v1/clients").status == 200)
        }
    }

    @Test("a path with doubled slashes, which the router matches alike, needs the token too")
    func doubledSlashes() async throws {
        try await withAdminAPI { api in
            for path in [
                "//api/v1/clients", "/api//v1/clients", "/api/v1//clients", "//api//v1//openapi.json/../clients",
            ] {
                let answer = try await api.get(path, token: nil)
                #expect(answer.status != 200, "\(path)")
            }
            #expect(try await api.get("//api/v1/clients", token: nil).status == 401)
            #expect(try await api.get("//api//v1/openapi.json", token: nil).status == 200)
        }
    }

    @Test("the scheme is case-insensitive and other schemes are refused")
    func scheme() async throws {
        try await withAdminAPI { api in
            #expect(try await api.request(.GET, "/api/v1/clients", token: nil).status == 401)
            var answer = try await api.request(.GET, "/api/v1/sessions", token: adminTestToken)
            #expect(answer.status == 200)
            answer = try await api.request(.GET, "/api/v1/topics", token: " " + adminTestToken)
            #expect(answer.status == 200)
        }
    }

    @Test("the OpenAPI document needs no token; /health, /ready and /metrics are unchanged")
    func openWithoutToken() async throws {
        try await withAdminAPI { api in
            let document = try await api.get("/api/v1/openapi.json", token: nil)
            #expect(document.status == 200)
            #expect(document.json["openapi"] as? String == "3.1.0")
            #expect(try await api.get("/health", token: nil).status == 200)
            #expect(try await api.get("/ready", token: nil).status == 200)
            #expect(try await api.get("/metrics", token: nil).status == 200)
        }
    }

    @Test("without a token file the API answers 404 saying it is off, the OpenAPI document too")
    func off() async throws {
        try await withAdminAPI(token: nil) { api in
            for path in ["/api/v1/clients", "/api/v1/openapi.json", "/api/v1"] {
                let answer = try await api.get(path)
                #expect(answer.status == 404)
                #expect((answer.json["error"] as? String)?.contains("off") == true)
            }
            #expect(try await api.get("/health", token: nil).status == 200)
            #expect(try await api.get("/metrics", token: nil).status == 200)
        }
    }

    @Test("a method an endpoint does not take is 405 with an Allow header")
    func methodNotAllowed() async throws {
        try await withAdminAPI { api in
            for (method, path) in [
                (HTTPMethod.POST, "/api/v1/clients"), (.PUT, "/api/v1/sessions/x"), (.PATCH, "/api/v1/retained/a/b"),
                (.GET, "/api/v1/publish"), (.DELETE, "/api/v1/log-level"),
            ] {
                let answer = try await api.request(method, path)
                #expect(answer.status == 405, "\(method) \(path)")
                #expect(answer.json["error"] != nil)
            }
            #expect(try await api.request(.DELETE, "/api/v1/clients/a/b").status == 404)
        }
    }

    @Test("an unknown endpoint under /api/v1 is a JSON 404")
    func unknownEndpoint() async throws {
        try await withAdminAPI { api in
            let answer = try await api.get("/api/v1/nothing/here")
            #expect(answer.status == 404)
            #expect(answer.contentType?.hasPrefix("application/json") == true)
        }
    }
}
