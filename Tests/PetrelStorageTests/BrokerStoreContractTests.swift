import Foundation
import MQTTWire
import NIOCore
import PetrelCore
import PetrelStorage
import Testing

/// The kinds of store every contract test runs against.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case sqlite

    var testDescription: String { self.rawValue }
}

/// Makes a store of one kind and "restarts" it: the in-memory store is kept, the SQLite store is closed and
/// opened again on the same directory.
final class StoreHarness {
    let kind: StoreKind
    let directory: String
    private(set) var store: any BrokerStore

    init(_ kind: StoreKind, durability: StorageDurability = .batched) throws {
        self.kind = kind
        self.directory = temporaryDirectory()
        self.configuration.durability = durability
        self.store = try Self.make(kind, directory: self.directory, configuration: self.configuration)
    }

    var configuration = SQLiteStoreConfiguration()

    private static func make(_ kind: StoreKind, directory: String, configuration: SQLiteStoreConfiguration) throws -> any BrokerStore {
        switch kind {
        case .memory: return InMemoryBrokerStore()
        case .sqlite: return try SQLiteBrokerStore(directory: directory, configuration: configuration)
        }
    }

    /// Everything written so far, as a restarted broker would load it.
    func reload() throws -> BrokerStoreSnapshot {
        if let sqlite = self.store as? SQLiteBrokerStore {
            sqlite.close()
            self.store = try SQLiteBrokerStore(directory: self.directory, configuration: self.configuration)
        }
        return self.store.load()
    }

    deinit {
        (self.store as? SQLiteBrokerStore)?.close()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "petrel-store-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func message(
    _ topic: String,
    _ body: String,
    qos: QoS = .atLeastOnce,
    retain: Bool = false,
    properties: MQTTProperties = .init(),
    expiresAt: NIODeadline? = nil,
    publisher: String? = "pub"
) -> Message {
    Message(
        topic: topic,
        payload: ByteBuffer(string: body),
        qos: qos,
        retain: retain,
        properties: properties,
        expiresAt: expiresAt,
        publisherClientIdentifier: publisher
    )
}

func delivery(_ sequence: UInt64, _ message: Message, qos: QoS = .atLeastOnce, packetIdentifier: UInt16? = nil, state: DeliveryState = .queued) -> StoredDelivery {
    StoredDelivery(
        sequence: sequence,
        message: message,
        qos: qos,
        retain: false,
        subscriptionIdentifiers: [7, 9],
        packetIdentifier: packetIdentifier,
        state: state
    )
}

func session(_ client: String, will: MQTTPacket.Will? = nil, expiry: UInt32 = 3600) -> StoredSession {
    StoredSession(clientIdentifier: client, protocolVersion: .v5, expiryInterval: expiry, will: will)
}

extension BrokerStoreSnapshot {
    func session(_ client: String) -> StoredSessionState? {
        self.sessions.first { $0.session.clientIdentifier == client }
    }
}

/// Waits for a commit ticket (none means nothing to wait for).
func committed(_ store: any BrokerStore) async -> Bool {
    guard let ticket = store.commitTicket() else { return true }
    return await withCheckedContinuation { continuation in
        ticket.whenCommitted { continuation.resume(returning: $0) }
    }
}

@Suite("BrokerStore contract, shared by every store")
struct BrokerStoreContractTests {
    @Test("sessions with their will, subscriptions with every option", arguments: StoreKind.allCases)
    func sessionsAndSubscriptions(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        var willProperties = MQTTProperties()
        willProperties.willDelayInterval = 30
        willProperties.contentType = "text/plain"
        willProperties.userProperties = [.init(name: "k", value: "v")]
        let will = MQTTPacket.Will(topic: "w/t", payload: ByteBuffer(string: "gone"), qos: .exactlyOnce, retain: true, properties: willProperties)
        harness.store.sessionSaved(session("a", will: will, expiry: .max))
        // A disconnected session keeps when it disconnected, across a reload (the SQLite store as wall-clock time).
        let disconnectedAt = NIODeadline.now() - .seconds(30)
        harness.store.sessionSaved(
            StoredSession(clientIdentifier: "b", protocolVersion: .v3_1_1, expiryInterval: 60, will: nil, disconnectedAt: disconnectedAt)
        )
        let options = MQTTPacket.SubscriptionOptions(qos: .exactlyOnce, noLocal: true, retainAsPublished: true, retainHandling: .doNotSend)
        harness.store.subscriptionSaved(clientIdentifier: "a", StoredSubscription(filter: "x/+/#", options: options, subscriptionIdentifier: 268_435_455))
        harness.store.subscriptionSaved(clientIdentifier: "a", StoredSubscription(filter: "gone", options: .init(qos: .atMostOnce)))
        harness.store.subscriptionRemoved(clientIdentifier: "a", filter: "gone")
        harness.store.subscriptionSaved(clientIdentifier: "b", StoredSubscription(filter: "y", options: .init(qos: .atLeastOnce)))
        // Replacing a subscription keeps one, with the new options.
        harness.store.subscriptionSaved(clientIdentifier: "b", StoredSubscription(filter: "y", options: .init(qos: .exactlyOnce)))

        let snapshot = try harness.reload()
        #expect(snapshot.sessions.count == 2)
        let a = try #require(snapshot.session("a"))
        #expect(a.session.expiryInterval == .max)
        #expect(a.session.protocolVersion == .v5)
        #expect(a.session.will == will)
        #expect(a.subscriptions == [StoredSubscription(filter: "x/+/#", options: options, subscriptionIdentifier: 268_435_455)])
        let b = try #require(snapshot.session("b"))
        #expect(b.session.protocolVersion == .v3_1_1)
        #expect(b.session.will == nil)
        #expect(a.session.disconnectedAt == nil)
        let reloadedDisconnect = try #require(b.session.disconnectedAt)
        #expect(abs((reloadedDisconnect - disconnectedAt).nanoseconds) < 1_000_000_000, "disconnected at \(reloadedDisconnect) not \(disconnectedAt)")
        #expect(b.subscriptions.map(\.options.qos) == [.exactlyOnce])
    }

