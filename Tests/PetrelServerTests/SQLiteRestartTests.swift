import Foundation
import MQTTWire
import NIOCore
import PetrelCore
import PetrelServer
import PetrelStorage
import Testing

@Suite("A restart on the SQLite store")
struct SQLiteRestartTests {
    @Test("a queued QoS 2 message and the subscription survive a restart of the server on the same directory")
    func queuedMessageSurvives() async throws {
        let directory = NSTemporaryDirectory() + "petrel-restart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let persistent: MQTTProperties = {
            var properties = MQTTProperties()
            properties.sessionExpiryInterval = 3600
            return properties
        }()

        let first = try SQLiteBrokerStore(directory: directory)
        try await withTestBroker(store: first) { port in
            let subscriber = try await TestClient.connect(port: port, version: .v5)
            try await subscriber.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "s", cleanStart: true, properties: persistent)))
            guard case .connack = try await subscriber.next() else { Issue.record("no CONNACK"); return }
            try await subscriber.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "t/#", qos: .exactlyOnce)])))
            guard case .suback = try await subscriber.next() else { Issue.record("no SUBACK"); return }
            try await subscriber.send(.disconnect(.init()))
            await subscriber.close()

            let publisher = try await TestClient.connect(port: port, version: .v5)
            try await publisher.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "p")))
            guard case .connack = try await publisher.next() else { Issue.record("no CONNACK"); return }
            try await publisher.send(.publish(.init(topic: "t/1", payload: ByteBuffer(string: "kept"), qos: .exactlyOnce, packetIdentifier: 3)))
            // PUBREC means committed.
            guard case .pubrec = try await publisher.next() else { Issue.record("no PUBREC"); return }
            await publisher.close()
        }
        first.close()

        let second = try SQLiteBrokerStore(directory: directory)
        defer { second.close() }
        try await withTestBroker(store: second) { port in
            let subscriber = try await TestClient.connect(port: port, version: .v5)
            try await subscriber.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "s", cleanStart: false, properties: persistent)))
            guard case .connack(let connack) = try await subscriber.next() else { Issue.record("no CONNACK"); return }
            #expect(connack.sessionPresent)
            guard case .publish(let publish) = try await subscriber.next() else { Issue.record("no PUBLISH"); return }
            #expect(publish.topic == "t/1")
            #expect(publish.qos == .exactlyOnce)
            #expect(publish.payload == ByteBuffer(string: "kept"))
            await subscriber.close()
        }
    }
}
