import NIOCore
import Synchronization

/// Slows password guessing down per client address: each failed login from an address makes the next refusal
/// from it wait longer before its CONNACK (doubling from `baseDelay` up to `maximumDelay`), so that guesses
/// cost the guesser time while the broker keeps nothing but a timer per waiting connection. An address that
/// logs in successfully, or fails nothing for `forgetAfter`, starts again from the first delay.
///
/// Bounded: at most `capacity` addresses are remembered; beyond that the ones idle longest are forgotten.
public final class LoginThrottle: Sendable {
    public struct Settings: Sendable, Hashable {
        public var baseDelay: TimeAmount = .milliseconds(100)
        public var maximumDelay: TimeAmount = .seconds(10)
        public var forgetAfter: TimeAmount = .seconds(600)
        public var capacity = 10_000

        public init() {}
    }

    private struct Record {
        var failures: Int
        var lastFailure: NIODeadline
    }

    public let settings: Settings
    private let records = Mutex<[String: Record]>([:])

    public init(settings: Settings = .init()) {
        self.settings = settings
    }

    /// A failed login from `address` (host, without port): how long to wait before answering it.
    public func failed(from address: String, now: NIODeadline) -> TimeAmount {
        let settings = self.settings
        return self.records.withLock { records in
            var record = records[address] ?? Record(failures: 0, lastFailure: now)
            if now - record.lastFailure > settings.forgetAfter { record.failures = 0 }
            record.failures += 1
            record.lastFailure = now
            if records[address] == nil, records.count >= settings.capacity {
                Self.evict(&records, now: now, settings: settings)
            }
            records[address] = record
            let doublings = min(record.failures - 1, 30)
            let delay = settings.baseDelay.nanoseconds << Int64(doublings)
            return .nanoseconds(min(delay, settings.maximumDelay.nanoseconds))
        }
    }

    /// A successful login from `address`: its count starts again.
    public func succeeded(from address: String) {
        self.records.withLock { records in
            if !records.isEmpty { records[address] = nil }
        }
    }

    /// Addresses remembered now.
    public var count: Int { self.records.withLock { $0.count } }

    /// Forgets what is old enough; if that frees nothing, the oldest tenth.
    private static func evict(_ records: inout [String: Record], now: NIODeadline, settings: Settings) {
        records = records.filter { now - $0.value.lastFailure <= settings.forgetAfter }
        guard records.count >= settings.capacity else { return }
        let oldest = records.sorted { $0.value.lastFailure < $1.value.lastFailure }.prefix(max(1, settings.capacity / 10))
        for (address, _) in oldest { records[address] = nil }
    }

    /// The host part of a `host:port` or `[v6]:port` address.
    public static func host(of remoteAddress: String) -> String {
        if remoteAddress.hasPrefix("["), let end = remoteAddress.firstIndex(of: "]") {
            return String(remoteAddress[remoteAddress.index(after: remoteAddress.startIndex)..<end])
        }
        guard let colon = remoteAddress.lastIndex(of: ":") else { return remoteAddress }
        // More than one colon without brackets: an IPv6 address as NIO prints it, then the port.
        return String(remoteAddress[..<colon])
    }
}
