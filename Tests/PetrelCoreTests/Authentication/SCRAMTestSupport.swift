import Crypto
import NIOCore

@testable import PetrelCore

/// The client side of SCRAM-SHA-256 (RFC 5802 section 3). It shares no code with the server side except
/// swift-crypto's HMAC / SHA-256 and the base64 codec (checked on its own against RFC 4648 vectors).
struct SCRAMTestClient {
    var user: String
    var password: String
    var clientNonce: String
    var gs2Header = "n,,"

    var clientFirstBare: String { "n=\(self.user),r=\(self.clientNonce)" }
    var clientFirst: [UInt8] { Array((self.gs2Header + self.clientFirstBare).utf8) }

    struct Final {
        var message: [UInt8]
        var expectedServerFinal: String
    }

    /// The client-final-message for `serverFirst`, and the server-final-message the client must then expect.
    func clientFinal(serverFirst: String, tamperProof: Bool = false) -> Final? {
        var attributes: [Substring: Substring] = [:]
        for attribute in serverFirst.split(separator: ",") {
            guard attribute.count >= 2, attribute.dropFirst().first == "=" else { return nil }
            attributes[attribute.prefix(1)] = attribute.dropFirst(2)
        }
        guard let nonce = attributes["r"], nonce.hasPrefix(self.clientNonce),
            let saltText = attributes["s"], let salt = Self.base64Decode(String(saltText)),
            let iterationsText = attributes["i"], let iterations = Int(iterationsText)
        else { return nil }
        let key = SymmetricKey(data: Array(self.password.utf8))
        var u = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var salted = u
        for _ in 1..<iterations {
            u = Array(HMAC<SHA256>.authenticationCode(for: u, using: key))
            salted = zip(salted, u).map { $0 ^ $1 }
        }
        let clientKey = Self.hmac(salted, "Client Key")
        let storedKey = Array(SHA256.hash(data: clientKey))
        let withoutProof = "c=\(Self.base64Encode(Array(self.gs2Header.utf8))),r=\(nonce)"
        let authMessage = "\(self.clientFirstBare),\(serverFirst),\(withoutProof)"
        let signature = Self.hmac(storedKey, authMessage)
        var proof = zip(clientKey, signature).map { $0 ^ $1 }
        if tamperProof { proof[0] ^= 0x01 }
        let serverKey = Self.hmac(salted, "Server Key")
        let serverSignature = Self.hmac(serverKey, authMessage)
        return Final(
            message: Array("\(withoutProof),p=\(Self.base64Encode(proof))".utf8),
            expectedServerFinal: "v=\(Self.base64Encode(serverSignature))"
        )
    }

    static func hmac(_ key: [UInt8], _ text: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key)))
    }

    static func base64Encode(_ bytes: [UInt8]) -> String { Base64.encode(bytes) }
    static func base64Decode(_ text: String) -> [UInt8]? { Base64.decode(text) }
}

extension MQTTProperties {
    static func authentication(_ method: String, _ data: [UInt8]?) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.authenticationMethod = method
        if let data { properties.authenticationData = ByteBuffer(bytes: data) }
        return properties
    }

    var authenticationDataString: String? {
        self.authenticationData.map { String(buffer: $0) }
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
