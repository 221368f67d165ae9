/// What one subscriber received from one publisher: a bit per sequence number, so that every message is
/// counted once, repeats are duplicates, and a number below the highest one seen arrived out of order.
///
/// Memory is one bit per message sent by the publisher, grown on demand.
struct SequenceTracker: Sendable {
    private(set) var bits: [UInt64] = []
    private(set) var unique = 0
    private(set) var duplicates = 0
    private(set) var outOfOrder = 0
    /// The highest sequence number received, -1 before the first.
    private(set) var highest = -1

    mutating func record(_ sequence: UInt64) {
        let number = Int(truncatingIfNeeded: sequence)
        guard number >= 0 else {
            duplicates += 1
            return
        }
        let word = number >> 6
        let bit = UInt64(1) << UInt64(number & 63)
        if word >= bits.count {
            bits.append(contentsOf: repeatElement(0, count: Swift.max(word + 1 - bits.count, bits.count)))
        }
        if bits[word] & bit != 0 {
            duplicates += 1
            return
        }
        bits[word] |= bit
        unique += 1
        if number < highest {
            outOfOrder += 1
        } else {
            highest = number
        }
    }

    /// Folds in what another member of a shared subscription group received from the same publisher: a
    /// message both got counts as a duplicate.
    mutating func merge(_ other: SequenceTracker) {
        if other.bits.count > bits.count {
            bits.append(contentsOf: repeatElement(0, count: other.bits.count - bits.count))
        }
        var both = 0
        for index in other.bits.indices {
            both += (bits[index] & other.bits[index]).nonzeroBitCount
            bits[index] |= other.bits[index]
        }
        unique += other.unique - both
        duplicates += other.duplicates + both
        outOfOrder += other.outOfOrder
        highest = Swift.max(highest, other.highest)
    }
}

/// The first bytes of every payload: which publisher sent it, its sequence number there, and the monotonic
/// time in nanoseconds at which it was due to be sent.
struct PayloadStamp {
    var publisher: UInt32
    var sequence: UInt64
    var sentAt: UInt64
}
