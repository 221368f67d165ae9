import Testing
@testable import PetrelCore

@Suite("SubscriptionTrie")
struct SubscriptionTrieTests {
    // MARK: - Helpers

    /// The keys visited for a topic, sorted, with repeats kept.
    private func matches<Value>(_ trie: SubscriptionTrie<Int, Value>, _ topic: String) -> [Int] {
        var keys: [Int] = []
        trie.forEachMatch(topic: topic) { key, _ in keys.append(key) }
        return keys.sorted()
    }

    // MARK: - Spec examples

    @Test("Matching follows spec 4.7 [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4]",
          arguments: MatchTable.all)
    func specExample(_ example: MatchCase) {
        #expect(MQTTTopic.isValidTopicFilter(example.filter))
        #expect(MQTTTopic.isValidTopicName(example.topic))
        var trie = SubscriptionTrie<Int, String>()
        trie.insert(filter: example.filter, key: 1, value: example.filter)
        var visited: [String] = []
        trie.forEachMatch(topic: example.topic) { _, value in visited.append(value) }
        #expect(visited == (example.matches ? [example.filter] : []))
        #expect(ReferenceMatcher.matches(filter: example.filter, topic: example.topic) == example.matches)
    }

    @Test("All spec examples loaded at once give each topic exactly its matching filters")
    func specExamplesTogether() {
        var trie = SubscriptionTrie<Int, String>()
        let filters = MatchTable.filters
        for (index, filter) in filters.enumerated() {
            trie.insert(filter: filter, key: index, value: filter)
        }
        for topic in MatchTable.topics {
            let expected = filters.indices.filter { ReferenceMatcher.matches(filter: filters[$0], topic: topic) }
            #expect(matches(trie, topic) == expected, "topic \(topic.debugDescription)")
        }
    }

    // MARK: - Insert, replace, remove

    @Test func insertReplaceAndRemove() {
        var trie = SubscriptionTrie<String, Int>()
        #expect(trie.isEmpty)
        #expect(trie.insert(filter: "a/b", key: "c1", value: 1) == nil)
        #expect(trie.insert(filter: "a/b", key: "c2", value: 2) == nil)
        #expect(trie.insert(filter: "a/b", key: "c1", value: 3) == 1)
        #expect(trie.count == 2)
        #expect(trie.value(filter: "a/b", key: "c1") == 3)
        #expect(trie.value(filter: "a/b", key: "c3") == nil)
        #expect(trie.value(filter: "a/+", key: "c1") == nil)
        #expect(trie.remove(filter: "a/b", key: "c1") == 3)
        #expect(trie.remove(filter: "a/b", key: "c1") == nil)
        #expect(trie.remove(filter: "x/y", key: "c2") == nil)
        #expect(trie.count == 1)
        var visited: [String: Int] = [:]
        trie.forEachMatch(topic: "a/b") { key, value in visited[key] = value }
        #expect(visited == ["c2": 2])
    }

    @Test("Wildcard filters are stored apart from literal levels")
    func wildcardsAreDistinctEntries() {
        var trie = SubscriptionTrie<Int, Int>()
        for (index, filter) in ["a", "a/#", "a/+", "+", "#", "+/#", "a/+/#"].enumerated() {
            trie.insert(filter: filter, key: index, value: index)
        }
        #expect(trie.count == 7)
        #expect(trie.value(filter: "a/#", key: 1) == 1)
        #expect(trie.value(filter: "a/+", key: 2) == 2)
        #expect(trie.value(filter: "#", key: 4) == 4)
        #expect(trie.value(filter: "a/+", key: 1) == nil)
        #expect(matches(trie, "a") == [0, 1, 3, 4, 5])
        #expect(matches(trie, "a/x") == [1, 2, 4, 5, 6])
        #expect(matches(trie, "a/x/y") == [1, 4, 5, 6])
        #expect(matches(trie, "$a/x") == [])
    }

    @Test("Removing the last entries prunes every node")
    func removalPrunes() {
        var trie = SubscriptionTrie<Int, Int>()
        let filters = ["a/b/c", "a/b", "a/+/c", "+/+", "#", "a/#", "/x//y", "$SYS/#"]
        for (index, filter) in filters.enumerated() {
            trie.insert(filter: filter, key: index, value: index)
            trie.insert(filter: filter, key: index + 100, value: index)
        }
        #expect(trie.nodeCount > 1)
        for (index, filter) in filters.enumerated().reversed() {
            #expect(trie.remove(filter: filter, key: index) == index)
            #expect(trie.remove(filter: filter, key: index + 100) == index)
        }
        #expect(trie.isEmpty)
        #expect(trie.nodeCount == 1)
    }

    @Test("Removing one filter keeps the nodes other filters need")
    func partialRemovalKeepsSiblings() {
        var trie = SubscriptionTrie<Int, Int>()
        trie.insert(filter: "a/b/c", key: 1, value: 1)
        trie.insert(filter: "a/b", key: 2, value: 2)
        trie.remove(filter: "a/b/c", key: 1)
        #expect(trie.nodeCount == 3)
        #expect(matches(trie, "a/b") == [2])
        #expect(matches(trie, "a/b/c") == [])
    }

