/// The contents of a password file: one user per line, `username:verifier`, where the verifier is a
/// `SCRAMCredential` (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`). Blank lines and lines
/// starting with `#` are ignored. User names cannot contain `:`. Parsing and rendering only: reading and
/// writing the file is the caller's business.
public struct PasswordFile: Sendable, Hashable {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(self.line): \(self.reason)" }
    }

    /// Users in file order.
    public private(set) var entries: [(user: String, credential: SCRAMCredential)] = []

    public init() {}

    public init(parsing text: String) throws(ParseError) {
        var seen = Set<String>()
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            let number = offset + 1
            guard let colon = line.firstIndex(of: ":") else {
                throw ParseError(line: number, reason: "expected username:SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
            }
            let user = String(line[..<colon])
            guard !user.isEmpty else { throw ParseError(line: number, reason: "empty user name") }
            guard let credential = SCRAMCredential(verifier: String(line[line.index(after: colon)...])) else {
                throw ParseError(line: number, reason: "invalid SCRAM-SHA-256 verifier for user \(user)")
            }
            guard seen.insert(user).inserted else { throw ParseError(line: number, reason: "duplicate user \(user)") }
            self.entries.append((user, credential))
        }
    }

    public var users: [String: SCRAMCredential] {
        Dictionary(self.entries.map { ($0.user, $0.credential) }, uniquingKeysWith: { first, _ in first })
    }

    /// Adds a user or replaces its credential in place.
    public mutating func set(user: String, credential: SCRAMCredential) {
        if let index = self.entries.firstIndex(where: { $0.user == user }) {
            self.entries[index].credential = credential
        } else {
            self.entries.append((user, credential))
        }
    }

    @discardableResult
    public mutating func remove(user: String) -> Bool {
        guard let index = self.entries.firstIndex(where: { $0.user == user }) else { return false }
        self.entries.remove(at: index)
        return true
    }

    /// The file's text, one line per user.
    public func render() -> String {
        self.entries.map { "\($0.user):\($0.credential.verifier)\n" }.joined()
    }

    public static func == (lhs: PasswordFile, rhs: PasswordFile) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.user == $1.user && $0.credential == $1.credential }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in self.entries {
            hasher.combine(entry.user)
            hasher.combine(entry.credential)
        }
    }
}

/// Users from a password file: plain User Name / Password at CONNECT (every version) and SCRAM-SHA-256
/// enhanced authentication (MQTT 5). Anonymous clients (no User Name, no Authentication Method) are let in only
/// when `allowAnonymous` is set; otherwise they get 0x87 Not authorized (3.1.1: 0x05). A wrong or unknown user
/// name or password gets 0x86 (3.1.1: 0x04).
public struct PasswordAuthenticator: Authenticator {
    public let users: [String: SCRAMCredential]
    public let allowAnonymous: Bool

    private static let decoy = SCRAMCredential(
        iterations: SCRAMSHA256.defaultIterations,
        salt: Array("petrel-decoy-salt".utf8),
        storedKey: [UInt8](repeating: 0, count: 32),
        serverKey: [UInt8](repeating: 0, count: 32)
    )

    public init(users: [String: SCRAMCredential], allowAnonymous: Bool) {
        self.users = users
        self.allowAnonymous = allowAnonymous
    }

    public init(file: PasswordFile, allowAnonymous: Bool) {
        self.init(users: file.users, allowAnonymous: allowAnonymous)
    }

    public func authenticate(_ credentials: ConnectCredentials) -> AuthenticationDecision {
        guard let user = credentials.username else {
            return self.allowAnonymous ? .accept(user: nil) : .refuse(.notAuthorized)
        }
        guard let credential = self.users[user], let password = credentials.password else {
            // The same work as a real check, so that the answer's timing does not tell which users exist.
            _ = Self.decoy.matches(password: credentials.password ?? [])
            return .refuse(.badUserNameOrPassword)
        }
        return credential.matches(password: password) ? .accept(user: user) : .refuse(.badUserNameOrPassword)
    }

    public func beginExchange(method: String, credentials: ConnectCredentials) -> (any AuthenticationExchange)? {
        guard method == SCRAMSHA256.mechanism else { return nil }
        let users = self.users
        return SCRAMServerExchange(lookup: { users[$0] })
    }
}
