// MARK: - Topic levels

/// One level of a topic name or topic filter, used as a dictionary key in the level trees.
///
/// Equality and hashing work on the raw UTF-8 bytes rather than on `String`'s Unicode canonical
/// equivalence: the server must not normalise topics when it matches them [MQTT-4.7.3-4], so two
/// levels that differ only in their Unicode normal form are different levels.
///
/// The key holds a `Substring` so that a lookup can be made with a slice of the topic being
/// matched without creating a new `String`. Stored keys are made with `init(owning:)`, which
/// copies the level so that a tree node does not keep the whole filter or topic string alive.
struct TopicLevel: Hashable, Sendable {
    let text: Substring

    /// A key for looking up a slice of a longer string; keep it no longer than the lookup.
    init(_ text: Substring) {
        self.text = text
    }

    /// A key that owns a copy of its level, for storing in a tree.
    init(owning text: Substring) {
        self.text = Substring(String(text))
    }

    static func == (lhs: TopicLevel, rhs: TopicLevel) -> Bool {
        let left = lhs.text.utf8
        let right = rhs.text.utf8
        return left.count == right.count && left.elementsEqual(right)
    }

    func hash(into hasher: inout Hasher) {
        // Both paths feed exactly the level's bytes, so a key hashes the same however it is stored.
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        }
        if hashed == nil {
            var copy = String(text)
            copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
    }

    /// True for a stored key whose level begins with `$`, which top-level wildcards skip [MQTT-4.7.2-1].
    var startsWithDollar: Bool {
        text.utf8.first == UInt8(ascii: "$")
    }
}

// MARK: - Level cursor

/// Walks the `/`-separated levels of a topic name or filter as slices of the original string, so
/// that matching allocates nothing per level.
///
/// A string of n separators has n + 1 levels, any of which may be empty: `/a` is `["", "a"]`,
/// `a//b` is `["a", "", "b"]` and `a/` is `["a", ""]` (spec 4.7.1.1).
struct TopicLevels {
    private var rest: Substring
    private var exhausted = false

    init(_ string: String) {
        rest = string[...]
    }

    init(_ string: Substring) {
        rest = string
    }

    /// The next level, or nil once the last one has been returned.
    mutating func next() -> Substring? {
        guard !exhausted else { return nil }
        let utf8 = rest.utf8
        if let slash = utf8.firstIndex(of: UInt8(ascii: "/")) {
            let level = rest[rest.startIndex..<slash]
            rest = rest[utf8.index(after: slash)...]
            return level
        }
        exhausted = true
        return rest
    }
}

extension String {
    /// The level of this topic or filter that starts at `start`, where the next one starts, and whether it is the
    /// last; for the walks that keep their place in a topic as an index (`SubscriptionTrie`, `RetainedMessageIndex`).
    func topicLevel(at start: String.Index) -> (level: Substring, rest: String.Index, isLast: Bool) {
        guard let slash = utf8[start...].firstIndex(of: UInt8(ascii: "/")) else {
            return (self[start...], utf8.endIndex, true)
        }
        return (self[start..<slash], utf8.index(after: slash), false)
    }
}

extension Substring {
    /// The level is the multi-level wildcard `#`.
    var isMultiLevelWildcard: Bool {
        utf8.count == 1 && utf8.first == UInt8(ascii: "#")
    }

    /// The level is the single-level wildcard `+`.
    var isSingleLevelWildcard: Bool {
        utf8.count == 1 && utf8.first == UInt8(ascii: "+")
    }
}
