// MARK: - Topic tree

/// What a node of a `TopicTree` holds. A node whose payload is empty and that has no children is pruned.
protocol TopicTreePayload: Sendable {
    init()
    var isEmpty: Bool { get }
}

/// A tree of topic levels, the skeleton that the subscription trie and the retained index share.
///
/// The nodes live in one flat array and refer to each other by index. No operation recurses, and none has to:
/// a client decides how deep a path is (a 65,535-byte filter has up to 32,768 levels, spec 4.7.3), so every walk
/// over a path is a loop, and every walk over a subtree keeps its own stack on the heap. Freeing the tree frees
/// an array of flat nodes; a tree of nested nodes would be torn down by a recursion as deep as its deepest path.
///
/// A level `+` of a path is the node's single-level wildcard child, kept apart from the literal children so that
/// matching looks it up without hashing. `#` is not special here: the trees that give it a meaning store it in
/// their payloads.
struct TopicTree<Payload: TopicTreePayload>: Sendable {
    struct Node: Sendable {
        var payload = Payload()
        /// Literal next levels.
        var children: [TopicLevel: Int] = [:]
        /// The `+` child, or `TopicTree.none`.
        var singleLevelChild = TopicTree.none
        /// The parent's index; `TopicTree.none` for the root, `TopicTree.freed` for a node on the free list.
        var parent: Int
        /// The level that leads here from the parent; empty for the root.
        var level: TopicLevel

        var isPrunable: Bool {
            payload.isEmpty && children.isEmpty && singleLevelChild == TopicTree.none
        }
    }

    static var none: Int { -1 }
    static var freed: Int { -2 }
    static var root: Int { 0 }

    private(set) var nodes: [Node] = [Node(parent: TopicTree.none, level: TopicLevel(owning: ""))]
    /// Indices of freed nodes, reused before the array grows.
    private var freeList: [Int] = []

    /// Nodes in use, the root included.
    var nodeCount: Int { nodes.count - freeList.count }

    // MARK: Lookup

    /// The literal child of `node` for one level of a topic.
    @inline(__always)
    func literalChild(of node: Int, _ level: Substring) -> Int? {
        nodes[node].children[TopicLevel(level)]
    }

    /// The node a path of levels leads to (`+` as the wildcard child), or nil when it does not exist. A nil path
    /// is the root; an empty one is one empty level.
    func node(at path: Substring?) -> Int? {
        guard let path else { return Self.root }
        var levels = TopicLevels(path)
        var node = Self.root
        while let level = levels.next() {
            if level.isSingleLevelWildcard {
                let child = nodes[node].singleLevelChild
                guard child != Self.none else { return nil }
                node = child
            } else {
                guard let child = literalChild(of: node, level) else { return nil }
                node = child
            }
        }
        return node
    }

    /// Visits every node in use, in no particular order, without walking the tree.
    func forEachNode<E: Error>(_ body: (Int, Node) throws(E) -> Void) throws(E) {
        for index in nodes.indices where nodes[index].parent != Self.freed {
            try body(index, nodes[index])
        }
    }

    /// The levels from the root to `node`, joined by `/`; nil for the root.
    func path(of node: Int) -> String? {
        guard node != Self.root else { return nil }
        var levels: [Substring] = []
        var current = node
        while current != Self.root {
            levels.append(nodes[current].level.text)
            current = nodes[current].parent
        }
        var path = ""
        path.reserveCapacity(levels.reduce(levels.count) { $0 + $1.utf8.count })
        for (position, level) in levels.reversed().enumerated() {
            if position > 0 { path.append("/") }
            path.append(contentsOf: level)
        }
        return path
    }

    // MARK: Mutation

    /// The node for a path, created with every node on the way that is missing.
    mutating func makeNode(at path: Substring?) -> Int {
        guard let path else { return Self.root }
        var levels = TopicLevels(path)
        var node = Self.root
        while let level = levels.next() {
            if level.isSingleLevelWildcard {
                var child = nodes[node].singleLevelChild
                if child == Self.none {
                    child = allocate(parent: node, level: TopicLevel(owning: level))
                    nodes[node].singleLevelChild = child
                }
                node = child
            } else if let child = literalChild(of: node, level) {
                node = child
            } else {
                let key = TopicLevel(owning: level)
                let child = allocate(parent: node, level: key)
                nodes[node].children[key] = child
                node = child
            }
        }
        return node
    }

    /// Changes the payload of a node in place. Call `prune(from:)` afterwards when it may have been emptied.
    @inline(__always)
    mutating func modifyPayload<Result>(of node: Int, _ body: (inout Payload) -> Result) -> Result {
        body(&nodes[node].payload)
    }

    /// Frees `node` when it holds nothing, then each ancestor left holding nothing; the root stays.
    mutating func prune(from node: Int) {
        var current = node
        while current != Self.root, nodes[current].parent != Self.freed, nodes[current].isPrunable {
            let parent = nodes[current].parent
            if nodes[parent].singleLevelChild == current {
                nodes[parent].singleLevelChild = Self.none
            } else {
                let level = nodes[current].level
                nodes[parent].children[level] = nil
            }
            free(current)
            current = parent
        }
        if nodes.count > 1, nodeCount == 1 {
            // Everything is gone: give the memory of the freed nodes back.
            nodes.removeSubrange(1...)
            freeList = []
        }
    }

    private mutating func allocate(parent: Int, level: TopicLevel) -> Int {
        if let reused = freeList.popLast() {
            nodes[reused] = Node(parent: parent, level: level)
            return reused
        }
        nodes.append(Node(parent: parent, level: level))
        return nodes.count - 1
    }

    private mutating func free(_ node: Int) {
        nodes[node] = Node(parent: Self.freed, level: TopicLevel(owning: ""))
        freeList.append(node)
    }
}