    @Test("queued and inflight deliveries keep their state; one message body for all its deliveries", arguments: StoreKind.allCases)
    func deliveries(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        var properties = MQTTProperties()
        properties.correlationData = ByteBuffer(string: "corr")
        properties.responseTopic = "reply"
        properties.payloadFormatIndicator = 1
        let shared = message("t/1", "shared", qos: .exactlyOnce, properties: properties)
        let other = message("t/2", "other")
        for client in ["a", "b"] { harness.store.sessionSaved(session(client)) }
        harness.store.deliverySaved(clientIdentifier: "a", delivery(1, shared, qos: .exactlyOnce))
        harness.store.deliverySaved(clientIdentifier: "b", delivery(5, shared, qos: .atLeastOnce))
        var chosenByGroup = delivery(2, other)
        chosenByGroup.sharedSubscription = "$share/g/t/+"
        harness.store.deliverySaved(clientIdentifier: "a", chosenByGroup)
        harness.store.deliverySaved(clientIdentifier: "a", delivery(3, message("t/3", "done")))
        // Sent, then PUBREC received.
        harness.store.deliverySaved(clientIdentifier: "a", delivery(1, shared, qos: .exactlyOnce, packetIdentifier: 11, state: .publishSent))
        harness.store.deliverySaved(clientIdentifier: "a", delivery(1, shared, qos: .exactlyOnce, packetIdentifier: 11, state: .pubrecReceived))
        harness.store.deliverySaved(clientIdentifier: "b", delivery(5, shared, packetIdentifier: 3, state: .publishSent))
        harness.store.deliveryRemoved(clientIdentifier: "a", sequence: 3)

        let snapshot = try harness.reload()
        let a = try #require(snapshot.session("a"))
        let b = try #require(snapshot.session("b"))
        let aDeliveries = a.deliveries.sorted { $0.sequence < $1.sequence }
        #expect(aDeliveries.map(\.sequence) == [1, 2])
        #expect(aDeliveries[0].state == .pubrecReceived)
        #expect(aDeliveries[0].packetIdentifier == 11)
        #expect(aDeliveries[0].qos == .exactlyOnce)
        #expect(aDeliveries[0].subscriptionIdentifiers == [7, 9])
        #expect(aDeliveries[1].state == .queued)
        #expect(aDeliveries[1].packetIdentifier == nil)
        #expect(aDeliveries[1].sharedSubscription == "$share/g/t/+")
        #expect(aDeliveries[0].sharedSubscription == nil)
        #expect(b.deliveries.count == 1)
        #expect(b.deliveries[0].state == .publishSent)
        // The body is one object shared by both deliveries, with its properties.
        #expect(aDeliveries[0].message === b.deliveries[0].message)
        let loaded = aDeliveries[0].message
        #expect(loaded.topic == "t/1")
        #expect(String(buffer: loaded.payload) == "shared")
        #expect(loaded.qos == .exactlyOnce)
        #expect(loaded.publisherClientIdentifier == "pub")
        #expect(loaded.properties == properties)
        if let sqlite = harness.store as? SQLiteBrokerStore {
            #expect(sqlite.storedMessageCount == 2)
        }
    }

