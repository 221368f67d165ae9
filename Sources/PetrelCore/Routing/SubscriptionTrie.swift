// MARK: - Subscription trie

/// Subscriptions indexed by topic filter, answering "who wants a message published to this topic?".
///
/// Filters are stored as a tree of their levels, so matching a topic costs work proportional to
/// the levels of the topic and the wildcard branches that can apply to it, not to the number of
/// subscriptions. Each filter may hold one value per key (typically a client or session id), which
/// lets a client's options for a filter be replaced by a new SUBSCRIBE to the same filter.
///
/// The trie is a value type: nodes are structs whose children live in dictionaries and arrays, so
/// a copy shares storage until one side is changed, and a change only copies the nodes on the
/// path it touches.
///
/// Filters are assumed valid (`MQTTTopic.isValidTopicFilter`); the trie does not check them.
/// Shared subscriptions (`$share/...`) are the caller's business: a `$share/` filter given here is
/// treated as an ordinary filter whose first level is `$share`.
///
/// Operations recurse once per topic level, so the stack depth follows the number of levels.
public struct SubscriptionTrie<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    // MARK: Node

    struct Node: Sendable {
        /// Entries whose filter ends at this node, e.g. `a/b` at the node for `b`.
        var entries: [Key: Value] = [:]
        /// Entries whose filter is this node's path followed by `/#`, or `#` at the root. They
        /// match this node's level and everything below it [MQTT-4.7.1-2].
        var multiLevelEntries: [Key: Value] = [:]
        /// Literal next levels.
        var children: [TopicLevel: Node] = [:]
        /// The `+` child: zero or one element. An array gives the recursive struct the
        /// indirection it needs and still allows in-place, copy-on-write mutation.
        var singleLevelChild: [Node] = []

        /// The `+` child, if any. Indexes the array directly: `Array.first` was measured to go
        /// through an unspecialised generic path that allocates on every call.
        var singleLevel: Node? {
            singleLevelChild.isEmpty ? nil : singleLevelChild[0]
        }

        var isEmpty: Bool {
            entries.isEmpty && multiLevelEntries.isEmpty && children.isEmpty && singleLevelChild.isEmpty
        }

        mutating func insert(_ levels: TopicLevels, key: Key, value: Value) -> Value? {
            var levels = levels
            guard let level = levels.next() else {
                return entries.updateValue(value, forKey: key)
            }
            if level.isMultiLevelWildcard {
                return multiLevelEntries.updateValue(value, forKey: key)
            }
            if level.isSingleLevelWildcard {
                if singleLevelChild.isEmpty { singleLevelChild.append(Node()) }
                return singleLevelChild[0].insert(levels, key: key, value: value)
            }
            let lookup = TopicLevel(level)
            if children[lookup] == nil {
                children[TopicLevel(owning: level)] = Node()
            }
            return children[lookup]!.insert(levels, key: key, value: value)
        }

        /// Removes the entry and drops any child left with nothing in it.
        mutating func remove(_ levels: TopicLevels, key: Key) -> Value? {
            var levels = levels
            guard let level = levels.next() else {
                return entries.removeValue(forKey: key)
            }
            if level.isMultiLevelWildcard {
                return multiLevelEntries.removeValue(forKey: key)
            }
            if level.isSingleLevelWildcard {
                guard !singleLevelChild.isEmpty else { return nil }
                let removed = singleLevelChild[0].remove(levels, key: key)
                if singleLevelChild[0].isEmpty { singleLevelChild.removeAll() }
                return removed
            }
            let lookup = TopicLevel(level)
            guard children[lookup] != nil else { return nil }
            let removed = children[lookup]!.remove(levels, key: key)
            if children[lookup]!.isEmpty { children[lookup] = nil }
            return removed
        }

        func value(_ levels: TopicLevels, key: Key) -> Value? {
            var levels = levels
            guard let level = levels.next() else { return entries[key] }
            if level.isMultiLevelWildcard { return multiLevelEntries[key] }
            if level.isSingleLevelWildcard { return singleLevel?.value(levels, key: key) }
            return children[TopicLevel(level)]?.value(levels, key: key)
        }

        /// Visits the entries of every filter below this node that matches the rest of the topic.
        ///
        /// `wildcardsMatch` is false only at the root of a topic beginning with `$`: filters
        /// starting with `+` or `#` must not match such topics [MQTT-4.7.2-1].
        func forEachMatch(
            _ levels: TopicLevels,
            wildcardsMatch: Bool,
            _ body: (Key, Value) throws -> Void
        ) rethrows {
            // `x/#` matches `x` itself as well as any level below it [MQTT-4.7.1-2].
            if wildcardsMatch {
                for (key, value) in multiLevelEntries { try body(key, value) }
            }
            var levels = levels
            guard let level = levels.next() else {
                for (key, value) in entries { try body(key, value) }
                return
            }
            // The children are reached through `values[index]` and `singleLevelChild[0]`, which lend the node
            // in place; `children[key]` and `singleLevel` would copy it (retaining and releasing its storage).
            if let index = children.index(forKey: TopicLevel(level)) {
                try children.values[index].forEachMatch(levels, wildcardsMatch: true, body)
            }
            // `+` matches exactly one level, including an empty one [MQTT-4.7.1-3].
            if wildcardsMatch, !singleLevelChild.isEmpty {
                try singleLevelChild[0].forEachMatch(levels, wildcardsMatch: true, body)
            }
        }

        /// This node and all below it; lets tests check that removal prunes.
        var nodeCount: Int {
            1 + (singleLevel?.nodeCount ?? 0) + children.values.reduce(0) { $0 + $1.nodeCount }
        }

        func forEachEntry(path: String?, _ body: (String, Key, Value) throws -> Void) rethrows {
            func extended(_ level: Substring) -> String {
                guard let path else { return String(level) }
                return path + "/" + level
            }
            if let path {
                for (key, value) in entries { try body(path, key, value) }
            }
            if !multiLevelEntries.isEmpty {
                let filter = extended("#")
                for (key, value) in multiLevelEntries { try body(filter, key, value) }
            }
            if let child = singleLevel {
                try child.forEachEntry(path: extended("+"), body)
            }
            for (level, child) in children {
                try child.forEachEntry(path: extended(level.text), body)
            }
        }
    }

    // MARK: Storage

    private var root = Node()

    /// The number of (filter, key) entries.
    public private(set) var count = 0

    public var isEmpty: Bool { count == 0 }

    /// The number of tree nodes including the root, for checking that removal prunes.
    var nodeCount: Int { root.nodeCount }

    public init() {}

    // MARK: Mutation

    /// Adds or replaces the entry for (filter, key) and returns the value it replaced, if any.
    @discardableResult
    public mutating func insert(filter: String, key: Key, value: Value) -> Value? {
        let replaced = root.insert(TopicLevels(filter), key: key, value: value)
        if replaced == nil { count += 1 }
        return replaced
    }

    /// Removes the entry for (filter, key) and returns its value, pruning nodes left empty so that
    /// unsubscribed topics do not keep memory or slow down matching.
    @discardableResult
    public mutating func remove(filter: String, key: Key) -> Value? {
        let removed = root.remove(TopicLevels(filter), key: key)
        if removed != nil { count -= 1 }
        return removed
    }

    // MARK: Lookup

    /// The value stored for exactly this (filter, key); no wildcard matching is done.
    public func value(filter: String, key: Key) -> Value? {
        root.value(TopicLevels(filter), key: key)
    }

    /// Calls `body` for every entry whose filter matches the topic name (spec 4.7).
    ///
    /// An entry is visited once per matching filter, so a key subscribed with two overlapping
    /// filters is visited twice; merging those into one delivery is the caller's decision because
    /// it depends on the subscription options. The order of visits is unspecified.
    public func forEachMatch(topic: String, _ body: (Key, Value) throws -> Void) rethrows {
        let wildcardsMatch = topic.utf8.first != UInt8(ascii: "$")
        try root.forEachMatch(TopicLevels(topic), wildcardsMatch: wildcardsMatch, body)
    }

    /// Calls `body` with (filter, key, value) for every entry, in no particular order, so that the
    /// subscriptions can be exported or persisted.
    public func forEachEntry(_ body: (String, Key, Value) throws -> Void) rethrows {
        try root.forEachEntry(path: nil, body)
    }
}
