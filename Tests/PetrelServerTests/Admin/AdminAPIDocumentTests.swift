import Foundation
import NIOHTTP1
import Testing

/// The OpenAPI document served at `/api/v1/openapi.json` against the routes the server has.
@Suite("Admin API OpenAPI document")
struct AdminAPIDocumentTests {
    /// Every route of the admin API, as the document names it: adding one means describing it.
    static let routes: [(method: String, path: String)] = [
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/clients"), ("get", "/api/v1/clients/{client_id}"), ("delete", "/api/v1/clients/{client_id}"),
        ("get", "/api/v1/sessions"), ("get", "/api/v1/sessions/{client_id}"),
        ("delete", "/api/v1/sessions/{client_id}"),
        ("get", "/api/v1/subscriptions"), ("get", "/api/v1/topics"),
        ("get", "/api/v1/retained"), ("get", "/api/v1/retained/{topic}"), ("delete", "/api/v1/retained/{topic}"),
        ("post", "/api/v1/publish"), ("get", "/api/v1/config"), ("get", "/api/v1/log-level"),
        ("put", "/api/v1/log-level"),
    ]

    @Test("the document is OpenAPI 3.1, describes every route and nothing else, and every operation its errors")
    func describesEveryRoute() async throws {
        try await withAdminAPI { api in
            let document = try await api.get("/api/v1/openapi.json", token: nil).json
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var described: [String] = []
            for (path, item) in paths {
                for (method, operation) in item where method != "parameters" {
                    described.append("\(method) \(path)")
                    let responses = (operation as? [String: Any])?["responses"] as? [String: Any] ?? [:]
                    #expect(responses["404"] != nil, "\(method) \(path) has no 404")
                    if path != "/api/v1/openapi.json" {
                        #expect(responses["401"] != nil, "\(method) \(path) has no 401")
                    }
                }
            }
            #expect(described.sorted() == Self.routes.map { "\($0.method) \($0.path)" }.sorted())
        }
    }

    @Test("every route answers something other than 'no such endpoint'")
    func everyRouteExists() async throws {
        try await withAdminAPI { api in
            for route in Self.routes {
                let path = route.path.replacingOccurrences(of: "{client_id}", with: "someone")
                    .replacingOccurrences(of: "{topic}", with: "some/topic")
                let method = HTTPMethodName(route.method)
                let answer = try await api.request(
                    method.value, path, body: route.method == "get" || route.method == "delete" ? nil : "{}")
                #expect(answer.json["error"] as? String != "no such endpoint", "\(route.method) \(path)")
                #expect(answer.status < 500)
            }
        }
    }
}

private struct HTTPMethodName {
    let value: HTTPMethod
    init(_ name: String) {
        self.value = HTTPMethod(rawValue: name.uppercased())
    }
}
