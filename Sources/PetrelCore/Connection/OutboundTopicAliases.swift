/// The topic aliases the broker sets towards one client (spec 3.3.2.3.4), for one network connection only
/// [MQTT-3.3.2-7]. Holds at most `capacity` aliases, numbered 1...capacity, where capacity is the client's
/// Topic Alias Maximum (lowered to `BrokerConfiguration.maximumOutboundTopicAliases`), so no alias above the
/// client's maximum is ever sent [MQTT-3.1.2-26, MQTT-3.3.2-11]; capacity 0 sends none [MQTT-3.1.2-27].
///
/// Replacement policy: least recently used. The first PUBLISH on a topic sends the topic and a new alias;
/// later ones send the alias and an empty topic. When every alias is taken, the alias of the topic sent least
/// recently is given to the new topic (sent with its topic, which replaces the client's mapping).
struct OutboundTopicAliases {
    enum Assignment: Equatable {
        /// No alias: send the topic.
        case none
        /// Send the topic and this alias: the client records the mapping.
        case set(UInt16)
        /// Send this alias and an empty topic.
        case use(UInt16)
    }

    let capacity: Int
    private var byTopic: [String: (alias: UInt16, lastUse: UInt64)] = [:]
    private var topicByAlias: [UInt16: String] = [:]
    /// Aliases freed by `forget`, reused first.
    private var free: [UInt16] = []
    private var nextFresh = 1
    private var clock: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(0, min(capacity, Int(UInt16.max)))
    }

    var count: Int { self.byTopic.count }

    mutating func assign(_ topic: String) -> Assignment {
        guard self.capacity > 0 else { return .none }
        self.clock += 1
        if let entry = self.byTopic[topic] {
            self.byTopic[topic] = (entry.alias, self.clock)
            return .use(entry.alias)
        }
        let alias: UInt16
        if let reused = self.free.popLast() {
            alias = reused
        } else if self.nextFresh <= self.capacity {
            alias = UInt16(self.nextFresh)
            self.nextFresh += 1
        } else {
            // Evict the least recently used topic; capacity is bounded, so the scan is too.
            var oldest: (topic: String, alias: UInt16, lastUse: UInt64)?
            for (candidate, entry) in self.byTopic where oldest == nil || entry.lastUse < oldest!.lastUse {
                oldest = (candidate, entry.alias, entry.lastUse)
            }
            guard let oldest else { return .none }
            self.byTopic.removeValue(forKey: oldest.topic)
            alias = oldest.alias
        }
        self.byTopic[topic] = (alias, self.clock)
        self.topicByAlias[alias] = topic
        return .set(alias)
    }

    /// Undoes a `.set` whose PUBLISH was never sent (too large for the client): the client may not know the
    /// mapping, so the alias must not be used with an empty topic; it is given out again with a topic.
    mutating func forget(_ alias: UInt16) {
        guard let topic = self.topicByAlias.removeValue(forKey: alias) else { return }
        self.byTopic.removeValue(forKey: topic)
        self.free.append(alias)
    }
}