    @Test("A copy is independent of the original")
    func valueSemantics() {
        var original = SubscriptionTrie<Int, Int>()
        original.insert(filter: "a/+", key: 1, value: 1)
        var copy = original
        copy.insert(filter: "a/b", key: 2, value: 2)
        copy.remove(filter: "a/+", key: 1)
        #expect(matches(original, "a/b") == [1])
        #expect(matches(copy, "a/b") == [2])
    }

    // MARK: - Overlapping filters

    @Test("A key subscribed with overlapping filters is visited once per filter")
    func overlappingFiltersVisitTwice() {
        var trie = SubscriptionTrie<String, String>()
        trie.insert(filter: "sport/#", key: "client", value: "sport/#")
        trie.insert(filter: "sport/+/player1", key: "client", value: "sport/+/player1")
        trie.insert(filter: "sport/tennis/player1", key: "other", value: "exact")
        var visits: [String] = []
        trie.forEachMatch(topic: "sport/tennis/player1") { key, value in visits.append("\(key):\(value)") }
        #expect(visits.sorted() == ["client:sport/#", "client:sport/+/player1", "other:exact"])
    }

    @Test func matchRethrows() {
        struct Stop: Error {}
        var trie = SubscriptionTrie<Int, Int>()
        trie.insert(filter: "#", key: 1, value: 1)
        trie.insert(filter: "a", key: 2, value: 2)
        var visits = 0
        #expect(throws: Stop.self) {
            try trie.forEachMatch(topic: "a") { _, _ in
                visits += 1
                throw Stop()
            }
        }
        #expect(visits == 1)
    }

    // MARK: - Export

    @Test("forEachEntry gives back every filter as inserted")
    func forEachEntryRoundTrips() {
        var trie = SubscriptionTrie<Int, String>()
        let filters = ["a", "/", "a//b", "#", "+", "a/#", "+/+/#", "$SYS/+", "caf\u{E9}", "cafe\u{301}", "a/"]
        for (index, filter) in filters.enumerated() {
            trie.insert(filter: filter, key: index, value: filter)
        }
        var exported: [Int: String] = [:]
        trie.forEachEntry { filter, key, value in
            #expect(filter.utf8.elementsEqual(value.utf8))
            exported[key] = filter
        }
        #expect(exported.count == filters.count)
        for (index, filter) in filters.enumerated() {
            #expect(exported[index].map { Array($0.utf8) } == Array(filter.utf8))
        }
    }

    // MARK: - Randomized cross-check

    @Test("Random filters and topics agree with the reference matcher", arguments: [1 as UInt64, 42, 2024])
    func randomizedCrossCheck(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var trie = SubscriptionTrie<Int, String>()
        var reference: [Int: String] = [:]
        for key in 0..<600 {
            let filter = RandomTopics.filter(using: &generator)
            #expect(MQTTTopic.isValidTopicFilter(filter))
            trie.insert(filter: filter, key: key, value: filter)
            reference[key] = filter
        }
        // Remove a third, so that pruning is exercised between lookups.
        for key in stride(from: 0, to: 600, by: 3) {
            #expect(trie.remove(filter: reference[key]!, key: key) == reference[key])
            reference[key] = nil
        }
        #expect(trie.count == reference.count)
        for _ in 0..<1_500 {
            let topic = RandomTopics.topic(using: &generator)
            let expected = reference.filter { ReferenceMatcher.matches(filter: $0.value, topic: topic) }.keys.sorted()
            #expect(matches(trie, topic) == expected, "topic \(topic.debugDescription)")
        }
        var exported = 0
        trie.forEachEntry { filter, key, _ in
            exported += 1
            #expect(reference[key].map { Array($0.utf8) } == Array(filter.utf8))
        }
        #expect(exported == reference.count)
    }

    // MARK: - Scale

    @Test("100,000 filters load and match correctly")
    func hundredThousandFilters() {
        var trie = SubscriptionTrie<Int, Int>()
        // 25,000 devices, each with an exact filter, a `+` filter, a `#` filter and a filter that
        // overlaps with another device's.
        let devices = 25_000
        for device in 0..<devices {
            trie.insert(filter: "site/\(device % 100)/device/\(device)/telemetry", key: device * 4, value: device)
            trie.insert(filter: "site/\(device % 100)/device/\(device)/+", key: device * 4 + 1, value: device)
            trie.insert(filter: "site/\(device % 100)/device/\(device)/#", key: device * 4 + 2, value: device)
            trie.insert(filter: "site/+/device/\(device)/status", key: device * 4 + 3, value: device)
        }
        #expect(trie.count == 100_000)
        for device in stride(from: 0, to: devices, by: 997) {
            let base = device * 4
            #expect(matches(trie, "site/\(device % 100)/device/\(device)/telemetry") == [base, base + 1, base + 2])
            #expect(matches(trie, "site/\(device % 100)/device/\(device)/status") == [base + 1, base + 2, base + 3])
            #expect(matches(trie, "site/\(device % 100)/device/\(device)") == [base + 2])
            #expect(matches(trie, "site/\(device % 100)/device/\(device)/a/b") == [base + 2])
            #expect(matches(trie, "site/\((device + 1) % 100)/device/\(device)/status") == [base + 3])
        }
        #expect(matches(trie, "site/1/device/none/telemetry") == [])
    }
}
