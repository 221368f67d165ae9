import ArgumentParser
import Foundation
import PetrelCore

struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update a user in a password file (see docs/SECURITY.md).",
        discussion: """
            The password comes from --password or, without it, from the first line of standard input. \
            The file is created when missing and rewritten atomically, readable by its owner only. \
            --format mosquitto writes Mosquitto's $7$ lines (PBKDF2-SHA512), which Mosquitto reads too; \
            Petrel's own format (the default) also allows SCRAM-SHA-256.
            """
    )

    @Argument(help: "The password file.")
    var file: String

    @Argument(help: "The user name (no ':').")
    var username: String

    @Option(name: .long, help: "The password (otherwise read from standard input).")
    var password: String?

    @Option(name: .long, help: "petrel (SCRAM-SHA-256 keys) or mosquitto ($7$, PBKDF2-SHA512).")
    var format: PasswordFormat = .petrel

    @Option(name: .long, help: "PBKDF2 iterations (default: 4096 for petrel, 101 for mosquitto, as mosquitto_passwd).")
    var iterations: Int?

    @Flag(name: .long, help: "Remove the user instead.")
    var delete: Bool = false

    func validate() throws {
        guard !username.isEmpty, !username.contains(":"), !username.contains("\n") else {
            throw ValidationError("the user name must be non-empty and contain no ':' or newline")
        }
        if let iterations, iterations < 1 || iterations > 10_000_000 {
            throw ValidationError("--iterations must be between 1 and 10000000")
        }
    }

    func run() throws {
        var passwords = PasswordFile()
        if FileManager.default.fileExists(atPath: file) {
            passwords = try PasswordFileIO.load(file)
        }
        if delete {
            guard passwords.remove(user: username) else {
                throw PasswordFileIO.Failure(description: "no user \(username) in \(file)")
            }
            try PasswordFileIO.save(passwords, to: file)
            return
        }
        let secret: String
        if let password {
            secret = password
        } else {
            guard let line = readLine(strippingNewline: true) else {
                throw PasswordFileIO.Failure(description: "no password on standard input")
            }
            secret = line
        }
        guard !secret.isEmpty else { throw PasswordFileIO.Failure(description: "the password must not be empty") }
        var generator = SystemRandomNumberGenerator()
        func salt(_ length: Int) -> [UInt8] { (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) } }
        let verifier: PasswordVerifier
        switch format {
        case .petrel:
            let keys = SCRAMCredential(
                password: secret,
                salt: salt(SCRAMSHA256.saltLength),
                iterations: iterations ?? SCRAMSHA256.defaultIterations
            )
            verifier = .scram(keys)
        case .mosquitto:
            verifier = .mosquitto(
                password: secret,
                salt: salt(PasswordVerifier.mosquittoSaltLength),
                iterations: iterations ?? PasswordVerifier.mosquittoDefaultIterations
            )
        }
        passwords.set(user: username, verifier: verifier)
        try PasswordFileIO.save(passwords, to: file)
    }
}

/// The line format `petrel passwd` writes.
enum PasswordFormat: String, ExpressibleByArgument, CaseIterable {
    case petrel
    case mosquitto
}
