import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PetrelCore

/// Posts a JSON document to a URL and reads the service's answer, for the HTTP authenticator and authorizer.
///
/// The answer, in the shape EMQX's HTTP authentication uses: a 2xx status with an empty body, or with a JSON
/// body whose `result` is `"allow"`, allows; `"deny"`, a body without `result`, or a 4xx status denies. No
/// answer within `timeout`, a 5xx status, a body that is not JSON, or a service that cannot be reached is a
/// failure, which the callers turn into a denial (fails closed) that is not cached.
public struct HTTPCallout: Sendable {
    public struct Settings: Sendable {
        public var url: String
        public var timeout: TimeAmount
        /// Sent with every request, such as `Authorization: Bearer ...`.
        public var headers: [(name: String, value: String)]

        public init(url: String, timeout: TimeAmount = .seconds(2), headers: [(name: String, value: String)] = []) {
            self.url = url
            self.timeout = timeout
            self.headers = headers
        }
    }

    public enum Answer: Sendable {
        /// Allowed; a connect answer may name the user (`"user"`) and give the client's rules (`"acl"`, in the
        /// JWT claim's shape `{"pub": [filters], "sub": [filters], "all": [filters]}`).
        case allow(user: String?, rules: ClientRules?)
        case deny(String)
        /// No answer: the caller denies and does not cache.
        case failure(String)
    }

    /// The largest answer read; a service has no reason to send more.
    static let maximumAnswerBytes = 64 * 1024

    public let settings: Settings
    private let client: HTTPClient
    private let logger: Logger

    public init(settings: Settings, client: HTTPClient = .shared, logger: Logger = Logger(label: "petrel.http-callout")) {
        self.settings = settings
        self.client = client
        self.logger = logger
    }

    /// Checks the URL and headers before the broker starts.
    public static func validate(_ settings: Settings) throws {
        guard let url = URL(string: settings.url), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw CalloutError(description: "\(settings.url) is not an http:// or https:// URL")
        }
        guard settings.timeout > .zero else { throw CalloutError(description: "the HTTP callout timeout must be above 0") }
    }

    public struct CalloutError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Posts `document` (a JSON object) and waits at most `settings.timeout` for the whole answer.
    public func post(_ document: [String: String]) async -> Answer {
        let body: Data
        do {
            body = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        } catch {
            return .failure("cannot encode the request: \(error)")
        }
        var request = HTTPClientRequest(url: self.settings.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        for header in self.settings.headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let deadline = NIODeadline.now() + self.settings.timeout
        let status: HTTPResponseStatus
        let answer: ByteBuffer
        do {
            let response = try await self.client.execute(request, deadline: deadline, logger: self.logger)
            status = response.status
            answer = try await response.body.collect(upTo: Self.maximumAnswerBytes)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return .failure("no answer within \(self.settings.timeout.nanoseconds / 1_000_000) ms")
        } catch {
            return .failure("\(error)")
        }
        return Self.interpret(status: status, body: answer)
    }

    static func interpret(status: HTTPResponseStatus, body: ByteBuffer) -> Answer {
        switch status.code {
        case 200..<300:
            break
        case 400..<500:
            return .deny("HTTP \(status.code)")
        default:
            return .failure("HTTP \(status.code)")
        }
        if body.readableBytes == 0 || body.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return .allow(user: nil, rules: nil)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            return .failure("the answer is not a JSON object")
        }
        switch object["result"] as? String {
        case "allow":
            var rules: ClientRules?
            if let acl = object["acl"] as? [String: Any] {
                func filters(_ key: String) -> [String] { (acl[key] as? [Any])?.compactMap { $0 as? String } ?? [] }
                rules = ClientRules(publish: filters("pub"), subscribe: filters("sub"), all: filters("all"))
            }
            return .allow(user: object["user"] as? String, rules: rules)
        case "deny":
            return .deny("denied")
        case let other?:
            return .deny("result \(other)")
        case nil:
            return .deny("the answer has no result")
        }
    }
}
