/// Shared subscriptions `$share/{ShareName}/{filter}` (spec 4.8.2): every matching message goes to exactly one
/// member session of each matching group, chosen by `BrokerConfiguration.sharedSubscriptionStrategy`.
extension Broker {
    static func insertSharedMember(
        session: Session,
        subscription: StoredSubscription,
        shareName: String,
        filter: String,
        into trie: inout SubscriptionTrie<String, SharedGroup>
    ) {
        var group = trie.value(filter: filter, key: shareName) ?? SharedGroup()
        let member = SharedMember(
            clientIdentifier: session.clientIdentifier,
            session: session,
            filter: filter,
            options: subscription.options,
            identifier: subscription.subscriptionIdentifier
        )
        if let index = group.members.firstIndex(where: { $0.clientIdentifier == session.clientIdentifier }) {
            group.members[index] = member
        } else {
            group.members.append(member)
        }
        trie.insert(filter: filter, key: shareName, value: group)
    }

    static func deleteSharedMember(
        session: Session,
        shareName: String,
        filter: String,
        from trie: inout SubscriptionTrie<String, SharedGroup>
    ) {
        guard var group = trie.value(filter: filter, key: shareName) else { return }
        group.members.removeAll { $0.session === session }
        if group.members.isEmpty {
            trie.remove(filter: filter, key: shareName)
        } else {
            trie.insert(filter: filter, key: shareName, value: group)
        }
    }

    func addSharedMember(session: Session, subscription: StoredSubscription, shareName: String, filter: String) {
        self.sharedTrie.withWriteLock { trie in
            Self.insertSharedMember(session: session, subscription: subscription, shareName: shareName, filter: filter, into: &trie)
        }
    }

    func removeSharedMember(session: Session, shareName: String, filter: String) {
        self.sharedTrie.withWriteLock { trie in
            Self.deleteSharedMember(session: session, shareName: shareName, filter: filter, from: &trie)
        }
    }

    /// Gives `message` to one member of every shared subscription group whose filter matches. The groups are
    /// copied out under the read lock; the member choice itself takes no lock (an atomic turn per group).
    /// A connected member is preferred: starting at the strategy's choice, the first member whose session is
    /// online takes the message; when none is, the first choice's session queues it (if persistent).
    /// The shared groups with members whose filter matches; `version` is the shared trie's under the read lock.
    func matchSharedGroups(_ message: Message, version: inout UInt64) -> [(shareName: String, group: SharedGroup)] {
        var groups: [(shareName: String, group: SharedGroup)] = []
        self.sharedTrie.withReadLock { trie in
            version = self.sharedTrie.version
            trie.forEachMatch(topic: message.topic) { shareName, group in
                if !group.members.isEmpty { groups.append((shareName, group)) }
            }
        }
        return groups
    }

    /// One member of each group gets the message.
    func deliverShared(_ message: Message, groups: [(shareName: String, group: SharedGroup)], into result: inout RouteResult) {
        guard !groups.isEmpty else { return }
        result.matched = true
        for (shareName, group) in groups {
            self.deliverShared(message, group: group, shareName: shareName, excluding: nil, into: &result)
        }
    }

    /// Enqueues for one member. Returns whether some member took it.
    @discardableResult
    private func deliverShared(
        _ message: Message,
        group: SharedGroup,
        shareName: String,
        excluding: Session?,
        into result: inout RouteResult
    ) -> Bool {
        let members = group.members
        guard !members.isEmpty else { return false }
        let first = group.firstChoice(strategy: self.configuration.sharedSubscriptionStrategy, message: message)
        for pass in 0..<2 {
            for step in 0..<members.count {
                let member = members[(first + step) % members.count]
                if member.session === excluding { continue }
                let origin = SharedOrigin(shareName: shareName, filter: member.filter)
                switch member.session.enqueue(
                    message,
                    qos: min(message.qos, member.options.qos),
                    // Retain As Published applies as for any subscription [MQTT-3.3.1-12, MQTT-3.3.1-13].
                    retain: member.options.retainAsPublished ? message.retain : false,
                    subscriptionIdentifiers: member.identifier.map { [$0] } ?? [],
                    configuration: self.configuration,
                    limits: self.limits,
                    requireOnline: pass == 0,
                    sharedOrigin: origin
                ) {
                case .queued(let waker):
                    if let waker { result.wakers.append(waker) }
                    return true
                case .dropped(let firstInBurst, let overBudget):
                    if firstInBurst {
                        result.logs.append(
                            .queueFull(clientIdentifier: member.clientIdentifier, topic: message.topic, overBudget: overBudget)
                        )
                    }
                    return false
                case .discarded:
                    continue
                }
            }
        }
        return false
    }

    /// A shared-subscription delivery whose session ended before completing it goes to another member of its
    /// group (spec 4.8.2: "the Server SHOULD send the Application Message to another Client that is subscribed
    /// to the same Shared Subscription"). Returns the waker of the connection that got it.
    func redeliverShared(_ orphan: SharedOrphan) -> (any DeliveryWaker)? {
        guard let group = self.sharedTrie.withReadLock({ $0.value(filter: orphan.origin.filter, key: orphan.origin.shareName) })
        else { return nil }
        var result = RouteResult()
        guard self.deliverShared(orphan.message, group: group, shareName: orphan.origin.shareName, excluding: orphan.session, into: &result)
        else { return nil }
        return result.wakers.first
    }
}

/// An incomplete delivery of a shared subscription, left by a session that ended.
struct SharedOrphan: Sendable {
    var message: Message
    var origin: SharedOrigin
    var session: Session
}
