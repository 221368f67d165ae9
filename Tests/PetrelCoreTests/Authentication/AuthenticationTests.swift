import NIOCore
import Testing

@testable import PetrelCore

private let method = SCRAMSHA256.mechanism

/// A broker whose users come from a password file: alice / wonderland (4096 iterations), bob / builder.
private func passwordBroker(allowAnonymous: Bool = false) -> Broker {
    var file = PasswordFile()
    file.set(user: "alice", credential: SCRAMCredential(password: "wonderland", salt: bytes("alice-salt-16byt"), iterations: 4096))
    file.set(user: "bob", credential: SCRAMCredential(password: "builder", salt: bytes("bob-salt"), iterations: 100))
    var configuration = BrokerConfiguration()
    configuration.authenticator = PasswordAuthenticator(file: file, allowAnonymous: allowAnonymous)
    return Broker(configuration: configuration, now: at(0))
}

/// A connection whose state machine has a (seeded) random source, as the server's has.
private struct AuthClient {
    let waker = RecordingWaker()
    var machine: ConnectionStateMachine
    let version: ProtocolVersion

    init(_ broker: Broker, version: ProtocolVersion = .v5, random: Bool = true) {
        self.version = version
        self.machine = ConnectionStateMachine(
            broker: broker,
            waker: self.waker,
            remoteAddress: "127.0.0.1:9",
            now: at(0),
            random: random ? SeededGenerator(seed: 7) : nil
        )
    }

    @discardableResult
    mutating func send(_ packet: MQTTPacket, at now: NIODeadline = at(0)) -> ConnectionActions {
        self.machine.receive(packet, now: now)
    }

    @discardableResult
    mutating func connect(
        _ clientIdentifier: String = "c",
        username: String? = nil,
        password: String? = nil,
        properties: MQTTProperties = .init()
    ) -> ConnectionActions {
        self.send(
            .connect(
                MQTTPacket.Connect(
                    protocolVersion: self.version,
                    clientIdentifier: clientIdentifier,
                    cleanStart: true,
                    keepAlive: 60,
                    username: username,
                    password: password.map { ByteBuffer(string: $0) },
                    properties: properties
                )
            )
        )
    }

    @discardableResult
    mutating func auth(_ reason: ReasonCode, method: String = SCRAMSHA256.mechanism, data: [UInt8]?) -> ConnectionActions {
        self.send(.auth(MQTTPacket.Auth(reasonCode: reason, properties: .authentication(method, data))))
    }

    /// Runs a whole SCRAM exchange at CONNECT; returns the last actions.
    mutating func scramConnect(_ scram: SCRAMTestClient, tamper: Bool = false) throws -> (ConnectionActions, SCRAMTestClient.Final) {
        let first = self.connect(properties: .authentication(method, scram.clientFirst))
        let challenge = try #require(authPacket(first))
        let serverFirst = try #require(challenge.properties.authenticationDataString)
        let final = try #require(scram.clientFinal(serverFirst: serverFirst, tamperProof: tamper))
        return (self.auth(.continueAuthentication, data: final.message), final)
    }
}

private func authPacket(_ actions: ConnectionActions) -> MQTTPacket.Auth? {
    guard case .packet(.auth(let auth))? = actions.outbound.first else { return nil }
    return auth
}

private let alice = SCRAMTestClient(user: "alice", password: "wonderland", clientNonce: "fyko+d2lbbFgONRv9qkxdawL")

@Suite("Authentication: user name and password at CONNECT")
struct PlainPasswordTests {
    @Test("good password is accepted (v5, 3.1.1, 3.1)", arguments: [ProtocolVersion.v5, .v3_1_1, .v3_1])
    func goodPassword(version: ProtocolVersion) throws {
        var client = AuthClient(passwordBroker(), version: version)
        let ack = try #require(connack(client.connect(username: "alice", password: "wonderland")))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.authenticationMethod == nil)  // [MQTT-4.12.0-6]
        #expect(client.machine.isConnected)
        #expect(client.machine.authenticatedUser == "alice")
    }

    @Test("v5 wrong password or unknown user: CONNACK 0x86 and close")
    func badPasswordV5() throws {
        for (user, password) in [("alice", "nope"), ("mallory", "wonderland"), ("alice", nil)] as [(String, String?)] {
            var client = AuthClient(passwordBroker())
            let actions = client.connect(username: user, password: password)
            #expect(connack(actions)?.reasonCode == .badUserNameOrPassword)
            #expect(actions.close)
            #expect(!client.machine.isConnected)
        }
    }

