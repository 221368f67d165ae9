import Foundation
import JWTKit
import PetrelCore

/// Clients authenticate with a JSON Web Token in the CONNECT's Password, checked with jwt-kit against public
/// keys (a PEM file, RSA or EC) or a JWKS file: signature, `exp` (required), `nbf`, and `aud` when an audience
/// is configured. The token's `sub` is the user (without one, the CONNECT's User Name); an `acl` claim in
/// EMQX's shape, `{"pub": [filters], "sub": [filters], "all": [filters]}`, becomes the client's rules and
/// replaces the ACL file's for it.
public struct JWTAuthenticator: ExternalAuthenticator {
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    private let keys: JWTKeyCollection
    private let audience: String?

    private init(keys: JWTKeyCollection, audience: String?) {
        self.keys = keys
        self.audience = audience
    }

    /// Keys from a PEM public key (RSA: RS256; EC P-256, P-384, P-521: ES256, ES384, ES512) or a JWKS document.
    public static func load(keyFile: String?, jwksFile: String?, audience: String?) async throws -> JWTAuthenticator {
        let keys = JWTKeyCollection()
        if let jwksFile {
            let json = try Self.read(jwksFile)
            do {
                try await keys.add(jwksJSON: json)
            } catch {
                throw LoadError(description: "invalid JWKS file \(jwksFile): \(error)")
            }
        }
        if let keyFile {
            let pem = try Self.read(keyFile)
            if let key = try? ES256PublicKey(pem: pem) {
                await keys.add(ecdsa: key)
            } else if let key = try? ES384PublicKey(pem: pem) {
                await keys.add(ecdsa: key)
            } else if let key = try? ES512PublicKey(pem: pem) {
                await keys.add(ecdsa: key)
            } else if let key = try? Insecure.RSA.PublicKey(pem: pem) {
                await keys.add(rsa: key, digestAlgorithm: .sha256)
            } else {
                throw LoadError(description: "\(keyFile) holds no RSA (2048 bits or more) or EC public key in PEM")
            }
        }
        guard keyFile != nil || jwksFile != nil else { throw LoadError(description: "no JWT key or JWKS file") }
        return JWTAuthenticator(keys: keys, audience: audience)
    }

    private static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LoadError(description: "cannot read \(path): \(error.localizedDescription)")
        }
    }

    public func decide(_ credentials: ConnectCredentials) async -> AuthenticationVerdict {
        guard let password = credentials.password, let token = String(bytes: password, encoding: .utf8), !token.isEmpty
        else {
            return AuthenticationVerdict(decision: .refuse(.notAuthorized), reason: "no token in the password")
        }
        let claims: TokenClaims
        do {
            claims = try await self.keys.verify(token, as: TokenClaims.self)
            if let audience {
                guard let aud = claims.aud else {
                    return AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword), reason: "token has no aud claim")
                }
                try aud.verifyIntendedAudience(includes: audience)
            }
        } catch {
            return AuthenticationVerdict(decision: .refuse(.badUserNameOrPassword), reason: "token refused: \(error)")
        }
        let user = claims.sub?.value ?? credentials.username
        let rules = claims.acl.map { ClientRules(publish: $0.pub ?? [], subscribe: $0.sub ?? [], all: $0.all ?? []) }
        return AuthenticationVerdict(decision: .accept(user: user), rules: rules)
    }
}

/// The claims Petrel reads from a token.
struct TokenClaims: JWTPayload {
    struct AccessClaim: Codable, Sendable {
        var pub: [String]?
        var sub: [String]?
        var all: [String]?
    }

    var sub: SubjectClaim?
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var aud: AudienceClaim?
    var acl: AccessClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try self.exp.verifyNotExpired()
        try self.nbf?.verifyNotBefore()
    }
}
