import Foundation
import Hummingbird

/// Every refusal of the admin API: a status and `{"error": "...", "field": "..."}`, the field naming the query
/// parameter, path parameter or body member that was wrong (absent when no single one was).
struct APIError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    let field: String?

    init(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) {
        self.status = status
        self.message = message
        self.field = field
    }

    static func badRequest(_ message: String, field: String?) -> APIError {
        APIError(.badRequest, message, field: field)
    }

    static func notFound(_ message: String) -> APIError {
        APIError(.notFound, message)
    }

    private struct Body: Encodable {
        var error: String
        var field: String?
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        self.response()
    }

    func response() -> Response {
        var response = JSONResponse.make(Body(error: self.message, field: self.field), status: self.status)
        if self.status == .unauthorized {
            response.headers[.wwwAuthenticate] = #"Bearer realm="petrel""#
        }
        return response
    }
}

/// JSON responses of the admin API: snake_case keys, sorted so that a response reads the same each time.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        // Every value encoded here is made of strings, numbers, booleans and arrays of them: encoding cannot fail,
        // and if it ever did the answer is still JSON.
        let data = (try? Self.encoder.encode(value)) ?? Data(#"{"error":"response could not be encoded"}"#.utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    static func noContent() -> Response {
        Response(status: .noContent, headers: [.cacheControl: "no-store"])
    }
}
