// MARK: - Retained message index

/// Retained messages by topic name, answering "which retained messages does this new subscription
/// receive?" when a SUBSCRIBE arrives with a possibly wildcard filter.
///
/// Topics are stored as a tree of their levels. A filter without wildcards is answered with one
/// dictionary lookup per level; `+` fans out over the children of one node and `#` over one
/// subtree, so a lookup only walks the parts of the tree the filter can reach instead of testing
/// every retained topic.
///
/// The index is a value type built from structs, dictionaries and copy-on-write storage, so a copy
/// shares storage until one side is changed. Topic names are assumed valid
/// (`MQTTTopic.isValidTopicName`) and filters valid (`MQTTTopic.isValidTopicFilter`).
///
/// Operations recurse once per topic level, so the stack depth follows the number of levels.
public struct RetainedMessageIndex<Message: Sendable>: Sendable {
    // MARK: Node

    struct Retained: Sendable {
        /// The full topic, kept so that lookups can report it without rebuilding it from levels.
        var topic: String
        var message: Message
    }

    struct Node: Sendable {
        var retained: Retained?
        var children: [TopicLevel: Node] = [:]

        var isEmpty: Bool { retained == nil && children.isEmpty }

        /// This node and all below it; lets tests check that removal prunes.
        var nodeCount: Int {
            1 + children.values.reduce(0) { $0 + $1.nodeCount }
        }

        /// Stores or clears the message for the topic and returns the previous one; clearing
        /// drops nodes left with nothing in them.
        mutating func set(_ levels: TopicLevels, topic: String, message: Message?) -> Message? {
            var levels = levels
            guard let level = levels.next() else {
                let previous = retained?.message
                retained = message.map { Retained(topic: topic, message: $0) }
                return previous
            }
            let lookup = TopicLevel(level)
            if children[lookup] == nil {
                guard message != nil else { return nil }
                children[TopicLevel(owning: level)] = Node()
            }
            let previous = children[lookup]!.set(levels, topic: topic, message: message)
            if children[lookup]!.isEmpty { children[lookup] = nil }
            return previous
        }

        func message(_ levels: TopicLevels) -> Message? {
            var levels = levels
            guard let level = levels.next() else { return retained?.message }
            return children[TopicLevel(level)]?.message(levels)
        }

        /// Visits the retained messages below this node whose topics match the rest of the filter.
        ///
        /// `isRoot` matters for the `$` rule: a filter level `+` or `#` at the root must not match a
        /// topic whose first level starts with `$` [MQTT-4.7.2-1].
        func forEachMatch(
            _ levels: TopicLevels,
            isRoot: Bool,
            _ body: (String, Message) throws -> Void
        ) rethrows {
            var levels = levels
            guard let level = levels.next() else {
                if let retained { try body(retained.topic, retained.message) }
                return
            }
            if level.isMultiLevelWildcard {
                // `x/#` matches `x` itself and everything below it [MQTT-4.7.1-2].
                try forEach(skippingDollarChildren: isRoot, body)
                return
            }
            if level.isSingleLevelWildcard {
                // `+` matches exactly one level, including an empty one [MQTT-4.7.1-3].
                for (childLevel, child) in children where !(isRoot && childLevel.startsWithDollar) {
                    try child.forEachMatch(levels, isRoot: false, body)
                }
                return
            }
            try children[TopicLevel(level)]?.forEachMatch(levels, isRoot: false, body)
        }

        func forEach(skippingDollarChildren: Bool, _ body: (String, Message) throws -> Void) rethrows {
            if let retained { try body(retained.topic, retained.message) }
            for (childLevel, child) in children where !(skippingDollarChildren && childLevel.startsWithDollar) {
                try child.forEach(skippingDollarChildren: false, body)
            }
        }

        /// Removes the messages the predicate selects, adding their number to `removed`, and drops
        /// children left empty.
        mutating func removeAll(where shouldRemove: (String, Message) -> Bool, removed: inout Int) {
            if let current = retained, shouldRemove(current.topic, current.message) {
                retained = nil
                removed += 1
            }
            var emptied = false
            var index = children.startIndex
            while index != children.endIndex {
                // Mutating through `values` keeps the dictionary's layout, so indices stay valid.
                children.values[index].removeAll(where: shouldRemove, removed: &removed)
                if children.values[index].isEmpty { emptied = true }
                children.formIndex(after: &index)
            }
            if emptied {
                children = children.filter { !$0.value.isEmpty }
            }
        }
    }

    // MARK: Storage

    private var root = Node()

    /// The number of retained messages.
    public private(set) var count = 0

    public var isEmpty: Bool { count == 0 }

    /// The number of tree nodes including the root, for checking that removal prunes.
    var nodeCount: Int { root.nodeCount }

    public init() {}

    // MARK: Mutation

    /// Stores the message as the topic's retained message, or removes it when `message` is nil
    /// (a retained PUBLISH with an empty payload clears it), and returns the previous one.
    @discardableResult
    public mutating func set(topic: String, message: Message?) -> Message? {
        let previous = root.set(TopicLevels(topic), topic: topic, message: message)
        if previous == nil, message != nil { count += 1 }
        if previous != nil, message == nil { count -= 1 }
        return previous
    }

    /// Removes every retained message for which `shouldRemove` returns true, e.g. expired ones.
    public mutating func removeAll(where shouldRemove: (String, Message) -> Bool) {
        var removed = 0
        root.removeAll(where: shouldRemove, removed: &removed)
        count -= removed
    }

    // MARK: Lookup

    /// The retained message for exactly this topic name.
    public func message(topic: String) -> Message? {
        root.message(TopicLevels(topic))
    }

    /// Calls `body` with (topic, message) for every retained message whose topic the filter
    /// matches (spec 4.7), in no particular order.
    public func forEachMatch(filter: String, _ body: (String, Message) throws -> Void) rethrows {
        try root.forEachMatch(TopicLevels(filter), isRoot: true, body)
    }

    /// Calls `body` with (topic, message) for every retained message, in no particular order.
    public func forEach(_ body: (String, Message) throws -> Void) rethrows {
        try root.forEach(skippingDollarChildren: false, body)
    }
}
