import Crypto
import MQTTWire

/// SCRAM-SHA-256 (RFC 5802, RFC 7677) primitives.
public enum SCRAMSHA256 {
    /// The MQTT 5 Authentication Method name.
    public static let mechanism = "SCRAM-SHA-256"
    /// Iterations used for new credentials unless told otherwise (RFC 7677 recommends at least 4096).
    public static let defaultIterations = 4096
    /// Bytes of salt for new credentials.
    public static let saltLength = 16

    /// HMAC-SHA-256(key, data).
    public static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    public static func hash(_ data: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: data))
    }

    /// Hi(str, salt, i) of RFC 5802 section 2.2: PBKDF2 with HMAC-SHA-256 and one output block.
    public static func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var result = block
        var round = 1
        while round < iterations {
            block = Array(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for index in result.indices { result[index] ^= block[index] }
            round += 1
        }
        return result
    }

    /// Compares in time that depends only on the lengths, never on where the bytes differ.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    /// Base64 as used by SCRAM attributes and the password file.
    public static func base64Encode(_ bytes: [UInt8]) -> String { Base64.encode(bytes) }
    public static func base64Decode(_ string: String) -> [UInt8]? { Base64.decode(string) }
}

/// What the server keeps for one user: no password, only the salted keys (RFC 5802 section 3).
/// Written as `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`, the layout of
/// PostgreSQL's SCRAM verifiers.
public struct SCRAMCredential: Sendable, Hashable {
    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Derives the keys from a password.
    public init(password: String, salt: [UInt8], iterations: Int) {
        let salted = SCRAMSHA256.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations)
        let clientKey = SCRAMSHA256.hmac(key: salted, Array("Client Key".utf8))
        self.init(
            iterations: iterations,
            salt: salt,
            storedKey: SCRAMSHA256.hash(clientKey),
            serverKey: SCRAMSHA256.hmac(key: salted, Array("Server Key".utf8))
        )
    }

    /// Parses a verifier; nil when it is not one.
    public init?(verifier: String) {
        let parts = verifier.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == SCRAMSHA256.mechanism else { return nil }
        let parameters = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        let keys = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard parameters.count == 2, keys.count == 2,
            let iterations = Int(parameters[0]), iterations >= 1, iterations <= 10_000_000,
            let salt = Base64.decode(parameters[1]), !salt.isEmpty,
            let storedKey = Base64.decode(keys[0]), storedKey.count == 32,
            let serverKey = Base64.decode(keys[1]), serverKey.count == 32
        else { return nil }
        self.init(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }

    public var verifier: String {
        "\(SCRAMSHA256.mechanism)$\(self.iterations):\(Base64.encode(self.salt))$"
            + "\(Base64.encode(self.storedKey)):\(Base64.encode(self.serverKey))"
    }

    /// Whether `password` derives the same StoredKey (constant-time comparison).
    public func matches(password: [UInt8]) -> Bool {
        let salted = SCRAMSHA256.saltedPassword(password, salt: self.salt, iterations: self.iterations)
        let clientKey = SCRAMSHA256.hmac(key: salted, Array("Client Key".utf8))
        return SCRAMSHA256.constantTimeEqual(SCRAMSHA256.hash(clientKey), self.storedKey)
    }
}

/// The server side of SCRAM-SHA-256 over MQTT 5 AUTH (RFC 5802 section 5, without channel binding):
/// client-first-message in CONNECT, server-first-message in AUTH 0x18, client-final-message in AUTH 0x18,
/// server-final-message (`v=`) in the CONNACK.
///
/// Refusals: 0x8C for a GS2 header other than `n,,` (channel binding, authorization identity), 0x87 for a
/// malformed message, 0x86 for an unknown user or a wrong proof. An unknown user gets a made-up salt and is
/// refused only after the proof, so the exchange does not tell which users exist.
public struct SCRAMServerExchange: AuthenticationExchange {
    private enum State {
        case awaitingClientFirst
        case awaitingClientFinal(
            user: String,
            credential: SCRAMCredential,
            known: Bool,
            clientFirstBare: String,
            serverFirst: String,
            nonce: String
        )
        case finished
    }

    private let lookup: @Sendable (String) -> SCRAMCredential?
    private var state: State = .awaitingClientFirst

    /// `lookup` returns the stored credential of a user name, or nil.
    public init(lookup: @escaping @Sendable (String) -> SCRAMCredential?) {
        self.lookup = lookup
    }

    public mutating func step(_ data: [UInt8], random: inout any RandomNumberGenerator) -> AuthenticationStep {
        switch self.state {
        case .finished:
            return .failure(.protocolError)
        case .awaitingClientFirst:
            return self.clientFirst(data, random: &random)
        case .awaitingClientFinal(let user, let credential, let known, let clientFirstBare, let serverFirst, let nonce):
            self.state = .finished
            return Self.clientFinal(
                data,
                user: user,
                credential: credential,
                known: known,
                clientFirstBare: clientFirstBare,
                serverFirst: serverFirst,
                nonce: nonce
            )
        }
    }

