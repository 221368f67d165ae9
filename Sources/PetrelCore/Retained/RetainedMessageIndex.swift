// MARK: - Retained message index

/// Retained messages by topic name, answering "which retained messages does this new subscription receive?"
/// when a SUBSCRIBE arrives with a possibly wildcard filter.
///
/// Topics are stored as a tree of their levels (`TopicTree`). A filter without wildcards is answered with one
/// dictionary lookup per level; `+` fans out over the children of one node and `#` over one subtree, so a lookup
/// only walks the parts of the tree the filter can reach instead of testing every retained topic.
///
/// Nothing here recurses: walks over a filter keep their pending nodes in a heap array, and visits of every
/// message scan the tree's node array, so a topic of 32,768 levels costs loops, never a stack that deep.
///
/// Topic names are assumed valid (`MQTTTopic.isValidTopicName`) and filters valid
/// (`MQTTTopic.isValidTopicFilter`).
public struct RetainedMessageIndex<Message: Sendable>: Sendable {
    struct Retained: Sendable {
        /// The full topic, kept so that lookups can report it without rebuilding it from levels.
        var topic: String
        var message: Message
    }

    struct Slot: TopicTreePayload {
        var retained: Retained?

        var isEmpty: Bool { retained == nil }
    }

    /// One pending step of a match: a node reached, and where the rest of the filter starts.
    private struct MatchStep {
        var node: Int
        var rest: String.Index
        /// The filter's last level has been consumed: the node's own message matches.
        var atEnd: Bool
        /// Reached through `#`: the node and everything below it match.
        var wholeSubtree: Bool
        /// At the root a filter level `+` or `#` must not match a topic whose first level starts with `$`
        /// [MQTT-4.7.2-1].
        var isRoot: Bool
    }

    private var tree = TopicTree<Slot>()

    /// The number of retained messages.
    public private(set) var count = 0

    public var isEmpty: Bool { count == 0 }

    /// The number of tree nodes including the root, for checking that removal prunes.
    var nodeCount: Int { tree.nodeCount }

    public init() {}

    // MARK: Mutation

    /// Stores the message as the topic's retained message, or removes it when `message` is nil (a retained
    /// PUBLISH with an empty payload clears it), and returns the previous one.
    @discardableResult
    public mutating func set(topic: String, message: Message?) -> Message? {
        guard let message else {
            guard let node = tree.node(at: topic[...]) else { return nil }
            let previous = tree.modifyPayload(of: node) { slot in
                defer { slot.retained = nil }
                return slot.retained?.message
            }
            guard previous != nil else { return nil }
            count -= 1
            tree.prune(from: node)
            return previous
        }
        let node = tree.makeNode(at: topic[...])
        let previous = tree.modifyPayload(of: node) { slot in
            defer { slot.retained = Retained(topic: topic, message: message) }
            return slot.retained?.message
        }
        if previous == nil { count += 1 }
        return previous
    }

    /// Removes every retained message for which `shouldRemove` returns true, e.g. expired ones.
    public mutating func removeAll(where shouldRemove: (String, Message) -> Bool) {
        var emptied: [Int] = []
        for index in tree.nodes.indices {
            guard let retained = tree.nodes[index].payload.retained, shouldRemove(retained.topic, retained.message)
            else { continue }
            tree.modifyPayload(of: index) { $0.retained = nil }
            emptied.append(index)
        }
        count -= emptied.count
        for index in emptied {
            tree.prune(from: index)
        }
    }

    // MARK: Lookup

    /// The retained message for exactly this topic name.
    public func message(topic: String) -> Message? {
        tree.node(at: topic[...]).flatMap { tree.nodes[$0].payload.retained?.message }
    }

    /// Calls `body` with (topic, message) for every retained message whose topic the filter matches (spec 4.7),
    /// in no particular order, as long as `body` returns true.
    public func visitMatches<E: Error>(filter: String, _ body: (String, Message) throws(E) -> Bool) throws(E) {
        let utf8 = filter.utf8
        let root = TopicTree<Slot>.root
        var steps = [MatchStep(node: root, rest: utf8.startIndex, atEnd: false, wholeSubtree: false, isRoot: true)]
        while let step = steps.popLast() {
            let node = tree.nodes[step.node]
            if step.atEnd || step.wholeSubtree {
                if let retained = node.payload.retained, try !body(retained.topic, retained.message) { return }
            }
            if step.wholeSubtree {
                for (level, child) in node.children where !(step.isRoot && level.startsWithDollar) {
                    steps.append(MatchStep(node: child, rest: step.rest, atEnd: false, wholeSubtree: true, isRoot: false))
                }
                continue
            }
            if step.atEnd { continue }
            let (level, rest, atEnd) = filter.topicLevel(at: step.rest)
            if level.isMultiLevelWildcard {
                // `x/#` matches `x` itself and everything below it [MQTT-4.7.1-2].
                steps.append(MatchStep(node: step.node, rest: rest, atEnd: false, wholeSubtree: true, isRoot: step.isRoot))
            } else if level.isSingleLevelWildcard {
                // `+` matches exactly one level, including an empty one [MQTT-4.7.1-3].
                for (childLevel, child) in node.children where !(step.isRoot && childLevel.startsWithDollar) {
                    steps.append(MatchStep(node: child, rest: rest, atEnd: atEnd, wholeSubtree: false, isRoot: false))
                }
            } else if let child = tree.literalChild(of: step.node, level) {
                steps.append(MatchStep(node: child, rest: rest, atEnd: atEnd, wholeSubtree: false, isRoot: false))
            }
        }
    }

    /// Calls `body` with (topic, message) for every retained message whose topic the filter matches (spec 4.7),
    /// in no particular order.
    public func forEachMatch<E: Error>(filter: String, _ body: (String, Message) throws(E) -> Void) throws(E) {
        try visitMatches(filter: filter, { (topic, message) throws(E) -> Bool in
            try body(topic, message)
            return true
        })
    }

    /// Calls `body` with (topic, message) for every retained message, in no particular order.
    public func forEach<E: Error>(_ body: (String, Message) throws(E) -> Void) throws(E) {
        try tree.forEachNode { (_, node) throws(E) -> Void in
            if let retained = node.payload.retained { try body(retained.topic, retained.message) }
        }
    }
}
