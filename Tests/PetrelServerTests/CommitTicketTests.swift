import MQTTWire
import NIOCore
import PetrelCore
import PetrelServer
import Synchronization
import Testing

/// A store whose commits complete only when the test says so (or fail), to check what the connection holds.
final class GatedStore: BrokerStore {
    private let inner = InMemoryBrokerStore()
    private let waiting = Mutex<[@Sendable (Bool) -> Void]>([])
    private let gateOpen = Mutex(false)

    struct Ticket: StoreCommitTicket {
        let store: GatedStore
        func whenCommitted(_ callback: @escaping @Sendable (Bool) -> Void) {
            store.waiting.withLock { $0.append(callback) }
        }
    }

    func commitTicket() -> (any StoreCommitTicket)? { Ticket(store: self) }

    /// Completes every ticket handed out so far.
    func complete(_ committed: Bool) {
        let callbacks = self.waiting.withLock { waiting in
            defer { waiting.removeAll() }
            return waiting
        }
        for callback in callbacks { callback(committed) }
    }

    var waitingCount: Int { self.waiting.withLock { $0.count } }

    func load() -> BrokerStoreSnapshot { inner.load() }
    func sessionSaved(_ session: StoredSession) { inner.sessionSaved(session) }
    func sessionRemoved(clientIdentifier: String) { inner.sessionRemoved(clientIdentifier: clientIdentifier) }
    func subscriptionSaved(clientIdentifier: String, _ subscription: StoredSubscription) {
        inner.subscriptionSaved(clientIdentifier: clientIdentifier, subscription)
    }
    func subscriptionRemoved(clientIdentifier: String, filter: String) {
        inner.subscriptionRemoved(clientIdentifier: clientIdentifier, filter: filter)
    }
    func deliverySaved(clientIdentifier: String, _ delivery: StoredDelivery) {
        inner.deliverySaved(clientIdentifier: clientIdentifier, delivery)
    }
    func deliveryRemoved(clientIdentifier: String, sequence: UInt64) {
        inner.deliveryRemoved(clientIdentifier: clientIdentifier, sequence: sequence)
    }
    func inboundQoS2Stored(clientIdentifier: String, packetIdentifier: UInt16) {
        inner.inboundQoS2Stored(clientIdentifier: clientIdentifier, packetIdentifier: packetIdentifier)
    }
    func inboundQoS2Released(clientIdentifier: String, packetIdentifier: UInt16) {
        inner.inboundQoS2Released(clientIdentifier: clientIdentifier, packetIdentifier: packetIdentifier)
    }
    func retainedSet(_ message: Message) { inner.retainedSet(message) }
    func retainedRemoved(topic: String) { inner.retainedRemoved(topic: topic) }
}

@Suite("Acknowledgements wait for the store's commit")
struct CommitTicketTests {
    func connect(_ port: Int, id: String) async throws -> TestClient {
        let client = try await TestClient.connect(port: port, version: .v5)
        try await client.send(.connect(.init(protocolVersion: .v5, clientIdentifier: id, cleanStart: true)))
        guard case .connack = try await client.next() else { throw TestTimeout() }
        return client
    }

    @Test("PUBACK is held until the commit, and later packets do not overtake it")
    func heldInOrder() async throws {
        let store = GatedStore()
        try await withTestBroker(store: store) { port in
            let client = try await connect(port, id: "held")
            try await client.send(.publish(.init(topic: "t", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetIdentifier: 5)))
            try await client.send(.pingreq)
            await #expect(throws: TestTimeout.self) { try await client.next(timeout: .milliseconds(300)) }
            #expect(store.waitingCount == 1)
            store.complete(true)
            guard case .puback(let ack) = try await client.next() else { Issue.record("expected PUBACK first"); return }
            #expect(ack.packetIdentifier == 5)
            #expect(try await client.next() == .pingresp)
            await client.close()
        }
    }

    @Test("a failed commit closes the connection without acknowledging")
    func failedCommit() async throws {
        let store = GatedStore()
        try await withTestBroker(store: store) { port in
            let client = try await connect(port, id: "failed")
            try await client.send(.publish(.init(topic: "t", payload: ByteBuffer(string: "x"), qos: .exactlyOnce, packetIdentifier: 9)))
            for _ in 0..<100 where store.waitingCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
            store.complete(false)
            #expect(try await client.next() == nil)
        }
    }
}