    private mutating func clientFirst(_ data: [UInt8], random: inout any RandomNumberGenerator) -> AuthenticationStep {
        self.state = .finished
        guard let message = String(validating: data, as: UTF8.self) else { return .failure(.notAuthorized) }
        // gs2-header = gs2-cbind-flag "," [ authzid ] "," ; only "n,," is supported.
        let fields = message.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else { return .failure(.notAuthorized) }
        guard fields[0] == "n", fields[1].isEmpty else {
            // "y" or "p=..." (channel binding) or an authorization identity: not offered.
            let known = fields[0] == "y" || fields[0].hasPrefix("p=") || fields[0] == "n"
            return .failure(known ? .badAuthenticationMethod : .notAuthorized)
        }
        let clientFirstBare = String(fields[2])
        let attributes = clientFirstBare.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2,
            attributes[0].hasPrefix("n="), attributes[1].hasPrefix("r="),
            let user = Self.decodeSASLName(attributes[0].dropFirst(2)), !user.isEmpty
        else { return .failure(.notAuthorized) }
        let clientNonce = attributes[1].dropFirst(2)
        guard !clientNonce.isEmpty, clientNonce.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") })
        else { return .failure(.notAuthorized) }
        // Extensions are ignored, except that a mandatory one ("m=") cannot be honoured (RFC 5802 section 5.1).
        if attributes.dropFirst(2).contains(where: { $0.hasPrefix("m=") }) { return .failure(.notAuthorized) }

        let serverNonce = Base64.encode(Self.randomBytes(18, &random))
        let nonce = String(clientNonce) + serverNonce
        let credential: SCRAMCredential
        let known: Bool
        if let stored = self.lookup(user) {
            credential = stored
            known = true
        } else {
            credential = SCRAMCredential(
                iterations: SCRAMSHA256.defaultIterations,
                salt: Self.randomBytes(SCRAMSHA256.saltLength, &random),
                storedKey: Self.randomBytes(32, &random),
                serverKey: Self.randomBytes(32, &random)
            )
            known = false
        }
        let serverFirst = "r=\(nonce),s=\(Base64.encode(credential.salt)),i=\(credential.iterations)"
        self.state = .awaitingClientFinal(
            user: user,
            credential: credential,
            known: known,
            clientFirstBare: clientFirstBare,
            serverFirst: serverFirst,
            nonce: nonce
        )
        return .continue(Array(serverFirst.utf8))
    }

    static func clientFinal(
        _ data: [UInt8],
        user: String,
        credential: SCRAMCredential,
        known: Bool,
        clientFirstBare: String,
        serverFirst: String,
        nonce: String
    ) -> AuthenticationStep {
        guard let message = String(validating: data, as: UTF8.self) else { return .failure(.notAuthorized) }
        // client-final-message = "c=" base64(gs2-header) ",r=" nonce *("," extension) ",p=" proof
        let bytes = Array(message.utf8)
        guard let proofStart = Self.lastIndex(of: Array(",p=".utf8), in: bytes) else { return .failure(.notAuthorized) }
        let withoutProof = String(decoding: bytes[..<proofStart], as: UTF8.self)
        let proofText = String(decoding: bytes[(proofStart + 3)...], as: UTF8.self)
        let attributes = withoutProof.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2, attributes[0] == "c=\(Base64.encode(Array("n,,".utf8)))" else {
            return .failure(.notAuthorized)
        }
        guard attributes[1] == "r=\(nonce)" else { return .failure(.notAuthorized) }
        guard let proof = Base64.decode(proofText), proof.count == 32 else {
            return .failure(.notAuthorized)
        }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = SCRAMSHA256.hmac(key: credential.storedKey, authMessage)
        var clientKey = proof
        for index in clientKey.indices { clientKey[index] ^= clientSignature[index] }
        let proofValid = SCRAMSHA256.constantTimeEqual(SCRAMSHA256.hash(clientKey), credential.storedKey)
        guard proofValid && known else { return .failure(.badUserNameOrPassword) }
        let serverSignature = SCRAMSHA256.hmac(key: credential.serverKey, authMessage)
        return .success(user: user, data: Array("v=\(Base64.encode(serverSignature))".utf8))
    }

    private static func lastIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var start = haystack.count - needle.count
        while start >= 0 {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
            start -= 1
        }
        return nil
    }

    /// saslname: "=2C" stands for "," and "=3D" for "="; any other "=" is invalid (RFC 5802 section 5.1).
    static func decodeSASLName(_ name: Substring) -> String? {
        var result = ""
        var index = name.startIndex
        while index < name.endIndex {
            let character = name[index]
            if character == "=" {
                let escape = name[index...].prefix(3)
                switch escape {
                case "=2C": result.append(",")
                case "=3D": result.append("=")
                default: return nil
                }
                index = name.index(index, offsetBy: 3)
            } else {
                result.append(character)
                index = name.index(after: index)
            }
        }
        return result
    }

    private static func randomBytes(_ count: Int, _ random: inout any RandomNumberGenerator) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            var word = random.next()
            for _ in 0..<8 where bytes.count < count {
                bytes.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return bytes
    }
}
