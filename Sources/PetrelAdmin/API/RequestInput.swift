import Foundation
import Hummingbird

/// Paging of a list: `offset` entries skipped, at most `limit` returned (default 100, at most 1000, so that one
/// request never copies a whole large broker into one response).
struct Paging {
    static let defaultLimit = 100
    static let maximumLimit = 1000

    var limit: Int
    var offset: Int

    init(_ request: Request) throws(APIError) {
        let query = request.uri.queryParameters
        self.limit =
            try Self.integer(query.get("limit"), field: "limit", in: 1...Self.maximumLimit) ?? Self.defaultLimit
        self.offset = try Self.integer(query.get("offset"), field: "offset", in: 0...Int.max) ?? 0
    }

    private static func integer(_ text: String?, field: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let text else { return nil }
        // A whole number too large for Int is still a whole number: it lands on the range's upper end (an
        // offset past every list gives an empty page; a limit above the maximum is refused below).
        let digits = text.hasPrefix("+") ? text.dropFirst() : text[...]
        let overflows = !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
        guard let value = Int(text) ?? (overflows ? Int.max : nil) else {
            throw .badRequest("\(field) must be an integer", field: field)
        }
        guard range.contains(value) else {
            let bound =
                range.upperBound == .max
                ? "\(range.lowerBound) or more" : "between \(range.lowerBound) and \(range.upperBound)"
            throw .badRequest("\(field) must be \(bound)", field: field)
        }
        return value
    }
}

/// A list response: one page, the whole list's length, and the paging that cut it.
struct PageBody<Item: Encodable>: Encodable {
    var items: [Item]
    var total: Int
    var limit: Int
    var offset: Int
}

extension Request {
    /// A query parameter as text; an empty one counts as given.
    func query(_ name: String) -> String? {
        self.uri.queryParameters.get(name)
    }

    /// The request body, refused past `limit` bytes.
    func collectBody(upTo limit: Int) async throws(APIError) -> ByteBuffer {
        do {
            return try await self.body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, "the body is larger than \(limit) bytes")
        }
    }
}

extension RequestContext {
    /// A path parameter, percent-decoded (a client identifier may hold any character, '/' included as %2F).
    func pathParameter(_ name: String) throws(APIError) -> String {
        guard let raw = self.parameters.get(name), let decoded = raw.removingPercentEncoding else {
            throw .badRequest("\(name) is not a valid percent-encoded path segment", field: name)
        }
        return decoded
    }

    /// What `**` caught, percent-decoded: a topic whose levels stand in the path as they are, or with '/' as %2F.
    func catchAllParameter(_ name: String) throws(APIError) -> String {
        let raw = self.parameters[Parameters.recursiveCaptureKey].map(String.init) ?? ""
        guard let decoded = raw.removingPercentEncoding else {
            throw .badRequest("\(name) is not validly percent-encoded", field: name)
        }
        return decoded
    }
}

/// One member of a JSON request body, decoded without looking inside nested arrays or objects (so that a body's
/// nesting costs no recursion here): members of the admin API are all scalars.
enum JSONScalar: Decodable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    /// An array or an object.
    case structure

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .structure
        }
    }
}

/// A JSON object body whose members are read by name and checked one by one; a member the endpoint does not
/// know is refused, naming it.
struct JSONObjectBody {
    private let members: [String: JSONScalar]

    init(_ buffer: ByteBuffer, allowed: Set<String>) throws(APIError) {
        let data = Data(buffer.readableBytesView)
        let members: [String: JSONScalar]
        do {
            members = try JSONDecoder().decode([String: JSONScalar].self, from: data)
        } catch {
            throw .badRequest("the body must be a JSON object", field: "body")
        }
        if let unknown = members.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .badRequest("unknown member '\(unknown)'", field: unknown)
        }
        self.members = members
    }

    // An absent member takes its default; a null one is refused, as the OpenAPI document gives no member a
    // null type.

    func string(_ name: String) throws(APIError) -> String? {
        switch self.members[name] {
        case nil: return nil
        case .string(let value)?: return value
        default: throw .badRequest("\(name) must be a string", field: name)
        }
    }

    func bool(_ name: String) throws(APIError) -> Bool? {
        switch self.members[name] {
        case nil: return nil
        case .bool(let value)?: return value
        default: throw .badRequest("\(name) must be true or false", field: name)
        }
    }

    func integer(_ name: String) throws(APIError) -> Int? {
        switch self.members[name] {
        case nil: return nil
        case .integer(let value)?: return value
        default: throw .badRequest("\(name) must be an integer", field: name)
        }
    }
}
