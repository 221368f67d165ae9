/// Why the SQLite store cannot open or run, in words an operator can act on.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Hashable {
        case cannotCreateDirectory
        case cannotOpen
        case newerSchema
        case corrupt
        case importFailed
    }

    public var code: Code
    public var description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