    @Test("inbound QoS 2 packet identifiers awaiting PUBREL", arguments: StoreKind.allCases)
    func inboundQoS2(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        harness.store.sessionSaved(session("a"))
        harness.store.inboundQoS2Stored(clientIdentifier: "a", packetIdentifier: 1)
        harness.store.inboundQoS2Stored(clientIdentifier: "a", packetIdentifier: 65535)
        harness.store.inboundQoS2Stored(clientIdentifier: "a", packetIdentifier: 9)
        harness.store.inboundQoS2Released(clientIdentifier: "a", packetIdentifier: 9)
        let snapshot = try harness.reload()
        #expect(snapshot.session("a")?.inboundQoS2PacketIdentifiers.sorted() == [1, 65535])
    }

    @Test("retained messages: set, replace, remove; properties and expiry kept", arguments: StoreKind.allCases)
    func retained(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        var properties = MQTTProperties()
        properties.contentType = "application/json"
        properties.userProperties = [.init(name: "a", value: "1"), .init(name: "a", value: "2")]
        let expiresAt = NIODeadline.now() + .seconds(100)
        harness.store.retainedSet(message("r/1", "first", retain: true))
        harness.store.retainedSet(message("r/1", "second", retain: true, properties: properties, expiresAt: expiresAt))
        harness.store.retainedSet(message("r/2", "gone", retain: true))
        harness.store.retainedRemoved(topic: "r/2")
        harness.store.retainedSet(message("r/3", "kept", qos: .atMostOnce, retain: true, publisher: nil))

        let snapshot = try harness.reload()
        let byTopic = Dictionary(uniqueKeysWithValues: snapshot.retained.map { ($0.topic, $0) })
        #expect(byTopic.keys.sorted() == ["r/1", "r/3"])
        let first = try #require(byTopic["r/1"])
        #expect(String(buffer: first.payload) == "second")
        #expect(first.retain)
        #expect(first.properties == properties)
        let loadedExpiry = try #require(first.expiresAt)
        // Stored as wall-clock time and brought back to the engine clock: within a second.
        #expect(abs((loadedExpiry - expiresAt).nanoseconds) < 1_000_000_000)
        #expect(byTopic["r/3"]?.qos == .atMostOnce)
        #expect(byTopic["r/3"]?.publisherClientIdentifier == nil)
    }

    @Test("removing a session removes everything it owns", arguments: StoreKind.allCases)
    func sessionRemoval(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        harness.store.sessionSaved(session("a"))
        harness.store.sessionSaved(session("b"))
        let shared = message("t", "x")
        harness.store.subscriptionSaved(clientIdentifier: "a", StoredSubscription(filter: "t", options: .init(qos: .atLeastOnce)))
        harness.store.deliverySaved(clientIdentifier: "a", delivery(1, shared))
        harness.store.deliverySaved(clientIdentifier: "b", delivery(1, shared))
        harness.store.inboundQoS2Stored(clientIdentifier: "a", packetIdentifier: 4)
        harness.store.sessionRemoved(clientIdentifier: "a")
        // A session created again under the same id starts empty.
        harness.store.sessionSaved(session("a"))

        let snapshot = try harness.reload()
        let a = try #require(snapshot.session("a"))
        #expect(a.subscriptions.isEmpty && a.deliveries.isEmpty && a.inboundQoS2PacketIdentifiers.isEmpty)
        #expect(snapshot.session("b")?.deliveries.count == 1)
        if let sqlite = harness.store as? SQLiteBrokerStore {
            #expect(sqlite.storedMessageCount == 1)
        }
        harness.store.sessionRemoved(clientIdentifier: "b")
        let empty = try harness.reload()
        #expect(empty.session("b") == nil)
        if let sqlite = harness.store as? SQLiteBrokerStore {
            #expect(sqlite.storedMessageCount == 0)
        }
    }

