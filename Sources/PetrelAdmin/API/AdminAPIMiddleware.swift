import Crypto
import Foundation
import Hummingbird
import Prometheus

/// In front of every request: those under `/api/v1` need `Authorization: Bearer <token>` (except the OpenAPI
/// document), are answered 404 when no token is configured (the API is off), and any error they end in becomes
/// a JSON error. Other paths (`/health`, `/ready`, `/metrics`) pass untouched.
struct AdminAPIMiddleware<Context: RequestContext>: RouterMiddleware {
    static var prefix: String { "/api/v1" }

    /// SHA-256 of the token: requests are compared with it in constant time, and hashing first makes the
    /// comparison's length fixed whatever the length of the token presented.
    private let tokenDigest: SHA256Digest?
    private let unauthorized: Counter

    init(token: String?, registry: PrometheusCollectorRegistry) {
        self.tokenDigest = token.map { SHA256.hash(data: Data($0.utf8)) }
        self.unauthorized = registry.makeCounter(
            descriptor: .petrel(
                "petrel_admin_unauthorized_total",
                help: "Admin API requests refused for a missing or wrong bearer token."
            )
        )
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        // Decided on the path's non-empty segments, as the router matches them: "//api/v1/clients" and
        // "/api//v1/clients" reach the same route as "/api/v1/clients", so they need the token as well.
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count >= 2, segments[0] == "api", segments[1] == "v1" else {
            return try await next(request, context)
        }
        guard let tokenDigest else {
            return APIError(.notFound, "the admin API is off: start petrel with --admin-token-file").response()
        }
        if !(segments.count == 3 && segments[2] == "openapi.json") {
            guard let presented = Self.bearerToken(request),
                Self.constantTimeEqual(SHA256.hash(data: Data(presented.utf8)), tokenDigest)
            else {
                self.unauthorized.increment()
                return APIError(.unauthorized, "a valid 'Authorization: Bearer <token>' header is required").response()
            }
        }
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as HTTPError where error.status == .notFound {
            // A path the API has, asked with a method it does not take, is 405 with the methods it does take.
            if let allowed = Self.allowedMethods(segments.dropFirst(2)), !allowed.contains(request.method) {
                var response = APIError(.methodNotAllowed, "\(request.method) is not allowed here").response()
                response.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
                return response
            }
            return APIError(.notFound, "no such endpoint").response()
        } catch let error as HTTPError {
            // The router's own refusals (no such route, a body it could not read) in the API's error shape.
            let message = error.status == .notFound ? "no such endpoint" : (error.body ?? error.status.reasonPhrase)
            return APIError(error.status, message).response()
        }
    }

    /// The methods the API takes on a path (its segments after `/api/v1`); nil for a path it does not have.
    /// Keep in step with the routes (`AdminAPI.add(to:)`).
    static func allowedMethods(_ segments: ArraySlice<Substring>) -> [HTTPRequest.Method]? {
        guard let first = segments.first else { return nil }
        switch (first, segments.count) {
        case ("clients", 1), ("sessions", 1), ("subscriptions", 1), ("topics", 1), ("retained", 1), ("config", 1),
            ("openapi.json", 1):
            return [.get]
        case ("clients", 2), ("sessions", 2), ("retained", 2...):
            return [.get, .delete]
        case ("publish", 1):
            return [.post]
        case ("log-level", 1):
            return [.get, .put]
        default:
            return nil
        }
    }

    /// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive, RFC 6750).
    private static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// Compares every byte whatever the first difference, so the time taken tells nothing about the token.
    private static func constantTimeEqual(_ lhs: SHA256Digest, _ rhs: SHA256Digest) -> Bool {
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
        return difference == 0
    }
}