    @Test("3.1.1 wrong password: return code 0x04; anonymous when not allowed: 0x05")
    func badPasswordV311() throws {
        var client = AuthClient(passwordBroker(), version: .v3_1_1)
        let bad = client.connect(username: "bob", password: "wrong")
        let badAck = try #require(connack(bad))
        #expect(LegacyConnectReturnCode(badAck.reasonCode) == .badUserNameOrPassword)
        #expect(bad.close)
        var anonymous = AuthClient(passwordBroker(), version: .v3_1_1)
        let refused = anonymous.connect()
        let refusedAck = try #require(connack(refused))
        #expect(LegacyConnectReturnCode(refusedAck.reasonCode) == .notAuthorized)
        #expect(refused.close)
    }

    @Test("anonymous clients: 0x87 Not authorized unless allowed")
    func anonymous() throws {
        var refused = AuthClient(passwordBroker(allowAnonymous: false))
        #expect(connack(refused.connect())?.reasonCode == .notAuthorized)
        var allowed = AuthClient(passwordBroker(allowAnonymous: true))
        #expect(connack(allowed.connect())?.reasonCode == .success)
        #expect(allowed.machine.authenticatedUser == nil)
        // A user name still has to match when anonymity is allowed.
        var wrong = AuthClient(passwordBroker(allowAnonymous: true))
        #expect(connack(wrong.connect(username: "alice", password: "x"))?.reasonCode == .badUserNameOrPassword)
    }

    @Test("the default authenticator lets everyone in")
    func allowAll() throws {
        var client = AuthClient(Broker(now: at(0)))
        #expect(connack(client.connect(username: "anyone", password: "anything"))?.reasonCode == .success)
    }
}

@Suite("Authentication: SCRAM-SHA-256 over AUTH")
struct SCRAMExchangeTests {
    @Test("[MQTT-4.12.0-2] [MQTT-4.12.0-5] full exchange: AUTH 0x18 then CONNACK 0x00 with method and v=")
    func fullExchange() throws {
        var client = AuthClient(passwordBroker())
        let first = client.connect(properties: .authentication(method, alice.clientFirst))
        #expect(!first.close)
        let challenge = try #require(authPacket(first))
        #expect(challenge.reasonCode == .continueAuthentication)
        #expect(challenge.properties.authenticationMethod == method)
        let serverFirst = try #require(challenge.properties.authenticationDataString)
        #expect(serverFirst.hasPrefix("r=\(alice.clientNonce)"))
        #expect(serverFirst.hasSuffix(",s=\(Base64.encode(bytes("alice-salt-16byt"))),i=4096"))
        #expect(!client.machine.isConnected)

        let final = try #require(alice.clientFinal(serverFirst: serverFirst))
        let done = client.auth(.continueAuthentication, data: final.message)
        let ack = try #require(connack(done))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.authenticationMethod == method)
        #expect(ack.properties.authenticationDataString == final.expectedServerFinal)
        #expect(!done.close)
        #expect(client.machine.isConnected)
        #expect(client.machine.authenticatedUser == "alice")
        #expect(client.machine.keepAlive == 60)
        // The session works afterwards.
        #expect(client.send(.pingreq).nonPublishPackets == [.pingresp])
    }

