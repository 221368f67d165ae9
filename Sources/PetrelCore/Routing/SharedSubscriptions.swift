import Synchronization

/// How a message matching a shared subscription picks the one member of the group that receives it (spec 4.8.2
/// leaves the choice to the server).
public enum SharedSubscriptionStrategy: String, Sendable, CaseIterable {
    /// Members in turn (an atomic counter per group). The default.
    case roundRobin = "round-robin"
    /// A member at random.
    case random
    /// The same member for every message of one publisher (hash of the publisher's client identifier), while
    /// the group is unchanged; the broker's own messages fall back to round robin.
    case stickyPublisher = "sticky-publisher"
    /// The same member for every message on one topic (hash of the topic), while the group is unchanged.
    case stickyTopic = "sticky-topic"
}

/// One session subscribed to a shared subscription.
struct SharedMember: Sendable {
    let clientIdentifier: String
    let session: Session
    /// The topic filter without its `$share/{ShareName}/` prefix.
    let filter: String
    var options: MQTTPacket.SubscriptionOptions
    var identifier: UInt32?
}

/// The per-group turn counter. Routing bumps it without any lock; only membership changes take the shared
/// trie's write lock.
final class SharedGroupCursor: Sendable {
    let turn = Atomic<UInt64>(0)
}

/// The members of one shared subscription `$share/{ShareName}/{filter}`, as stored in the shared trie under
/// the filter with the share name as key. The value is replaced as a whole when the membership changes, so
/// routing copies a consistent member list out under the read lock.
struct SharedGroup: Sendable {
    var members: [SharedMember] = []
    let cursor = SharedGroupCursor()

    /// The index of the member to try first for a message.
    func firstChoice(strategy: SharedSubscriptionStrategy, message: Message) -> Int {
        let count = UInt64(self.members.count)
        switch strategy {
        case .roundRobin:
            return Int(self.cursor.turn.wrappingAdd(1, ordering: .relaxed).oldValue % count)
        case .random:
            return Int.random(in: 0..<self.members.count)
        case .stickyPublisher:
            guard let publisher = message.publisherClientIdentifier else {
                return Int(self.cursor.turn.wrappingAdd(1, ordering: .relaxed).oldValue % count)
            }
            return Int(Self.stableHash(publisher) % count)
        case .stickyTopic:
            return Int(Self.stableHash(message.topic) % count)
        }
    }

    /// FNV-1a over the UTF-8 bytes: the same on every run, unlike `Hasher`.
    static func stableHash(_ string: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in string.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// Where a delivery made through a shared subscription came from, so that it can be given to another member
/// when its session ends before the message was completed (spec 4.8.2).
struct SharedOrigin: Sendable, Hashable {
    var shareName: String
    var filter: String

    /// As a subscription names it: `$share/{name}/{filter}`.
    var subscription: String { "$share/\(shareName)/\(filter)" }

    init(shareName: String, filter: String) {
        self.shareName = shareName
        self.filter = filter
    }

    /// From `$share/{name}/{filter}`; nil for anything else.
    init?(subscription: String) {
        guard case .shared(let shareName, let filter) = MQTTTopic.parseSharedSubscription(subscription) else { return nil }
        self.init(shareName: shareName, filter: filter)
    }
}
