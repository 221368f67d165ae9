/// The contents of a password file: one user per line, `username:verifier`, where the verifier is in one of the
/// formats of `PasswordVerifier`: Petrel's SCRAM-SHA-256 one or Mosquitto's `$7$` / `$6$`, so a file made by
/// `mosquitto_passwd` works as it is. Blank lines and lines starting with `#` are ignored. User names cannot
/// contain `:`. Parsing and rendering only: reading and writing the file is the caller's business.
public struct PasswordFile: Sendable, Hashable {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(self.line): \(self.reason)" }
    }

    /// Users in file order.
    public private(set) var entries: [(user: String, verifier: PasswordVerifier)] = []

    public init() {}

    public init(parsing text: String) throws(ParseError) {
        var seen = Set<String>()
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            var line = Substring(rawLine)
            while line.last == " " || line.last == "\t" { line = line.dropLast() }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            let number = offset + 1
            guard let colon = line.firstIndex(of: ":") else {
                throw ParseError(line: number, reason: "expected username:verifier (SCRAM-SHA-256$..., $7$... or $6$...)")
            }
            let user = String(line[..<colon])
            guard !user.isEmpty else { throw ParseError(line: number, reason: "empty user name") }
            guard let verifier = PasswordVerifier(text: String(line[line.index(after: colon)...])) else {
                throw ParseError(
                    line: number,
                    reason: "invalid password hash for user \(user) (expected SCRAM-SHA-256$..., $7$... or $6$...)"
                )
            }
            guard seen.insert(user).inserted else { throw ParseError(line: number, reason: "duplicate user \(user)") }
            self.entries.append((user, verifier))
        }
    }

    public var users: [String: PasswordVerifier] {
        Dictionary(self.entries.map { ($0.user, $0.verifier) }, uniquingKeysWith: { first, _ in first })
    }

    /// Adds a user or replaces its verifier in place.
    public mutating func set(user: String, verifier: PasswordVerifier) {
        if let index = self.entries.firstIndex(where: { $0.user == user }) {
            self.entries[index].verifier = verifier
        } else {
            self.entries.append((user, verifier))
        }
    }

    /// Adds a user or replaces its verifier with SCRAM-SHA-256 keys.
    public mutating func set(user: String, credential: SCRAMCredential) {
        self.set(user: user, verifier: .scram(credential))
    }

    @discardableResult
    public mutating func remove(user: String) -> Bool {
        guard let index = self.entries.firstIndex(where: { $0.user == user }) else { return false }
        self.entries.remove(at: index)
        return true
    }

    /// The file's text, one line per user.
    public func render() -> String {
        self.entries.map { "\($0.user):\($0.verifier.text)\n" }.joined()
    }

    public static func == (lhs: PasswordFile, rhs: PasswordFile) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.user == $1.user && $0.verifier == $1.verifier }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in self.entries {
            hasher.combine(entry.user)
            hasher.combine(entry.verifier)
        }
    }
}

/// Users from a password file: plain User Name / Password at CONNECT (every version, every format) and
/// SCRAM-SHA-256 enhanced authentication (MQTT 5, users in Petrel's format). Anonymous clients (no User Name,
/// no Authentication Method) are let in only when `allowAnonymous` is set; otherwise they get 0x87 Not
/// authorized (3.1.1: 0x05). A wrong or unknown user name or password gets 0x86 (3.1.1: 0x04).
public struct PasswordAuthenticator: Authenticator {
    public let users: [String: PasswordVerifier]
    public let allowAnonymous: Bool

    private static let decoy = SCRAMCredential(
        iterations: SCRAMSHA256.defaultIterations,
        salt: Array("petrel-decoy-salt".utf8),
        storedKey: [UInt8](repeating: 0, count: 32),
        serverKey: [UInt8](repeating: 0, count: 32)
    )

    public init(users: [String: PasswordVerifier], allowAnonymous: Bool) {
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
        guard let verifier = self.users[user], let password = credentials.password else {
            // The same work as a real check, so that the answer's timing does not tell which users exist.
            _ = Self.decoy.matches(password: credentials.password ?? [])
            return .refuse(.badUserNameOrPassword)
        }
        return verifier.matches(password: password) ? .accept(user: user) : .refuse(.badUserNameOrPassword)
    }

    /// SCRAM-SHA-256 for users with SCRAM keys; a user stored in a Mosquitto format is unknown to SCRAM (and
    /// refused only after the proof, like any unknown user).
    public func beginExchange(method: String, credentials: ConnectCredentials) -> (any AuthenticationExchange)? {
        guard method == SCRAMSHA256.mechanism else { return nil }
        let users = self.users
        return SCRAMServerExchange(lookup: { users[$0]?.scramCredential })
    }
}