    @Test("RFC 7677 test vector: keys, client proof check and server signature")
    func rfc7677Vector() throws {
        let salt = try #require(Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        let credential = SCRAMCredential(password: "pencil", salt: salt, iterations: 4096)
        #expect(credential.matches(password: bytes("pencil")))
        #expect(!credential.matches(password: bytes("pencil2")))
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let step = SCRAMServerExchange.clientFinal(
            bytes("c=biws,r=\(nonce),p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            user: "user",
            credential: credential,
            known: true,
            clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
            serverFirst: "r=\(nonce),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            nonce: nonce
        )
        #expect(step == .success(user: "user", data: bytes("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")))
        // The test client computes the same proof.
        let client = SCRAMTestClient(user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        let final = try #require(client.clientFinal(serverFirst: "r=\(nonce),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
        #expect(String(decoding: final.message, as: UTF8.self) == "c=biws,r=\(nonce),p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        #expect(final.expectedServerFinal == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    @Test("[MQTT-4.12.0-4] wrong proof: CONNACK 0x86 and close")
    func wrongProof() throws {
        var client = AuthClient(passwordBroker())
        let (actions, _) = try client.scramConnect(alice, tamper: true)
        let ack = try #require(connack(actions))
        #expect(ack.reasonCode == .badUserNameOrPassword)
        #expect(ack.properties.authenticationData == nil)
        #expect(actions.close)
        #expect(!client.machine.isConnected)
    }

    @Test("unknown user: a made-up challenge, then CONNACK 0x86")
    func unknownUser() throws {
        var client = AuthClient(passwordBroker())
        let mallory = SCRAMTestClient(user: "mallory", password: "x", clientNonce: "abc")
        let (actions, _) = try client.scramConnect(mallory)
        #expect(connack(actions)?.reasonCode == .badUserNameOrPassword)
        #expect(actions.close)
    }

    @Test("wrong password: CONNACK 0x86")
    func wrongPassword() throws {
        var client = AuthClient(passwordBroker())
        var wrong = alice
        wrong.password = "looking-glass"
        let (actions, _) = try client.scramConnect(wrong)
        #expect(connack(actions)?.reasonCode == .badUserNameOrPassword)
    }

    @Test("[MQTT-4.12.0-1] unsupported Authentication Method: CONNACK 0x8C and close")
    func unsupportedMethod() throws {
        var client = AuthClient(passwordBroker())
        let actions = client.connect(properties: .authentication("SCRAM-SHA-1", alice.clientFirst))
        #expect(connack(actions)?.reasonCode == .badAuthenticationMethod)
        #expect(actions.close)
        // Without a random source no enhanced method can run.
        var noRandom = AuthClient(passwordBroker(), random: false)
        #expect(connack(noRandom.connect(properties: .authentication(method, alice.clientFirst)))?.reasonCode == .badAuthenticationMethod)
    }

    @Test("GS2 headers other than n,, are refused with 0x8C; malformed messages with 0x87")
    func unsupportedGS2() throws {
        for header in ["y,,", "p=tls-unique,,", "n,a=admin,"] {
            var client = AuthClient(passwordBroker())
            var scram = alice
            scram.gs2Header = header
            let actions = client.connect(properties: .authentication(method, scram.clientFirst))
            #expect(connack(actions)?.reasonCode == .badAuthenticationMethod, "\(header)")
            #expect(actions.close)
        }
        for message in ["", "n,,", "n,,r=abc", "n,,n=alice", "x,,n=alice,r=abc", "n,,n=al=ice,r=abc", "n,,n=alice,r=a b"] {
            var client = AuthClient(passwordBroker())
            let actions = client.connect(properties: .authentication(method, bytes(message)))
            #expect(connack(actions)?.reasonCode == .notAuthorized, "\(message)")
            #expect(actions.close)
        }
    }

    @Test("client-final with a wrong nonce or channel binding: 0x87")
    func badClientFinal() throws {
        for mangle in ["c=eSws,r=NONCE,p=PROOF", "c=biws,r=other,p=PROOF", "c=biws,r=NONCE", "c=biws,r=NONCE,p=!!"] {
            var client = AuthClient(passwordBroker())
            let challenge = try #require(authPacket(client.connect(properties: .authentication(method, alice.clientFirst))))
            let serverFirst = try #require(challenge.properties.authenticationDataString)
            let nonce = String(serverFirst.split(separator: ",")[0].dropFirst(2))
            let message = mangle.replacing("NONCE", with: nonce).replacing("PROOF", with: Base64.encode([UInt8](repeating: 1, count: 32)))
            let actions = client.auth(.continueAuthentication, data: bytes(message))
            #expect(connack(actions)?.reasonCode == .notAuthorized, "\(mangle)")
            #expect(actions.close)
        }
    }

    @Test("[MQTT-3.1.2-30] packets other than AUTH or DISCONNECT during the exchange: CONNACK 0x82 and close")
    func packetsDuringExchange() throws {
        let others: [MQTTPacket] = [
            .pingreq,
            .publish(MQTTPacket.Publish(topic: "a", payload: ByteBuffer(string: "x"), qos: .atMostOnce)),
            .subscribe(MQTTPacket.Subscribe(packetIdentifier: 1, subscriptions: [MQTTPacket.TopicSubscription(filter: "a", qos: .atMostOnce)])),
            .connect(MQTTPacket.Connect(protocolVersion: .v5, clientIdentifier: "c")),
        ]
        for packet in others {
            var client = AuthClient(passwordBroker())
            client.connect(properties: .authentication(method, alice.clientFirst))
            let actions = client.send(packet)
            #expect(connack(actions)?.reasonCode == .protocolError, "\(packet.type)")
            #expect(actions.close)
            #expect(!client.machine.isConnected)
        }
    }

    @Test("[MQTT-4.12.0-3] [MQTT-4.12.0-5] AUTH out of order or with another method during the exchange: 0x82")
    func authOutOfOrder() throws {
        var reauth = AuthClient(passwordBroker())
        reauth.connect(properties: .authentication(method, alice.clientFirst))
        #expect(connack(reauth.auth(.reAuthenticate, data: alice.clientFirst))?.reasonCode == .protocolError)

        var success = AuthClient(passwordBroker())
        success.connect(properties: .authentication(method, alice.clientFirst))
        #expect(connack(success.auth(.success, data: nil))?.reasonCode == .protocolError)

        var otherMethod = AuthClient(passwordBroker())
        otherMethod.connect(properties: .authentication(method, alice.clientFirst))
        #expect(connack(otherMethod.auth(.continueAuthentication, method: "PLAIN", data: nil))?.reasonCode == .protocolError)

        var noMethod = AuthClient(passwordBroker())
        noMethod.connect(properties: .authentication(method, alice.clientFirst))
        let actions = noMethod.send(.auth(MQTTPacket.Auth(reasonCode: .continueAuthentication)))
        #expect(connack(actions)?.reasonCode == .protocolError)
        #expect(actions.close)
    }

    @Test("DISCONNECT during the exchange closes quietly; the connect timeout bounds the exchange")
    func disconnectAndTimeout() throws {
        var client = AuthClient(passwordBroker())
        client.connect(properties: .authentication(method, alice.clientFirst))
        let actions = client.send(.disconnect(MQTTPacket.Disconnect()))
        #expect(actions.close)
        #expect(actions.outbound.isEmpty)

        var slow = AuthClient(passwordBroker())
        slow.connect(properties: .authentication(method, alice.clientFirst))
        #expect(!slow.machine.tick(now: at(5)).close)
        let timedOut = slow.machine.tick(now: at(10))
        #expect(timedOut.close)
        #expect(timedOut.outbound.isEmpty)
    }
}

@Suite("Authentication: re-authentication")
struct ReauthenticationTests {
    private func connected() throws -> AuthClient {
        var client = AuthClient(passwordBroker())
        let (actions, _) = try client.scramConnect(alice)
        #expect(connack(actions)?.reasonCode == .success)
        return client
    }

    @Test("[MQTT-4.12.1-1] AUTH 0x19, AUTH 0x18 exchange, then AUTH 0x00 with v=")
    func success() throws {
        var client = try connected()
        var again = alice
        again.clientNonce = "second-nonce"
        let challenge = try #require(authPacket(client.auth(.reAuthenticate, data: again.clientFirst)))
        #expect(challenge.reasonCode == .continueAuthentication)
        #expect(challenge.properties.authenticationMethod == method)
        let serverFirst = try #require(challenge.properties.authenticationDataString)
        let final = try #require(again.clientFinal(serverFirst: serverFirst))
        let actions = client.auth(.continueAuthentication, data: final.message)
        let done = try #require(authPacket(actions))
        #expect(done.reasonCode == .success)
        #expect(done.properties.authenticationMethod == method)
        #expect(done.properties.authenticationDataString == final.expectedServerFinal)
        #expect(!actions.close)
        #expect(client.machine.isConnected)
        // Other packets keep flowing, and another re-authentication may follow.
        #expect(client.send(.pingreq).nonPublishPackets == [.pingresp])
        #expect(authPacket(client.auth(.reAuthenticate, data: again.clientFirst))?.reasonCode == .continueAuthentication)
    }

    @Test("[MQTT-4.12.1-2] failed re-authentication: DISCONNECT 0x86 and close")
    func failure() throws {
        var client = try connected()
        let challenge = try #require(authPacket(client.auth(.reAuthenticate, data: alice.clientFirst)))
        let serverFirst = try #require(challenge.properties.authenticationDataString)
        let final = try #require(alice.clientFinal(serverFirst: serverFirst, tamperProof: true))
        let actions = client.auth(.continueAuthentication, data: final.message)
        #expect(disconnectReason(actions) == .badUserNameOrPassword)
        #expect(actions.close)
        #expect(!client.machine.isConnected)
    }

    @Test("re-authenticating as another user: DISCONNECT 0x87")
    func otherUser() throws {
        var client = try connected()
        let bob = SCRAMTestClient(user: "bob", password: "builder", clientNonce: "n")
        let challenge = try #require(authPacket(client.auth(.reAuthenticate, data: bob.clientFirst)))
        let serverFirst = try #require(challenge.properties.authenticationDataString)
        let final = try #require(bob.clientFinal(serverFirst: serverFirst))
        let actions = client.auth(.continueAuthentication, data: final.message)
        #expect(disconnectReason(actions) == .notAuthorized)
        #expect(actions.close)
    }

    @Test("[MQTT-4.12.1-1] re-authentication with another method: DISCONNECT 0x82")
    func otherMethod() throws {
        var client = try connected()
        let actions = client.auth(.reAuthenticate, method: "SCRAM-SHA-1", data: alice.clientFirst)
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }

    @Test("AUTH 0x18 without a re-authentication in progress, or 0x19 during one: DISCONNECT 0x82")
    func outOfOrder() throws {
        var client = try connected()
        #expect(disconnectReason(client.auth(.continueAuthentication, data: nil)) == .protocolError)
        var during = try connected()
        during.auth(.reAuthenticate, data: alice.clientFirst)
        #expect(disconnectReason(during.auth(.reAuthenticate, data: alice.clientFirst)) == .protocolError)
    }

    @Test("[MQTT-4.12.0-7] AUTH from a client that connected without a method: DISCONNECT 0x82")
    func withoutMethod() throws {
        var client = AuthClient(passwordBroker())
        #expect(connack(client.connect(username: "alice", password: "wonderland"))?.reasonCode == .success)
        let actions = client.auth(.reAuthenticate, data: alice.clientFirst)
        #expect(disconnectReason(actions) == .protocolError)
        #expect(actions.close)
    }
}

@Suite("Authentication: password file and encodings")
struct PasswordFileTests {
    @Test("render and parse round trip; comments and blank lines ignored")
    func roundTrip() throws {
        var file = PasswordFile()
        file.set(user: "alice", credential: SCRAMCredential(password: "a", salt: bytes("salt-a"), iterations: 10))
        file.set(user: "bob", credential: SCRAMCredential(password: "b", salt: bytes("salt-b"), iterations: 20))
        file.set(user: "alice", credential: SCRAMCredential(password: "c", salt: bytes("salt-c"), iterations: 30))
        let text = "# users\n\n" + file.render()
        let parsed = try PasswordFile(parsing: text)
        #expect(parsed == file)
        #expect(parsed.entries.map(\.user) == ["alice", "bob"])
        #expect(parsed.users["alice"]?.matches(password: bytes("c")) == true)
        #expect(file.render().hasPrefix("alice:SCRAM-SHA-256$30:"))
    }

    @Test("errors name the line")
    func errors() throws {
        let good = SCRAMCredential(password: "a", salt: bytes("s"), iterations: 1).verifier
        let cases: [(String, Int)] = [
            ("alice", 1),
            ("\n:\(good)", 2),
            ("alice:SCRAM-SHA-1$1:c2FsdA==$AAAA:AAAA", 1),
            ("alice:\(good)\nalice:\(good)", 2),
            ("alice:SCRAM-SHA-256$0:c2FsdA==$\(good.split(separator: "$")[2])", 1),
        ]
        for (text, line) in cases {
            #expect(throws: PasswordFile.ParseError.self) { try PasswordFile(parsing: text) }
            do {
                _ = try PasswordFile(parsing: text)
            } catch {
                #expect(error.line == line, "\(text)")
            }
        }
    }

    @Test("base64 matches the RFC 4648 vectors and refuses non-canonical input")
    func base64() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(bytes(plain)) == encoded)
            #expect(Base64.decode(encoded) == bytes(plain))
        }
        for bad in ["Zg", "Zg=a", "Z===", "Zm9v!A==", "=Zm9"] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("constant-time comparison")
    func constantTime() {
        #expect(SCRAMSHA256.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!SCRAMSHA256.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!SCRAMSHA256.constantTimeEqual([1, 2], [1, 2, 3]))
    }
}
