import Foundation
import PetrelCore

/// Reading ACL files (Mosquitto's syntax, described on `AccessControlList` and in docs/SECURITY.md).
enum AccessControlFileIO {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads and parses `path`; every problem is a `Failure` naming the file and the line.
    static func load(_ path: String) throws -> AccessControlList {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot read ACL file \(path): \(error.localizedDescription)")
        }
        do {
            return try AccessControlList(parsing: text)
        } catch {
            throw Failure(description: "invalid ACL file \(path), \(error)")
        }
    }
}
