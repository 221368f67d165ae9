import Foundation

/// Mosquitto's `$SYS/broker/load/...` figures: a rate per minute, smoothed exponentially over 1, 5 and 15
/// minutes as the Unix load average is, from a running total sampled every few seconds.
struct LoadAverage: Sendable {
    static let windows: [(name: String, seconds: Double)] = [("1min", 60), ("5min", 300), ("15min", 900)]

    private var lastTotal: Int?
    /// Per window, the smoothed rate per minute.
    private(set) var averages = [0.0, 0.0, 0.0]

    /// Takes the running total after `elapsed` seconds since the previous sample; the first sample only sets
    /// the starting point.
    mutating func sample(total: Int, elapsed: Double) {
        defer { lastTotal = total }
        guard let lastTotal, elapsed > 0 else { return }
        let perMinute = Double(max(0, total - lastTotal)) / elapsed * 60
        for (index, window) in Self.windows.enumerated() {
            let decay = exp(-elapsed / window.seconds)
            averages[index] = averages[index] * decay + perMinute * (1 - decay)
        }
    }
}
