import Foundation
import PetrelCore

/// Reading and writing password files (the format is described on `PasswordFile` and in docs/SECURITY.md).
enum PasswordFileIO {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads and parses `path`; every problem is a `Failure` naming the file (and line).
    static func load(_ path: String) throws -> PasswordFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot read password file \(path): \(error.localizedDescription)")
        }
        do {
            return try PasswordFile(parsing: text)
        } catch {
            throw Failure(description: "invalid password file \(path), \(error)")
        }
    }

    /// Writes `file` to `path` atomically (a temporary file renamed over it), readable by its owner only.
    static func save(_ file: PasswordFile, to path: String) throws {
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        let created = FileManager.default.createFile(
            atPath: temporary,
            contents: Data(file.render().utf8),
            attributes: [.posixPermissions: 0o600]
        )
        guard created else { throw Failure(description: "cannot write \(temporary)") }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw Failure(description: "cannot replace \(path): \(reason)")
        }
    }
}
