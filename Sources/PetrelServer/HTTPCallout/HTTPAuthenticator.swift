import Crypto
import Foundation
import NIOCore
import PetrelCore

/// Each CONNECT (without an MQTT 5 Authentication Method) is decided by an HTTP service: Petrel posts
/// `{"clientid", "username", "password", "address", "protocol"}` and reads the answer as `HTTPCallout`
/// describes. An allowing answer may name the user (`"user"`) and give the client's rules (`"acl"`), which
/// replace the ACL file's for it. A denial is CONNACK 0x86 Bad User Name or Password (3.1.1: 0x04); no answer
/// (a timeout, an error) is 0x88 Server unavailable (3.1.1: 0x03): the broker fails closed.
///
/// Answers are cached by client identifier, user name, password and client host, so that a client that
/// reconnects within the cache's time to live is not asked about again. Only a SHA-256 of them is kept.
public struct HTTPAuthenticator: ExternalAuthenticator {
    private enum CachedAnswer: Sendable {
        case allow(user: String?, rules: ClientRules?)
        case deny
    }

    private let callout: HTTPCallout
    private let cache: DecisionCache<SHA256Digest, CachedAnswer>

    public init(callout: HTTPCallout, cacheTimeToLive: TimeAmount, cacheCapacity: Int = 100_000) {
        self.callout = callout
        self.cache = DecisionCache(timeToLive: cacheTimeToLive, capacity: cacheCapacity)
    }

    public func decide(_ credentials: ConnectCredentials) async -> AuthenticationVerdict {
        let key = Self.cacheKey(credentials)
        switch self.cache.decision(for: key, now: .now()) {
        case .allow(let user, let rules):
            return AuthenticationVerdict(decision: .accept(user: user), rules: rules)
        case .deny:
            return AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword), reason: "the HTTP service denied it (cached)")
        case nil:
            break
        }
        switch await self.callout.post(Self.document(credentials)) {
        case .allow(let user, let rules):
            let user = user ?? credentials.username
            self.cache.store(.allow(user: user, rules: rules), for: key, now: .now())
            return AuthenticationVerdict(decision: .accept(user: user), rules: rules)
        case .deny(let reason):
            self.cache.store(.deny, for: key, now: .now())
            return AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword), reason: "the HTTP service denied it: \(reason)")
        case .failure(let reason):
            return AuthenticationVerdict(decision: .refuse(.serverUnavailable), reason: "the HTTP service gave no answer: \(reason)")
        }
    }

    static func document(_ credentials: ConnectCredentials) -> [String: String] {
        var document = [
            "clientid": credentials.clientIdentifier,
            "address": credentials.remoteAddress,
            "protocol": credentials.protocolVersion.displayName,
        ]
        if let username = credentials.username { document["username"] = username }
        if let password = credentials.password {
            if let text = String(validating: password, as: UTF8.self) {
                document["password"] = text
            } else {
                // MQTT allows any bytes in a password: one that is not UTF-8 goes in Base64.
                document["password_base64"] = Data(password).base64EncodedString()
            }
        }
        return document
    }

    private static func cacheKey(_ credentials: ConnectCredentials) -> SHA256Digest {
        var hash = SHA256()
        let parts: [[UInt8]] = [
            Array(credentials.clientIdentifier.utf8),
            credentials.username.map { [1] + Array($0.utf8) } ?? [0],
            credentials.password.map { [1] + $0 } ?? [0],
            Array(LoginThrottle.host(of: credentials.remoteAddress).utf8),
        ]
        for part in parts {
            // Each part with its length first, so that no two different sets of parts hash the same bytes.
            var length = UInt64(part.count).bigEndian
            withUnsafeBytes(of: &length) { hash.update(bufferPointer: $0) }
            hash.update(data: part)
        }
        return hash.finalize()
    }
}

extension ProtocolVersion {
    /// As the HTTP services see it: "3.1", "3.1.1" or "5".
    var displayName: String {
        switch self {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5"
        }
    }
}
