import MQTTWire

/// The rules of an ACL file in Mosquitto's syntax, parsed; files written for Mosquitto work unchanged.
///
/// ```
/// # comment
/// topic read public/#            anonymous clients: lines before the first `user` line
/// user alice                     starts alice's block
/// topic readwrite alice/#        access is read, write, readwrite (the default) or deny
/// topic deny alice/secret/#
/// pattern write devices/%c/#     every client: %c is its client id, %u its user name
/// ```
///
/// A check goes as Mosquitto's does: the client's own rules first, then the patterns, deny rules ahead of the
/// others in each; the first rule that matches and either denies or grants the access decides, and a client
/// that no rule grants is denied. A rule that starts with a wildcard does not match a topic starting with `$`
/// [MQTT-4.7.2-1], so `$SYS/...` is reachable only through a rule that names it. Patterns are not applied to a
/// client whose id or user name contains `+` or `#`, which could widen them; a pattern with `%u` is skipped for
/// a client without a user name.
public struct AccessControlList: Sendable, Hashable {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(self.line): \(self.reason)" }
    }

    /// What a rule allows.
    public enum Access: String, Sendable, Hashable {
        case read, write, readwrite, deny

        func grants(_ action: AccessAction) -> Bool {
            switch (self, action) {
            case (.readwrite, _), (.read, .receive), (.read, .subscribe), (.write, .publish): true
            default: false
            }
        }
    }

    public struct Rule: Sendable, Hashable {
        public var access: Access
        /// The topic filter, with `%c` and `%u` in a pattern.
        public var filter: String
        /// The line of the file it came from.
        public var line: Int
    }

    /// Rules for clients without a user name.
    public private(set) var anonymousRules: [Rule] = []
    /// Rules per user name.
    public private(set) var userRules: [String: [Rule]] = [:]
    /// Rules for everyone, with `%c` / `%u`.
    public private(set) var patterns: [Rule] = []

    public init() {}

    public init(parsing text: String) throws(ParseError) {
        var user: String?
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let number = offset + 1
            let line = rawLine.drop { $0 == " " || $0 == "\t" }.trimmingTrailingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let keywordEnd = line.firstIndex { $0 == " " || $0 == "\t" } ?? line.endIndex
            let keyword = line[..<keywordEnd]
            let rest = line[keywordEnd...].drop { $0 == " " || $0 == "\t" }
            switch keyword {
            case "user":
                guard !rest.isEmpty else { throw ParseError(line: number, reason: "user without a user name") }
                user = String(rest)
                if self.userRules[String(rest)] == nil { self.userRules[String(rest)] = [] }
            case "topic", "pattern":
                let rule = try Self.rule(rest, line: number)
                if keyword == "pattern" {
                    Self.add(rule, to: &self.patterns)
                } else if let user {
                    Self.add(rule, to: &self.userRules[user, default: []])
                } else {
                    Self.add(rule, to: &self.anonymousRules)
                }
            default:
                throw ParseError(line: number, reason: "unknown keyword \"\(keyword)\" (expected topic, pattern or user)")
            }
        }
    }

    /// `[read|write|readwrite|deny] FILTER`; the filter is the rest of the line and may contain spaces.
    private static func rule(_ text: Substring, line: Int) throws(ParseError) -> Rule {
        guard !text.isEmpty else { throw ParseError(line: line, reason: "empty topic") }
        var access = Access.readwrite
        var filter = text
        let wordEnd = text.firstIndex { $0 == " " || $0 == "\t" } ?? text.endIndex
        if let given = Access(rawValue: String(text[..<wordEnd])) {
            access = given
            filter = text[wordEnd...].drop { $0 == " " || $0 == "\t" }
            guard !filter.isEmpty else { throw ParseError(line: line, reason: "empty topic after \"\(given.rawValue)\"") }
        }
        guard MQTTTopic.isValidTopicFilter(String(filter)) else {
            throw ParseError(line: line, reason: "invalid topic filter \"\(filter)\"")
        }
        return Rule(access: access, filter: String(filter), line: line)
    }

    /// Deny rules go ahead of the others, as in Mosquitto, so that order within a block does not matter for them.
    private static func add(_ rule: Rule, to rules: inout [Rule]) {
        if rule.access == .deny, let firstAllowing = rules.firstIndex(where: { $0.access != .deny }) {
            rules.insert(rule, at: firstAllowing)
        } else {
            rules.append(rule)
        }
    }

    /// The rules that apply to `client`, with the patterns filled in.
    public func rules(for client: ClientIdentity) -> ClientRules {
        var own: [CompiledRule] = []
        if let username = client.username {
            own = (self.userRules[username] ?? []).map { CompiledRule($0.access, $0.filter) }
        } else {
            own = self.anonymousRules.map { CompiledRule($0.access, $0.filter) }
        }
        var filled: [CompiledRule] = []
        let dangerous = { (name: String) in name.contains("+") || name.contains("#") }
        if !self.patterns.isEmpty, !dangerous(client.clientIdentifier), !(client.username.map(dangerous) ?? false) {
            for pattern in self.patterns {
                if pattern.filter.contains("%u") && client.username == nil { continue }
                var filter = pattern.filter.replacing("%c", with: client.clientIdentifier)
                if let username = client.username { filter = filter.replacing("%u", with: username) }
                filled.append(CompiledRule(pattern.access, filter))
            }
        }
        return ClientRules(ordered: own + filled)
    }
}

