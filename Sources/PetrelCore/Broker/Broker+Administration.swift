import NIOCore

/// What an operator's action changed, and the connections the caller must wake (as those of `tick(now:)`): a
/// disconnected client's connection notices on its own event loop that it must go, and sends DISCONNECT 0x98
/// there (the engine never touches a connection).
public struct AdministrationResult {
    /// False when there was nothing to act on (no such client connected, no such session or retained message).
    public var found: Bool
    public var wake: [any DeliveryWaker]
    public var logs: [LogRecord]

    public init(found: Bool, wake: [any DeliveryWaker] = [], logs: [LogRecord] = []) {
        self.found = found
        self.wake = wake
        self.logs = logs
    }
}

/// Operators' actions (the admin API). Like a session takeover, a disconnect is a request the connection acts on:
/// the session remembers the connection's token, and the connection, woken, finds it when it drains its queue.
extension Broker {
    /// Disconnects the connected client of `clientIdentifier`: MQTT 5 clients get DISCONNECT 0x98 Administrative
    /// action, then the connection closes. Its will is published as for any close the client did not ask for
    /// [MQTT-3.1.2-8]; its session stays as long as its expiry interval says.
    public func disconnectClient(_ clientIdentifier: String) -> AdministrationResult {
        guard let session = self.registry.withLock({ $0.sessions[clientIdentifier] }),
            let waker = session.requestDisconnect()
        else { return AdministrationResult(found: false) }
        return AdministrationResult(
            found: true,
            wake: [waker],
            logs: [
                LogRecord(
                    level: .notice, message: "Client disconnect requested by an operator",
                    metadata: ["mqtt.client_id": clientIdentifier])
            ]
        )
    }

    /// Removes the session of `clientIdentifier`, connected or not: a connected client is disconnected first
    /// (DISCONNECT 0x98), its subscriptions, queued messages and stored state go. A will waiting for its delay is
    /// published now, as the session ends [MQTT-3.1.2-8]; a connected client's will is published when its
    /// connection closes. Shared-subscription messages it held go to another member of their group (spec 4.8.2).
    public func removeSession(_ clientIdentifier: String, now: NIODeadline) -> AdministrationResult {
        var result = AdministrationResult(found: false)
        var pendingWill: PendingWill?
        self.registry.withLock { registry in
            guard let session = registry.sessions[clientIdentifier] else { return }
            if let waker = session.requestDisconnect() { result.wake.append(waker) }
            if self.endSession(session, in: &registry, onlyIfDetached: false, wakers: &result.wake) != nil {
                result.found = true
                pendingWill = registry.pendingWills.removeValue(forKey: clientIdentifier)
            }
        }
        guard result.found else { return result }
        if let pendingWill {
            let routed = self.publishWill(pendingWill.will, clientIdentifier: clientIdentifier, now: now)
            for waker in routed.wakers where !result.wake.contains(where: { $0 === waker }) {
                result.wake.append(waker)
            }
            result.logs.append(contentsOf: routed.logs)
        }
        result.logs.append(
            LogRecord(
                level: .notice, message: "Session removed by an operator",
                metadata: ["mqtt.client_id": clientIdentifier])
        )
        return result
    }

    /// Removes the retained message of `topic` (from the store too), as a retained PUBLISH with an empty payload
    /// would [MQTT-3.3.1-6]. `found` says whether there was one.
    public func removeRetainedMessage(topic: String) -> AdministrationResult {
        let removed = self.retainedIndex.withWriteLock { index -> Bool in
            guard let previous = index.set(topic: topic, message: nil) else { return false }
            self.counters.retainedBytes.wrappingSubtract(previous.payload.readableBytes, ordering: .relaxed)
            self.store.retainedRemoved(topic: topic)
            return true
        }
        return AdministrationResult(found: removed)
    }
}
