import Crypto
import _CryptoExtras

/// What a password file keeps for one user, in one of three formats:
///
/// - Petrel's own, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`: plain User Name / Password
///   at CONNECT and SCRAM-SHA-256 enhanced authentication (MQTT 5).
/// - Mosquitto's `$7$<iterations>$<base64 salt>$<base64 hash>`: PBKDF2-HMAC-SHA512 with a 64-byte hash, what
///   `mosquitto_passwd` writes (101 iterations by default). User Name / Password only.
/// - Mosquitto's older `$6$<base64 salt>$<base64 hash>`: SHA-512 of the password followed by the salt.
///   User Name / Password only.
///
/// SCRAM needs the server to hold keys derived from the password with SCRAM's own function, which Mosquitto's
/// hashes are not: a user stored in a Mosquitto format cannot use SCRAM-SHA-256.
public enum PasswordVerifier: Sendable, Hashable {
    case scram(SCRAMCredential)
    case mosquittoPBKDF2(iterations: Int, salt: [UInt8], hash: [UInt8])
    case mosquittoSHA512(salt: [UInt8], hash: [UInt8])

    /// Iterations `mosquitto_passwd` uses when not told otherwise.
    public static let mosquittoDefaultIterations = 101
    public static let mosquittoSaltLength = 12
    private static let maximumIterations = 10_000_000

    /// A `$7$` verifier for `password`, as `mosquitto_passwd` makes one.
    public static func mosquitto(password: String, salt: [UInt8], iterations: Int = mosquittoDefaultIterations) -> Self {
        .mosquittoPBKDF2(iterations: iterations, salt: salt, hash: pbkdf2(Array(password.utf8), salt: salt, iterations: iterations))
    }

    /// Parses the part of a password file line after `user:`; nil when it is none of the formats.
    public init?(text: String) {
        if let credential = SCRAMCredential(verifier: text) {
            self = .scram(credential)
            return
        }
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].isEmpty else { return nil }
        switch parts[1] {
        case "7" where parts.count == 5:
            guard let iterations = Int(parts[2]), iterations >= 1, iterations <= Self.maximumIterations,
                let salt = Base64.decode(parts[3]), !salt.isEmpty,
                let hash = Base64.decode(parts[4]), hash.count == 64
            else { return nil }
            self = .mosquittoPBKDF2(iterations: iterations, salt: salt, hash: hash)
        case "6" where parts.count == 4:
            guard let salt = Base64.decode(parts[2]), !salt.isEmpty,
                let hash = Base64.decode(parts[3]), hash.count == 64
            else { return nil }
            self = .mosquittoSHA512(salt: salt, hash: hash)
        default:
            return nil
        }
    }

    /// The text after `user:` in the file.
    public var text: String {
        switch self {
        case .scram(let credential):
            credential.verifier
        case .mosquittoPBKDF2(let iterations, let salt, let hash):
            "$7$\(iterations)$\(Base64.encode(salt))$\(Base64.encode(hash))"
        case .mosquittoSHA512(let salt, let hash):
            "$6$\(Base64.encode(salt))$\(Base64.encode(hash))"
        }
    }

    /// The SCRAM keys, for users stored in Petrel's format.
    public var scramCredential: SCRAMCredential? {
        if case .scram(let credential) = self { return credential }
        return nil
    }

    /// Whether `password` is the user's (constant-time comparison of the hashes).
    public func matches(password: [UInt8]) -> Bool {
        switch self {
        case .scram(let credential):
            return credential.matches(password: password)
        case .mosquittoPBKDF2(let iterations, let salt, let hash):
            return SCRAMSHA256.constantTimeEqual(Self.pbkdf2(password, salt: salt, iterations: iterations), hash)
        case .mosquittoSHA512(let salt, let hash):
            var hasher = SHA512()
            hasher.update(data: password)
            hasher.update(data: salt)
            return SCRAMSHA256.constantTimeEqual(Array(hasher.finalize()), hash)
        }
    }

    private static func pbkdf2(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        // Mosquitto's iteration counts (101 by default) are below the library's recommended floor, hence the
        // unchecked variant; the count comes from the operator's file.
        guard
            let key = try? KDF.Insecure.PBKDF2.deriveKey(
                from: password,
                salt: salt,
                using: .sha512,
                outputByteCount: 64,
                unsafeUncheckedRounds: iterations
            )
        else { return [] }
        return key.withUnsafeBytes { Array($0) }
    }
}
