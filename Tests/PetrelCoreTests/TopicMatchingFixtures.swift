import PetrelCore

// MARK: - Spec match table

/// One (filter, topic, matches) example, mostly taken from spec section 4.7 of MQTT 3.1.1 and 5.0.
struct MatchCase: Sendable, CustomStringConvertible {
    let filter: String
    let topic: String
    let matches: Bool

    init(_ filter: String, _ topic: String, _ matches: Bool) {
        self.filter = filter
        self.topic = topic
        self.matches = matches
    }

    var description: String { "\(filter.debugDescription) ~ \(topic.debugDescription) -> \(matches)" }
}

enum MatchTable {
    /// Examples of 4.7.1.2: `#` matches the parent level and any number of child levels [MQTT-4.7.1-2].
    static let multiLevel: [MatchCase] = [
        MatchCase("sport/tennis/player1/#", "sport/tennis/player1", true),
        MatchCase("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        MatchCase("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        MatchCase("sport/tennis/player1/#", "sport/tennis/player2", false),
        MatchCase("sport/tennis/player1/#", "sport/tennis", false),
        MatchCase("sport/#", "sport", true),
        MatchCase("sport/#", "sport/", true),
        MatchCase("sport/#", "sports", false),
        MatchCase("#", "sport", true),
        MatchCase("#", "sport/tennis/player1", true),
        MatchCase("#", "/", true),
        MatchCase("#", "/finance", true),
    ]

    /// Examples of 4.7.1.3: `+` matches exactly one level, which may be empty [MQTT-4.7.1-3].
    static let singleLevel: [MatchCase] = [
        MatchCase("sport/tennis/+", "sport/tennis/player1", true),
        MatchCase("sport/tennis/+", "sport/tennis/player2", true),
        MatchCase("sport/tennis/+", "sport/tennis/player1/ranking", false),
        MatchCase("sport/+", "sport", false),
        MatchCase("sport/+", "sport/", true),
        MatchCase("+", "sport", true),
        MatchCase("+/+", "/finance", true),
        MatchCase("/+", "/finance", true),
        MatchCase("+", "/finance", false),
        MatchCase("+/tennis/#", "sport/tennis/player1", true),
        MatchCase("+/tennis/#", "sport/tennis", true),
        MatchCase("+/tennis/#", "sport/golf", false),
        MatchCase("sport/+/player1", "sport/tennis/player1", true),
        MatchCase("sport/+/player1", "sport//player1", true),
    ]

    /// Examples of 4.7.2: filters starting with a wildcard do not match topics starting with `$`
    /// [MQTT-4.7.2-1]; filters that spell out the `$` level do.
    static let dollarTopics: [MatchCase] = [
        MatchCase("#", "$SYS/monitor/Clients", false),
        MatchCase("#", "$SYS", false),
        MatchCase("+", "$SYS", false),
        MatchCase("+/#", "$SYS/monitor", false),
        MatchCase("+/monitor/Clients", "$SYS/monitor/Clients", false),
        MatchCase("$SYS/#", "$SYS/monitor/Clients", true),
        MatchCase("$SYS/#", "$SYS", true),
        MatchCase("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        MatchCase("$SYS/+", "$SYS/", true),
        // Only a leading `$` is special.
        MatchCase("#", "a/$SYS", true),
        MatchCase("a/+", "a/$SYS", true),
        MatchCase("+/$x", "a/$x", true),
    ]

    /// Examples of 4.7.3 and level edge cases: levels compare byte for byte, case-sensitively and
    /// without Unicode normalisation [MQTT-4.7.3-4]; empty levels are levels.
    static let literalLevels: [MatchCase] = [
        MatchCase("ACCOUNTS", "Accounts", false),
        MatchCase("Accounts", "Accounts", true),
        MatchCase("Accounts payable", "Accounts payable", true),
        MatchCase("/finance", "finance", false),
        MatchCase("finance", "/finance", false),
        MatchCase("/finance", "/finance", true),
        MatchCase("a//b", "a//b", true),
        MatchCase("a//b", "a/b", false),
        MatchCase("a/+/b", "a//b", true),
        MatchCase("a/#", "a//b", true),
        MatchCase("/", "/", true),
        MatchCase("+/+", "/", true),
        MatchCase("+", "/", false),
        MatchCase("/#", "/", true),
        MatchCase("/#", "a", false),
        MatchCase("a/b", "a/b/", false),
        MatchCase("a/b/", "a/b", false),
        MatchCase("a/b/+", "a/b/", true),
        // Precomposed and decomposed é are canonically equal Strings but different bytes.
        MatchCase("caf\u{E9}", "cafe\u{301}", false),
        MatchCase("cafe\u{301}", "cafe\u{301}", true),
        MatchCase("+/\u{301}", "a/\u{301}", true),
        // Shared subscriptions are resolved before the trie; here `$share` is just a level.
        MatchCase("$share/group/a", "a", false),
        MatchCase("$share/group/a", "$share/group/a", true),
    ]

    static let all: [MatchCase] = multiLevel + singleLevel + dollarTopics + literalLevels

    /// Distinct filters of the table. Deduplicated by bytes: a `Set<String>` would merge canonically
    /// equal strings that the broker must keep apart.
    static var filters: [String] { distinctByBytes(all.map(\.filter)) }

    /// Distinct topics of the table, deduplicated by bytes.
    static var topics: [String] { distinctByBytes(all.map(\.topic)) }

    static func distinctByBytes(_ strings: [String]) -> [String] {
        var seen: Set<[UInt8]> = []
        return strings.filter { seen.insert(Array($0.utf8)).inserted }
    }
}

// MARK: - Reference matcher

/// A direct transcription of the matching rules of spec 4.7, used to cross-check the trees.
enum ReferenceMatcher {
    static func levels(_ string: String) -> [[UInt8]] {
        string.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map(Array.init)
    }

    static func matches(filter: String, topic: String) -> Bool {
        let plus = [UInt8(ascii: "+")]
        let hash = [UInt8(ascii: "#")]
        let filterLevels = levels(filter)
        let topicLevels = levels(topic)
        if topic.utf8.first == UInt8(ascii: "$"), filterLevels[0] == plus || filterLevels[0] == hash {
            return false
        }
        for (index, level) in filterLevels.enumerated() {
            if level == hash { return true }
            guard index < topicLevels.count else { return false }
            if level != plus, level != topicLevels[index] { return false }
        }
        return filterLevels.count == topicLevels.count
    }
}

// MARK: - Random topics

/// SplitMix64, so that randomized tests are reproducible from their seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum RandomTopics {
    /// A small alphabet, so that random filters and topics collide often, with the awkward cases:
    /// empty levels, `$` levels, and canonically equal but byte-different levels.
    static let levels = ["a", "b", "c", "", "$SYS", "$x", "caf\u{E9}", "cafe\u{301}", "\u{301}"]

    /// A valid topic name: one lone empty level would be the empty string, which is not [MQTT-4.7.3-1].
    static func topic(using generator: inout SeededGenerator) -> String {
        let count = Int.random(in: 1...5, using: &generator)
        let topic = (0..<count).map { _ in levels.randomElement(using: &generator)! }.joined(separator: "/")
        return topic.isEmpty ? "/" : topic
    }

    static func filter(using generator: inout SeededGenerator) -> String {
        let count = Int.random(in: 1...5, using: &generator)
        var parts: [String] = []
        for index in 0..<count {
            let roll = Int.random(in: 0..<10, using: &generator)
            if index == count - 1, roll == 0 {
                parts.append("#")
            } else if roll < 3 {
                parts.append("+")
            } else {
                parts.append(levels.randomElement(using: &generator)!)
            }
        }
        let filter = parts.joined(separator: "/")
        return filter.isEmpty ? "/" : filter
    }
}
