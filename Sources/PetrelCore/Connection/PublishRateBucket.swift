import NIOCore

/// A token bucket of one second's worth of PUBLISH packets: refilled at `rate` per second up to `rate`, one
/// taken per PUBLISH.
struct PublishRateBucket {
    private var tokens: Double = -1
    private var refilledAt = NIODeadline.uptimeNanoseconds(0)

    /// Takes one token; false when none is left.
    mutating func take(now: NIODeadline, rate: Int) -> Bool {
        let capacity = Double(rate)
        if self.tokens < 0 {
            self.tokens = capacity
        } else {
            let elapsed = Double((now - self.refilledAt).nanoseconds) / 1e9
            self.tokens = min(capacity, self.tokens + elapsed * capacity)
        }
        self.refilledAt = now
        guard self.tokens >= 1 else { return false }
        self.tokens -= 1
        return true
    }
}
