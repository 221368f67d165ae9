// MARK: - Subscription trie

/// Subscriptions indexed by topic filter, answering "who wants a message published to this topic?".
///
/// Filters are stored as a tree of their levels (`TopicTree`), so matching a topic costs work proportional to
/// the levels of the topic and the wildcard branches that can apply to it, not to the number of subscriptions.
/// Each filter may hold one value per key (typically a client or session id), which lets a client's options for
/// a filter be replaced by a new SUBSCRIBE to the same filter.
///
/// Nothing here recurses: a filter or topic of 32,768 levels costs a loop of that length, never a stack that
/// deep.
///
/// Filters are assumed valid (`MQTTTopic.isValidTopicFilter`); the trie does not check them. Shared
/// subscriptions (`$share/...`) are the caller's business: a `$share/` filter given here is treated as an
/// ordinary filter whose first level is `$share`.
public struct SubscriptionTrie<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    struct Entries: TopicTreePayload {
        /// Entries whose filter ends at this node, e.g. `a/b` at the node for `b`.
        var exact: [Key: Value] = [:]
        /// Entries whose filter is this node's path followed by `/#`, or `#` at the root. They match this node's
        /// level and everything below it [MQTT-4.7.1-2].
        var multiLevel: [Key: Value] = [:]

        var isEmpty: Bool { exact.isEmpty && multiLevel.isEmpty }
    }

    /// One pending step of a match: a node reached, and where the rest of the topic starts.
    private struct MatchStep {
        var node: Int
        var rest: String.Index
        /// The topic's last level has been consumed: the node's exact entries match.
        var atEnd: Bool
        /// False only at the root of a topic beginning with `$`: filters starting with `+` or `#` must not match
        /// such topics [MQTT-4.7.2-1].
        var wildcardsMatch: Bool
    }

    private var tree = TopicTree<Entries>()

    /// The number of (filter, key) entries.
    public private(set) var count = 0

    public var isEmpty: Bool { count == 0 }

    /// The number of tree nodes including the root, for checking that removal prunes.
    var nodeCount: Int { tree.nodeCount }

    public init() {}

    /// The node path of a filter and whether it ends in `#`: `a/#` is the path `a` with a multi-level entry,
    /// `#` the root with one.
    private static func split(_ filter: String) -> (path: Substring?, multiLevel: Bool) {
        let utf8 = filter.utf8
        guard utf8.last == UInt8(ascii: "#") else { return (filter[...], false) }
        if utf8.count == 1 { return (nil, true) }
        let hash = utf8.index(before: utf8.endIndex)
        let slash = utf8.index(before: hash)
        guard utf8[slash] == UInt8(ascii: "/") else { return (filter[...], false) }
        return (filter[filter.startIndex..<slash], true)
    }

    // MARK: Mutation

    /// Adds or replaces the entry for (filter, key) and returns the value it replaced, if any.
    @discardableResult
    public mutating func insert(filter: String, key: Key, value: Value) -> Value? {
        let (path, multiLevel) = Self.split(filter)
        let node = tree.makeNode(at: path)
        let replaced = tree.modifyPayload(of: node) { entries in
            multiLevel
                ? entries.multiLevel.updateValue(value, forKey: key)
                : entries.exact.updateValue(value, forKey: key)
        }
        if replaced == nil { count += 1 }
        return replaced
    }

    /// Removes the entry for (filter, key) and returns its value, pruning nodes left empty so that unsubscribed
    /// topics do not keep memory or slow down matching.
    @discardableResult
    public mutating func remove(filter: String, key: Key) -> Value? {
        let (path, multiLevel) = Self.split(filter)
        guard let node = tree.node(at: path) else { return nil }
        let removed = tree.modifyPayload(of: node) { entries in
            multiLevel ? entries.multiLevel.removeValue(forKey: key) : entries.exact.removeValue(forKey: key)
        }
        guard removed != nil else { return nil }
        count -= 1
        tree.prune(from: node)
        return removed
    }

    // MARK: Lookup

    /// The value stored for exactly this (filter, key); no wildcard matching is done.
    public func value(filter: String, key: Key) -> Value? {
        let (path, multiLevel) = Self.split(filter)
        guard let node = tree.node(at: path) else { return nil }
        let entries = tree.nodes[node].payload
        return multiLevel ? entries.multiLevel[key] : entries.exact[key]
    }

    /// Calls `body` for every entry whose filter matches the topic name (spec 4.7).
    ///
    /// An entry is visited once per matching filter, so a key subscribed with two overlapping filters is visited
    /// twice; merging those into one delivery is the caller's decision because it depends on the subscription
    /// options. The order of visits is unspecified.
    ///
    /// The pending steps live in a buffer sized by the topic's levels: each step takes one and adds at most two
    /// (the literal and the `+` child), so there are never more than levels + 1. Up to some 40 levels the buffer
    /// is on the stack, and matching allocates nothing.
    public func forEachMatch<E: Error>(topic: String, _ body: (Key, Value) throws(E) -> Void) throws(E) {
        let utf8 = topic.utf8
        var levels = 1
        for byte in utf8 where byte == UInt8(ascii: "/") { levels += 1 }
        try withUnsafeTemporaryAllocation(of: MatchStep.self, capacity: levels + 1) { (steps) throws(E) -> Void in
            steps[0] = MatchStep(
                node: TopicTree<Entries>.root,
                rest: utf8.startIndex,
                atEnd: false,
                wildcardsMatch: utf8.first != UInt8(ascii: "$")
            )
            var pending = 1
            while pending > 0 {
                pending -= 1
                let step = steps[pending]
                // `x/#` matches `x` itself as well as any level below it [MQTT-4.7.1-2].
                if step.wildcardsMatch {
                    for (key, value) in tree.nodes[step.node].payload.multiLevel { try body(key, value) }
                }
                if step.atEnd {
                    for (key, value) in tree.nodes[step.node].payload.exact { try body(key, value) }
                    continue
                }
                let (level, rest, atEnd) = topic.topicLevel(at: step.rest)
                // `+` matches exactly one level, including an empty one [MQTT-4.7.1-3].
                let singleLevel = tree.nodes[step.node].singleLevelChild
                if step.wildcardsMatch, singleLevel != TopicTree<Entries>.none {
                    steps[pending] = MatchStep(node: singleLevel, rest: rest, atEnd: atEnd, wildcardsMatch: true)
                    pending += 1
                }
                if let child = tree.literalChild(of: step.node, level) {
                    steps[pending] = MatchStep(node: child, rest: rest, atEnd: atEnd, wildcardsMatch: true)
                    pending += 1
                }
            }
        }
    }

    /// Calls `body` with (filter, key, value) for every entry, in no particular order, so that the subscriptions
    /// can be exported or persisted.
    public func forEachEntry<E: Error>(_ body: (String, Key, Value) throws(E) -> Void) throws(E) {
        try tree.forEachNode { (index, node) throws(E) -> Void in
            guard !node.payload.isEmpty else { return }
            let path = tree.path(of: index)
            if !node.payload.exact.isEmpty {
                let filter = path ?? ""
                for (key, value) in node.payload.exact { try body(filter, key, value) }
            }
            if !node.payload.multiLevel.isEmpty {
                let filter = path.map { $0 + "/#" } ?? "#"
                for (key, value) in node.payload.multiLevel { try body(filter, key, value) }
            }
        }
    }
}
