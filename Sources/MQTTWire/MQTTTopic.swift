/// Topic name and topic filter rules shared by the decoder and the broker (spec 4.7).
public enum MQTTTopic {
    /// The longest topic the wire can carry: a UTF-8 string has a two-byte length [MQTT-1.5.4-1].
    public static let maximumLength = 65_535

    /// A topic name as a PUBLISH carries it: at least one character [MQTT-4.7.3-1], no wildcard
    /// characters [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2] and at most 65,535 bytes [MQTT-4.7.3-3].
    public static func isValidTopicName(_ topic: String) -> Bool {
        var count = 0
        for byte in topic.utf8 {
            count += 1
            if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "#") || byte == 0 { return false }
        }
        return count > 0 && count <= maximumLength
    }

    /// A topic filter as SUBSCRIBE and UNSUBSCRIBE carry it: at least one character [MQTT-4.7.3-1];
    /// `#` only alone or after `/` and last [MQTT-4.7.1-2]; `+` only as a whole level [MQTT-4.7.1-3];
    /// no U+0000 [MQTT-4.7.3-2].
    public static func isValidTopicFilter(_ filter: String) -> Bool {
        let bytes = filter.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        var previous: UInt8? = nil
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            let next = bytes.index(after: index)
            switch byte {
            case 0:
                return false
            case UInt8(ascii: "#"):
                guard previous == nil || previous == UInt8(ascii: "/") else { return false }
                guard next == bytes.endIndex else { return false }
            case UInt8(ascii: "+"):
                guard previous == nil || previous == UInt8(ascii: "/") else { return false }
                guard next == bytes.endIndex || bytes[next] == UInt8(ascii: "/") else { return false }
            default:
                break
            }
            previous = byte
            index = next
        }
        return true
    }

    /// The number of levels of a topic name or filter: one more than its separators (`a//b` has three, spec 4.7.1.1).
    public static func levelCount(_ topic: String) -> Int {
        var levels = 1
        for byte in topic.utf8 where byte == UInt8(ascii: "/") { levels += 1 }
        return levels
    }

    /// True when the filter contains `+` or `#`.
    public static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }

    /// Splits `$share/{ShareName}/{filter}` into its parts, or returns nil when the filter is not a shared
    /// subscription. A share name must be at least one character with no `/`, `+` or `#`, and a filter
    /// must follow [MQTT-4.8.2-1, MQTT-4.8.2-2]; a malformed `$share/` filter returns `.invalid`.
    public static func parseSharedSubscription(_ filter: String) -> SharedSubscriptionParse {
        let prefix = "$share/"
        guard filter.hasPrefix(prefix) else { return .notShared }
        let rest = filter.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return .invalid }
        let shareName = rest[rest.startIndex..<slash]
        let topicFilter = rest[rest.index(after: slash)...]
        guard !shareName.isEmpty, !shareName.contains("+"), !shareName.contains("#") else { return .invalid }
        guard isValidTopicFilter(String(topicFilter)) else { return .invalid }
        return .shared(shareName: String(shareName), filter: String(topicFilter))
    }

    public enum SharedSubscriptionParse: Hashable, Sendable {
        case notShared
        case invalid
        case shared(shareName: String, filter: String)
    }
}