    @Test("commit tickets complete, in every durability mode", arguments: StoreKind.allCases, StorageDurability.allCases)
    func tickets(kind: StoreKind, durability: StorageDurability) async throws {
        let harness = try StoreHarness(kind, durability: durability)
        harness.store.sessionSaved(session("a"))
        for sequence in 1...50 as ClosedRange<UInt64> {
            harness.store.deliverySaved(clientIdentifier: "a", delivery(sequence, message("t", "\(sequence)")))
        }
        #expect(await committed(harness.store))
        // Once committed, nothing is left to wait for.
        if durability != .none, let sqlite = harness.store as? SQLiteBrokerStore {
            #expect(sqlite.commitTicket() == nil)
        }
        let snapshot = try harness.reload()
        #expect(snapshot.session("a")?.deliveries.count == 50)
    }

    @Test("load hands the snapshot over once", arguments: StoreKind.allCases)
    func loadTwice(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        harness.store.retainedSet(message("r", "x", retain: true))
        let snapshot = try harness.reload()
        #expect(snapshot.retained.count == 1)
    }
}

@Suite("The owner of a session, across restarts")
struct SessionOwnerStorageTests {
    @Test("The user who opened a session is kept: named, anonymous, or not known", arguments: StoreKind.allCases)
    func ownerKept(kind: StoreKind) throws {
        let harness = try StoreHarness(kind)
        var named = session("named")
        named.owner = .some("alice")
        var anonymous = session("anonymous")
        anonymous.owner = .some(nil)
        harness.store.sessionSaved(named)
        harness.store.sessionSaved(anonymous)
        harness.store.sessionSaved(session("unknown"))
        let snapshot = try harness.reload()
        #expect(snapshot.session("named")?.session.owner == .some("alice"))
        #expect(snapshot.session("anonymous")?.session.owner == .some(nil))
        #expect(snapshot.session("unknown")?.session.owner == nil)
    }

    @Test("After a restart another user still cannot take a session over; its owner can resume it")
    func takeoverAfterRestart() async throws {
        let harness = try StoreHarness(.sqlite)
        var configuration = BrokerConfiguration()
        configuration.sessionsBelongToTheirUser = true
        let waker = OwnerTestWaker()
        do {
            let broker = Broker(configuration: configuration, store: harness.store, now: .now())
            var alice = ConnectionStateMachine(broker: broker, waker: waker, remoteAddress: "127.0.0.1:1", now: .now())
            let connect = MQTTPacket.Connect(protocolVersion: .v3_1_1, clientIdentifier: "device-1", cleanStart: false, username: "alice")
            _ = alice.receive(.connect(connect), now: .now())
            _ = alice.connectionClosed(now: .now())
            #expect(await committed(harness.store))
        }
        // A restart: the store is opened again and a new broker loads it.
        (harness.store as? SQLiteBrokerStore)?.close()
        let reopened = try SQLiteBrokerStore(directory: harness.directory, configuration: harness.configuration)
        defer { reopened.close() }
        let broker = Broker(configuration: configuration, store: reopened, now: .now())
        func connack(_ user: String) -> ReasonCode? {
            var machine = ConnectionStateMachine(broker: broker, waker: waker, remoteAddress: "127.0.0.1:2", now: .now())
            let connect = MQTTPacket.Connect(protocolVersion: .v3_1_1, clientIdentifier: "device-1", cleanStart: false, username: user)
            guard case .packet(.connack(let ack))? = machine.receive(.connect(connect), now: .now()).outbound.first else { return nil }
            return ack.reasonCode
        }
        #expect(connack("mallory") == .notAuthorized)
        #expect(connack("alice") == .success)
    }
}

private final class OwnerTestWaker: DeliveryWaker {
    func wake() {}
}
