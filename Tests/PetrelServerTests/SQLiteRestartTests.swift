import Foundation
import MQTTWire
import NIOCore
import PetrelCore
import PetrelServer
import PetrelStorage
import Testing

@Suite("A restart on the SQLite store")
struct SQLiteRestartTests {
    /// CONNECT properties asking for a session that outlives its connection by `seconds`.
    static func sessionExpiry(_ seconds: UInt32) -> MQTTProperties {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = seconds
        return properties
    }

    @Test("a queued QoS 2 message and the subscription survive a restart of the server on the same directory")
    func queuedMessageSurvives() async throws {
        let directory = NSTemporaryDirectory() + "petrel-restart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let persistent = Self.sessionExpiry(3600)

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

extension SQLiteRestartTests {
    @Test("a session's expiry interval keeps counting while the broker is down [MQTT-3.1.2-23]")
    func expiryCountsAcrossRestart() async throws {
        let directory = NSTemporaryDirectory() + "petrel-restart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try SQLiteBrokerStore(directory: directory)
        try await withTestBroker(store: first) { port in
            for (id, seconds) in [("short", UInt32(1)), ("long", UInt32(3600))] {
                let client = try await TestClient.connected(
                    port: port,
                    version: .v5,
                    id: id,
                    properties: Self.sessionExpiry(seconds)
                )
                try await client.send(.disconnect(.init()))
                await client.close()
            }
        }
        first.close()
        // Down for longer than the short session's expiry interval.
        try await Task.sleep(for: .milliseconds(1500))

        let second = try SQLiteBrokerStore(directory: directory)
        defer { second.close() }
        try await withTestBroker(store: second) { port in
            for (id, present) in [("short", false), ("long", true)] {
                let client = try await TestClient.connect(port: port, version: .v5)
                try await client.send(
                    .connect(.init(protocolVersion: .v5, clientIdentifier: id, cleanStart: false, properties: Self.sessionExpiry(60)))
                )
                guard case .connack(let connack) = try await client.next() else { Issue.record("no CONNACK"); return }
                #expect(connack.sessionPresent == present, "session \(id)")
                await client.close()
            }
        }
    }

    @Test("a will whose delay ran out while the broker was down is published when it starts [MQTT-3.1.3-9]")
    func delayedWillAcrossRestart() async throws {
        let directory = NSTemporaryDirectory() + "petrel-restart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sessionProperties = Self.sessionExpiry(3600)
        var willProperties = MQTTProperties()
        willProperties.willDelayInterval = 1
        let will = MQTTPacket.Will(topic: "will/late", payload: ByteBuffer(string: "late"), qos: .atLeastOnce, properties: willProperties)

        let first = try SQLiteBrokerStore(directory: directory)
        try await withTestBroker(store: first) { port in
            // A persistent watcher, so that the will has someone to reach after the restart.
            let watcher = try await TestClient.connected(port: port, version: .v5, id: "watcher", properties: sessionProperties)
            try await watcher.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "will/#", qos: .atLeastOnce)])))
            guard case .suback = try await watcher.next() else { Issue.record("no SUBACK"); return }
            try await watcher.send(.disconnect(.init()))
            await watcher.close()
            let client = try await TestClient.connected(port: port, version: .v5, id: "leaver", will: will, properties: sessionProperties)
            // Gone without DISCONNECT: the will waits for its delay, which the shutdown cuts short.
            await client.close()
            try await Task.sleep(for: .milliseconds(100))
        }
        first.close()
        try await Task.sleep(for: .milliseconds(1200))

        let second = try SQLiteBrokerStore(directory: directory)
        defer { second.close() }
        try await withTestBroker(store: second) { port in
            let watcher = try await TestClient.connect(port: port, version: .v5)
            try await watcher.send(.connect(.init(protocolVersion: .v5, clientIdentifier: "watcher", cleanStart: false, properties: sessionProperties)))
            guard case .connack(let connack) = try await watcher.next() else { Issue.record("no CONNACK"); return }
            #expect(connack.sessionPresent)
            // Published at the start, not a will delay after it.
            guard case .publish(let publish) = try await watcher.next(timeout: .milliseconds(500)) else {
                Issue.record("no will")
                return
            }
            #expect(publish.topic == "will/late")
            #expect(publish.payload == ByteBuffer(string: "late"))
            await watcher.close()
        }
    }
}
