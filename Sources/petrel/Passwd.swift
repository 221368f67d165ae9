import ArgumentParser
import Foundation
import PetrelCore

struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update a user in a password file (SCRAM-SHA-256 verifiers; see docs/SECURITY.md).",
        discussion: """
            The password comes from --password or, without it, from the first line of standard input. \
            The file is created when missing and rewritten atomically, readable by its owner only.
            """
    )

    @Argument(help: "The password file.")
    var file: String

    @Argument(help: "The user name (no ':').")
    var username: String

    @Option(name: .long, help: "The password (otherwise read from standard input).")
    var password: String?

    @Option(name: .long, help: "PBKDF2 iterations of the SCRAM-SHA-256 verifier.")
    var iterations: Int = SCRAMSHA256.defaultIterations

    @Flag(name: .long, help: "Remove the user instead.")
    var delete: Bool = false

    func validate() throws {
        guard !username.isEmpty, !username.contains(":"), !username.contains("\n") else {
            throw ValidationError("the user name must be non-empty and contain no ':' or newline")
        }
        guard iterations >= 1, iterations <= 10_000_000 else {
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
        let salt = (0..<SCRAMSHA256.saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        passwords.set(user: username, credential: SCRAMCredential(password: secret, salt: salt, iterations: iterations))
        try PasswordFileIO.save(passwords, to: file)
    }
}
