import Foundation
import JWTKit
import PetrelCore
import PetrelServer
import Testing

/// Tokens signed here with jwt-kit, checked by `JWTAuthenticator` against the public key in a PEM file.
@Suite("JSON Web Tokens as passwords")
struct JWTAuthenticatorTests {
    struct Claims: JWTPayload {
        var sub: SubjectClaim?
        var exp: ExpirationClaim
        var aud: AudienceClaim?
        var acl: [String: [String]]?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func setUp(audience: String? = nil) async throws -> (JWTAuthenticator, JWTKeyCollection) {
        let key = ES256PrivateKey()
        let path = NSTemporaryDirectory() + "petrel-jwt-\(UUID().uuidString).pem"
        try key.publicKey.pemRepresentation.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let authenticator = try await JWTAuthenticator.load(keyFile: path, jwksFile: nil, audience: audience)
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: key)
        return (authenticator, signer)
    }

    static func credentials(_ token: String, username: String? = "ignored") -> ConnectCredentials {
        ConnectCredentials(
            protocolVersion: .v5,
            clientIdentifier: "device-1",
            username: username,
            password: Array(token.utf8),
            remoteAddress: "127.0.0.1:1"
        )
    }

    @Test("A valid token lets its subject in, with the rules of its acl claim")
    func valid() async throws {
        let (authenticator, signer) = try await Self.setUp()
        let token = try await signer.sign(
            Claims(sub: "alice", exp: .init(value: .now + 60), acl: ["pub": ["devices/1/#"], "sub": ["cmd/1"]])
        )
        let verdict = await authenticator.decide(Self.credentials(token))
        #expect(verdict.decision == .accept(user: "alice"))
        let rules = try #require(verdict.rules)
        #expect(rules.allows(.publish, "devices/1/t"))
        #expect(!rules.allows(.publish, "devices/2/t"))
        #expect(rules.allows(.subscribe, "cmd/1"))
        #expect(!rules.allows(.receive, "devices/1/t"))
    }

    @Test("Expired, forged, garbled or missing tokens are refused")
    func refused() async throws {
        let (authenticator, signer) = try await Self.setUp()
        let expired = try await signer.sign(Claims(sub: "alice", exp: .init(value: .now - 60)))
        #expect(await authenticator.decide(Self.credentials(expired)).decision == .refuse(.badUserNameOrPassword))
        let other = JWTKeyCollection()
        await other.add(ecdsa: ES256PrivateKey())
        let forged = try await other.sign(Claims(sub: "alice", exp: .init(value: .now + 60)))
        #expect(await authenticator.decide(Self.credentials(forged)).decision == .refuse(.badUserNameOrPassword))
        #expect(await authenticator.decide(Self.credentials("not.a.token")).decision == .refuse(.badUserNameOrPassword))
        var none = Self.credentials("")
        none.password = nil
        #expect(await authenticator.decide(none).decision == .refuse(.notAuthorized))
    }

    @Test("With an audience configured, the token must name it")
    func audience() async throws {
        let (authenticator, signer) = try await Self.setUp(audience: "petrel")
        let right = try await signer.sign(Claims(sub: "a", exp: .init(value: .now + 60), aud: "petrel"))
        let wrong = try await signer.sign(Claims(sub: "a", exp: .init(value: .now + 60), aud: "other"))
        let missing = try await signer.sign(Claims(sub: "a", exp: .init(value: .now + 60)))
        #expect(await authenticator.decide(Self.credentials(right)).decision == .accept(user: "a"))
        #expect(await authenticator.decide(Self.credentials(wrong)).decision == .refuse(.badUserNameOrPassword))
        #expect(await authenticator.decide(Self.credentials(missing)).decision == .refuse(.badUserNameOrPassword))
    }

    @Test("A file that holds no public key stops the start")
    func badKeyFile() async throws {
        let path = NSTemporaryDirectory() + "petrel-jwt-bad-\(UUID().uuidString).pem"
        try "not a key".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        await #expect(throws: JWTAuthenticator.LoadError.self) {
            _ = try await JWTAuthenticator.load(keyFile: path, jwksFile: nil, audience: nil)
        }
    }
}
