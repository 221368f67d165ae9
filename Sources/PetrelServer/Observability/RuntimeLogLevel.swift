import Logging
import Synchronization

/// The log level every handler follows unless a logger sets its own, changeable while running (SIGHUP,
/// the admin API).
public final class RuntimeLogLevel: Sendable {
    private let raw: Atomic<UInt8>

    public init(_ level: Logger.Level) {
        raw = Atomic(Self.index(of: level))
    }

    public var current: Logger.Level {
        get { Logger.Level.allCases[Int(raw.load(ordering: .relaxed))] }
        set { raw.store(Self.index(of: newValue), ordering: .relaxed) }
    }

    private static func index(of level: Logger.Level) -> UInt8 {
        UInt8(Logger.Level.allCases.firstIndex(of: level)!)
    }
}

/// swift-log's text handler, following a `RuntimeLogLevel`.
public struct TextLogHandler: LogHandler {
    private var inner: StreamLogHandler
    private let level: RuntimeLogLevel
    private var localLevel: Logger.Level?

    public init(label: String, level: RuntimeLogLevel) {
        self.inner = StreamLogHandler.standardError(label: label)
        self.inner.logLevel = .trace
        self.level = level
    }

    public var logLevel: Logger.Level {
        get { localLevel ?? level.current }
        set { localLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        inner.log(event: event)
    }
}
