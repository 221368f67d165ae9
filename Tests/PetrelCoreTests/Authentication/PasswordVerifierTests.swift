import NIOCore
import Testing

@testable import PetrelCore

/// Mosquitto's password hashes next to Petrel's own. Vectors: the `$7$` and `$6$` lines were computed with
/// Python's hashlib (PBKDF2-HMAC-SHA512, 101 iterations; SHA-512 of password + salt), the last one is
/// `mosquitto_passwd -c -b FILE alice wonderland` output.
@Suite("Password hashes: Petrel's and Mosquitto's formats")
struct PasswordVerifierTests {
    static let pbkdf2Line = "$7$101$MDEyMzQ1Njc4OWFi$eJiZ4YFwBRSvai5sQGIfIDjhBnLw2qXSBFWaXTTIfNPeIfhlH/+p/itcr2mc1/7mZ5dzJFUBj8EnQLv8Y0DomA=="
    static let sha512Line = "$6$MDEyMzQ1Njc4OWFi$XohmfblSkQmjgs9Bay/PTmYbo2AT4ogft+J1WTbhanRnclqzZGJtHlhnlY6wLX95JHpJ/E5ouvrFm33e/MrjRQ=="
    static let mosquittoPasswdLine =
        "$7$101$kQVvy98TsI7f5s5Y$G5SbZXYV+hVhVI2BpDsoO1bpPufMOphNa/Sw8pVngHDXHJ0lP4Yo1qostNbhEjXXVOwsBMp7csIDHXZWbFBicA=="

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("$7$ (PBKDF2-HMAC-SHA512) checks the right password and no other")
    func pbkdf2() throws {
        let verifier = try #require(PasswordVerifier(text: Self.pbkdf2Line))
        #expect(verifier.matches(password: Self.bytes("wonderland")))
        #expect(!verifier.matches(password: Self.bytes("wonderlanD")))
        #expect(!verifier.matches(password: []))
        #expect(verifier.text == Self.pbkdf2Line)
        #expect(verifier.scramCredential == nil)
        let fromMosquitto = try #require(PasswordVerifier(text: Self.mosquittoPasswdLine))
        #expect(fromMosquitto.matches(password: Self.bytes("wonderland")))
    }

    @Test("$6$ (salted SHA-512) checks the right password and no other")
    func sha512() throws {
        let verifier = try #require(PasswordVerifier(text: Self.sha512Line))
        #expect(verifier.matches(password: Self.bytes("builder")))
        #expect(!verifier.matches(password: Self.bytes("builder ")))
        #expect(verifier.text == Self.sha512Line)
    }

    @Test("A $7$ verifier made here is what Mosquitto would make from the same salt")
    func makesMosquittoLines() {
        let made = PasswordVerifier.mosquitto(password: "wonderland", salt: Self.bytes("0123456789ab"))
        #expect(made.text == Self.pbkdf2Line)
    }

    @Test(
        "Malformed hashes are refused",
        arguments: [
            "$7$0$MDEy$AAAA", "$7$abc$MDEy$" + String(repeating: "A", count: 88), "$7$101$$" + String(repeating: "A", count: 88),
            "$7$101$MDEy$AAAA", "$6$MDEy$AAAA", "$5$MDEy$AAAA", "$7$101$MDEy", "plain", "",
        ]
    )
    func malformed(text: String) {
        #expect(PasswordVerifier(text: text) == nil)
    }

    @Test("One file holds users in all three formats; SCRAM only for Petrel's")
    func mixedFile() throws {
        var file = PasswordFile()
        file.set(user: "carol", credential: SCRAMCredential(password: "secret", salt: Self.bytes("salt-carol"), iterations: 64))
        let text = "alice:\(Self.pbkdf2Line)\r\nbob:\(Self.sha512Line)\n" + file.render()
        let parsed = try PasswordFile(parsing: text)
        #expect(parsed.entries.map(\.user) == ["alice", "bob", "carol"])
        let authenticator = PasswordAuthenticator(file: parsed, allowAnonymous: false)
        func login(_ user: String, _ password: String) -> AuthenticationDecision {
            authenticator.authenticate(
                ConnectCredentials(
                    protocolVersion: .v5,
                    clientIdentifier: "c",
                    username: user,
                    password: Self.bytes(password),
                    remoteAddress: "127.0.0.1:1"
                )
            )
        }
        #expect(login("alice", "wonderland") == .accept(user: "alice"))
        #expect(login("bob", "builder") == .accept(user: "bob"))
        #expect(login("carol", "secret") == .accept(user: "carol"))
        #expect(login("alice", "builder") == .refuse(.badUserNameOrPassword))
        #expect(parsed.users["carol"]?.scramCredential != nil)
        #expect(parsed.users["alice"]?.scramCredential == nil)
        #expect(try PasswordFile(parsing: parsed.render()) == parsed)
    }
}

@Suite("Failed logins are answered later and later per address")
struct LoginThrottleTests {
    @Test("Each failure doubles the wait up to the maximum; a success starts again")
    func doubling() {
        var settings = LoginThrottle.Settings()
        settings.baseDelay = .milliseconds(100)
        settings.maximumDelay = .seconds(1)
        let throttle = LoginThrottle(settings: settings)
        let waits = (0..<6).map { throttle.failed(from: "10.0.0.1", now: at(Int64($0))) }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(throttle.failed(from: "10.0.0.2", now: at(6)) == .milliseconds(100))
        throttle.succeeded(from: "10.0.0.1")
        #expect(throttle.failed(from: "10.0.0.1", now: at(7)) == .milliseconds(100))
    }

    @Test("An address quiet for long enough is forgiven")
    func forgets() {
        var settings = LoginThrottle.Settings()
        settings.forgetAfter = .seconds(60)
        let throttle = LoginThrottle(settings: settings)
        _ = throttle.failed(from: "10.0.0.1", now: at(0))
        _ = throttle.failed(from: "10.0.0.1", now: at(1))
        #expect(throttle.failed(from: "10.0.0.1", now: at(100)) == settings.baseDelay)
    }

    @Test("Memory is bounded: beyond the capacity the oldest addresses are forgotten")
    func bounded() {
        var settings = LoginThrottle.Settings()
        settings.capacity = 100
        let throttle = LoginThrottle(settings: settings)
        for index in 0..<1_000 { _ = throttle.failed(from: "10.0.\(index / 256).\(index % 256)", now: at(0, milliseconds: Int64(index))) }
        #expect(throttle.count <= 100)
    }

    @Test("The host of an address, without its port", arguments: [
        ("127.0.0.1:5000", "127.0.0.1"), ("[::1]:5000", "::1"), ("::1:5000", "::1"), ("unknown", "unknown"),
    ])
    func host(address: String, host: String) {
        #expect(LoginThrottle.host(of: address) == host)
    }

    @Test("A refused CONNECT carries the delay; the refusal is counted")
    func engine() {
        var configuration = BrokerConfiguration()
        configuration.authenticator = PasswordAuthenticator(file: PasswordFile(), allowAnonymous: false)
        let broker = Broker(configuration: configuration, now: at(0))
        var first = TestClient(broker, address: "192.0.2.7:1000")
        let refused = first.connect("c1", username: "mallory")
        #expect(connack(refused)?.reasonCode == .badUserNameOrPassword)
        #expect(refused.answerDelay == .milliseconds(100))
        var second = TestClient(broker, address: "192.0.2.7:1001")
        #expect(second.connect("c2", username: "mallory").answerDelay == .milliseconds(200))
        #expect(broker.statistics.authenticationFailures == 2)
    }
}
