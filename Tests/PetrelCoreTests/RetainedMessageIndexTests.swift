import Testing
@testable import PetrelCore

@Suite("RetainedMessageIndex")
struct RetainedMessageIndexTests {
    // MARK: - Helpers

    /// The topics returned for a filter, sorted by their bytes.
    private func matches<Message>(_ index: RetainedMessageIndex<Message>, _ filter: String) -> [[UInt8]] {
        var topics: [[UInt8]] = []
        index.forEachMatch(filter: filter) { topic, _ in topics.append(Array(topic.utf8)) }
        return topics.sorted { $0.lexicographicallyPrecedes($1) }
    }

    private func bytes(_ topics: some Sequence<String>) -> [[UInt8]] {
        topics.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    // MARK: - Spec examples

    @Test("Matching follows spec 4.7 [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4]",
          arguments: MatchTable.all)
    func specExample(_ example: MatchCase) {
        var index = RetainedMessageIndex<String>()
        index.set(topic: example.topic, message: "m")
        var visited: [String] = []
        index.forEachMatch(filter: example.filter) { topic, message in
            #expect(message == "m")
            visited.append(topic)
        }
        #expect(bytes(visited) == (example.matches ? bytes([example.topic]) : []))
    }

    @Test("All spec topics retained at once give each filter exactly its matching topics")
    func specExamplesTogether() {
        var index = RetainedMessageIndex<Int>()
        let topics = MatchTable.topics
        for (number, topic) in topics.enumerated() {
            index.set(topic: topic, message: number)
        }
        #expect(index.count == topics.count)
        for filter in MatchTable.filters {
            let expected = topics.filter { ReferenceMatcher.matches(filter: filter, topic: $0) }
            #expect(matches(index, filter) == bytes(expected), "filter \(filter.debugDescription)")
        }
    }

    // MARK: - Set, replace, clear

    @Test func setReplaceAndClear() {
        var index = RetainedMessageIndex<Int>()
        #expect(index.isEmpty)
        #expect(index.set(topic: "a/b", message: 1) == nil)
        #expect(index.set(topic: "a/b", message: 2) == 1)
        #expect(index.set(topic: "a", message: 3) == nil)
        #expect(index.count == 2)
        #expect(index.message(topic: "a/b") == 2)
        #expect(index.message(topic: "a") == 3)
        #expect(index.message(topic: "a/b/c") == nil)
        #expect(index.message(topic: "a/+") == nil)
        #expect(index.set(topic: "a/b", message: nil) == 2)
        #expect(index.set(topic: "a/b", message: nil) == nil)
        #expect(index.set(topic: "x/y", message: nil) == nil)
        #expect(index.count == 1)
        #expect(matches(index, "#") == bytes(["a"]))
    }

    @Test("Clearing every message prunes every node")
    func clearingPrunes() {
        var index = RetainedMessageIndex<Int>()
        let topics = ["a/b/c", "a/b", "a", "/", "a//b", "$SYS/x"]
        for (number, topic) in topics.enumerated() {
            index.set(topic: topic, message: number)
        }
        #expect(index.set(topic: "a/b/c/d", message: nil) == nil)
        let nodes = index.nodeCount
        #expect(index.set(topic: "never/set", message: nil) == nil)
        #expect(index.nodeCount == nodes)
        for topic in topics {
            index.set(topic: topic, message: nil)
        }
        #expect(index.isEmpty)
        #expect(index.nodeCount == 1)
    }

    @Test("removeAll(where:) removes the selected messages, counts them and prunes")
    func removeAllWhere() {
        var index = RetainedMessageIndex<Int>()
        for number in 0..<100 {
            index.set(topic: "t/\(number % 10)/\(number)", message: number)
        }
        index.removeAll { _, message in message % 2 == 0 }
        #expect(index.count == 50)
        var remaining: [Int] = []
        index.forEach { _, message in remaining.append(message) }
        #expect(remaining.sorted() == Array(stride(from: 1, to: 100, by: 2)))
        #expect(matches(index, "t/3/+").count == 10)
        #expect(matches(index, "t/4/+").isEmpty)
        index.removeAll { topic, _ in topic.hasPrefix("t/") }
        #expect(index.isEmpty)
        #expect(index.nodeCount == 1)
    }

    @Test("A copy is independent of the original")
    func valueSemantics() {
        var original = RetainedMessageIndex<Int>()
        original.set(topic: "a", message: 1)
        var copy = original
        copy.set(topic: "a", message: nil)
        copy.set(topic: "b", message: 2)
        #expect(original.message(topic: "a") == 1)
        #expect(original.message(topic: "b") == nil)
        #expect(copy.message(topic: "a") == nil)
    }

    @Test("`#` skips $ topics at the root only; `$SYS/#` finds them [MQTT-4.7.2-1]")
    func dollarTopics() {
        var index = RetainedMessageIndex<Int>()
        for (number, topic) in ["$SYS/broker/uptime", "$SYS", "a/$SYS", "a", "$x/y"].enumerated() {
            index.set(topic: topic, message: number)
        }
        #expect(matches(index, "#") == bytes(["a", "a/$SYS"]))
        #expect(matches(index, "+/#") == bytes(["a", "a/$SYS"]))
        #expect(matches(index, "+") == bytes(["a"]))
        #expect(matches(index, "$SYS/#") == bytes(["$SYS", "$SYS/broker/uptime"]))
        #expect(matches(index, "$x/+") == bytes(["$x/y"]))
        var all: [String] = []
        index.forEach { topic, _ in all.append(topic) }
        #expect(all.count == 5)
    }

    // MARK: - Randomized cross-check

    @Test("Random topics and filters agree with the reference matcher", arguments: [7 as UInt64, 99, 31337])
    func randomizedCrossCheck(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var index = RetainedMessageIndex<String>()
        // Keyed by bytes: String keys would merge canonically equal topics.
        var reference: [[UInt8]: (topic: String, message: String)] = [:]
        for number in 0..<800 {
            let topic = RandomTopics.topic(using: &generator)
            #expect(MQTTTopic.isValidTopicName(topic))
            let key = Array(topic.utf8)
            let message: String? = Int.random(in: 0..<4, using: &generator) == 0 ? nil : "\(number)"
            #expect(index.set(topic: topic, message: message) == reference[key]?.message)
            reference[key] = message.map { (topic, $0) }
        }
        #expect(index.count == reference.count)
        for _ in 0..<1_500 {
            let filter = RandomTopics.filter(using: &generator)
            let expected = reference.values.map(\.topic).filter { ReferenceMatcher.matches(filter: filter, topic: $0) }
            var found: [String] = []
            index.forEachMatch(filter: filter) { topic, message in
                found.append(topic)
                #expect(reference[Array(topic.utf8)]?.message == message)
            }
            #expect(bytes(found) == bytes(expected), "filter \(filter.debugDescription)")
        }
    }

    // MARK: - Scale

    @Test("100,000 retained topics load and match correctly")
    func hundredThousandTopics() {
        var index = RetainedMessageIndex<Int>()
        for number in 0..<100_000 {
            index.set(topic: "site/\(number % 100)/device/\(number)/state", message: number)
        }
        #expect(index.count == 100_000)
        #expect(index.message(topic: "site/42/device/4242/state") == 4242)
        #expect(matches(index, "site/42/device/4242/state") == bytes(["site/42/device/4242/state"]))
        #expect(matches(index, "site/42/device/+/state").count == 1_000)
        #expect(matches(index, "site/+/device/4242/#") == bytes(["site/42/device/4242/state"]))
        #expect(matches(index, "site/7/#").count == 1_000)
        #expect(matches(index, "#").count == 100_000)
    }
}
