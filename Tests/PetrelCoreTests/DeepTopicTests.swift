import PetrelTestSupport
import Testing
@testable import PetrelCore

/// Every walk over topic levels in the trees holds up at the deepest topic the wire can carry, on a small stack
/// (`onSmallStack`): a recursion per level would crash the test process.
@Suite("Deep topics and filters")
struct DeepTopicTests {
    @Test("Subscription trie: insert, match, value, entries and remove of 32,768-level filters")
    func subscriptionTrie() {
        onSmallStack {
            var trie = SubscriptionTrie<Int, Int>()
            #expect(DeepTopics.topic.utf8.count == 65_535)
            #expect(DeepTopics.wildcardFilter.utf8.count == 65_535)
            trie.insert(filter: DeepTopics.wildcardFilter, key: 1, value: 1)
            trie.insert(filter: DeepTopics.topic, key: 2, value: 2)
            trie.insert(filter: DeepTopics.exactThenPlus, key: 3, value: 3)
            trie.insert(filter: "#", key: 4, value: 4)
            #expect(trie.count == 4)
            #expect(trie.nodeCount == 2 * DeepTopics.levels)
            var matched: [Int] = []
            trie.forEachMatch(topic: DeepTopics.topic) { key, _ in matched.append(key) }
            #expect(matched.sorted() == [1, 2, 3, 4])
            matched = []
            trie.forEachMatch(topic: DeepTopics.topic + "/z") { key, _ in matched.append(key) }
            #expect(matched.sorted() == [1, 4])
            #expect(trie.value(filter: DeepTopics.wildcardFilter, key: 1) == 1)
            #expect(trie.value(filter: DeepTopics.exactThenPlus, key: 3) == 3)
            var exported: [Int: String] = [:]
            trie.forEachEntry { filter, key, _ in exported[key] = filter }
            #expect(exported == [1: DeepTopics.wildcardFilter, 2: DeepTopics.topic, 3: DeepTopics.exactThenPlus, 4: "#"])
            #expect(trie.remove(filter: DeepTopics.wildcardFilter, key: 1) == 1)
            #expect(trie.remove(filter: DeepTopics.topic, key: 2) == 2)
            #expect(trie.remove(filter: DeepTopics.exactThenPlus, key: 3) == 3)
            #expect(trie.nodeCount == 1)
            // Dropped while full: the nodes are freed without a walk.
            var full = SubscriptionTrie<Int, Int>()
            full.insert(filter: DeepTopics.wildcardFilter, key: 1, value: 1)
            full.insert(filter: DeepTopics.topic, key: 2, value: 2)
            #expect(full.count == 2)
        }
    }

    @Test("Retained index: store, match with `+` and `#`, expire and delete a 32,768-level topic")
    func retainedIndex() {
        onSmallStack {
            var index = RetainedMessageIndex<Int>()
            index.set(topic: DeepTopics.topic, message: 1)
            index.set(topic: "x", message: 2)
            #expect(index.message(topic: DeepTopics.topic) == 1)
            func matches(_ filter: String) -> [Int] {
                var found: [Int] = []
                index.forEachMatch(filter: filter) { _, message in found.append(message) }
                return found.sorted()
            }
            #expect(matches("#") == [1, 2])
            #expect(matches("x/#") == [1, 2])
            #expect(matches(DeepTopics.wildcardFilter) == [1])
            #expect(matches(DeepTopics.exactThenPlus) == [1])
            #expect(matches(DeepTopics.topic) == [1])
            var all: [Int] = []
            index.forEach { _, message in all.append(message) }
            #expect(all.sorted() == [1, 2])
            index.removeAll { _, message in message == 1 }
            #expect(index.count == 1)
            #expect(index.nodeCount == 2)
            index.set(topic: DeepTopics.topic, message: 3)
            #expect(index.set(topic: DeepTopics.topic, message: nil) == 3)
            #expect(index.nodeCount == 2)
            var full = RetainedMessageIndex<Int>()
            full.set(topic: DeepTopics.topic, message: 1)
            #expect(full.count == 1)
        }
    }
}