/// One client's rules, ready to check topics against.
public struct ClientRules: Sendable, Hashable {
    /// The client's own rules, then the filled-in patterns, each with its deny rules first: the first rule
    /// that matches and decides is the answer.
    let ordered: [CompiledRule]

    init(ordered: [CompiledRule]) {
        self.ordered = ordered
    }

    /// Rules granted by topic filter lists (a token's claims): `publish` may be written to, `subscribe` read
    /// from, `all` both. Anything else is denied.
    public init(publish: [String] = [], subscribe: [String] = [], all: [String] = []) {
        self.ordered = all.filter(MQTTTopic.isValidTopicFilter).map { CompiledRule(.readwrite, $0) }
            + publish.filter(MQTTTopic.isValidTopicFilter).map { CompiledRule(.write, $0) }
            + subscribe.filter(MQTTTopic.isValidTopicFilter).map { CompiledRule(.read, $0) }
    }

    /// Publishing to or receiving from `topic` (a topic name), or subscribing to `topic` (a filter).
    public func allows(_ action: AccessAction, _ topic: String) -> Bool {
        for rule in self.ordered {
            let applies = action == .subscribe ? rule.covers(topic) : rule.matches(topic)
            guard applies else { continue }
            if rule.access == .deny { return false }
            if rule.access.grants(action) { return true }
        }
        return false
    }
}

/// A rule's filter as levels. Levels compare as bytes: topics are not normalised [MQTT-4.7.3-4].
struct CompiledRule: Sendable, Hashable {
    enum Level: Sendable, Hashable {
        case literal(TopicLevel)
        case single
        case multi
    }

    let access: AccessControlList.Access
    let levels: [Level]

    init(_ access: AccessControlList.Access, _ filter: String) {
        self.access = access
        var levels: [Level] = []
        var cursor = TopicLevels(filter)
        while let level = cursor.next() {
            switch level {
            case "+": levels.append(.single)
            case "#": levels.append(.multi)
            default: levels.append(.literal(TopicLevel(owning: level)))
            }
        }
        self.levels = levels
    }

    /// A wildcard in the first level does not reach topics starting with `$` [MQTT-4.7.2-1].
    private func skipsDollar(_ topic: String) -> Bool {
        guard topic.utf8.first == UInt8(ascii: "$"), let first = self.levels.first else { return false }
        if case .literal = first { return false }
        return true
    }

    /// A topic name the rule's filter matches (MQTT topic matching, spec 4.7); iterative.
    func matches(_ topic: String) -> Bool {
        if self.skipsDollar(topic) { return false }
        var names = TopicLevels(topic)
        for level in self.levels {
            if case .multi = level { return true }  // also the parent level [MQTT-4.7.1-2]
            guard let name = names.next() else { return false }
            if case .literal(let literal) = level, literal != TopicLevel(name) { return false }
        }
        return names.next() == nil
    }

    /// A filter every topic of which the rule's filter matches: a subscription no wider than the rule.
    func covers(_ filter: String) -> Bool {
        if self.skipsDollar(filter) { return false }
        var wanted = TopicLevels(filter)
        for level in self.levels {
            if case .multi = level { return true }
            guard let asked = wanted.next() else { return false }
            if asked == "#" { return false }
            if case .literal(let literal) = level, asked == "+" || literal != TopicLevel(asked) { return false }
        }
        return wanted.next() == nil
    }
}

extension Substring {
    fileprivate func trimmingTrailingBlanks() -> Substring {
        var end = self.endIndex
        while end > self.startIndex {
            let previous = self.index(before: end)
            guard self[previous] == " " || self[previous] == "\t" || self[previous] == "\r" else { break }
            end = previous
        }
        return self[..<end]
    }
}
