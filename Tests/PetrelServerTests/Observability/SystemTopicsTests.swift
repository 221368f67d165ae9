import Logging
import MQTTWire
import NIOCore
import PetrelCore
import Testing

@testable import PetrelServer

@Suite("$SYS topics")
struct SystemTopicsTests {
    @Test("Load averages: a steady rate converges to it, faster over 1 minute than over 15")
    func loadAverages() {
        var load = LoadAverage()
        load.sample(total: 0, elapsed: 10)
        #expect(load.averages == [0, 0, 0])
        // 100 more every 10 s: 600 per minute.
        for step in 1...6 { load.sample(total: step * 100, elapsed: 10) }
        #expect(load.averages[0] > 350 && load.averages[0] < 600)
        #expect(load.averages[1] < load.averages[0])
        #expect(load.averages[2] < load.averages[1])
        for step in 7...1000 { load.sample(total: step * 100, elapsed: 10) }
        #expect(abs(load.averages[0] - 600) < 0.01)
        #expect(abs(load.averages[2] - 600) < 1)
        // A total that stops growing decays.
        for _ in 0..<60 { load.sample(total: 100_000, elapsed: 10) }
        #expect(load.averages[0] < 1)
    }

    @Test("Figures: Mosquitto's topic names with the broker's counters")
    func figures() {
        var figures = SystemTopicFigures(version: "1.2.3")
        var statistics = BrokerStatistics()
        statistics.connectionsTotal = 7
        statistics.messagesDroppedQueueFull = 3
        statistics.messagesDroppedExpired = 1
        statistics.retainedMessages = 5
        statistics.connectionsMaximum = 6
        var totals = BrokerTotals()
        totals.sessionsOffline = 2
        totals.subscriptions = 9
        var traffic = TrafficSnapshot()
        traffic.connections[.init(transport: .mqtt, version: .v5)] = 2
        traffic.messagesReceived = [10, 20, 0]
        traffic.messagesSent = [1, 2, 3]
        traffic.bytesReceived = 1000
        let messages = Dictionary(
            uniqueKeysWithValues: figures.messages(
                uptime: .seconds(42),
                elapsed: 10,
                statistics: statistics,
                totals: totals,
                traffic: traffic
            )
        )
        #expect(messages["$SYS/broker/version"] == "petrel version 1.2.3")
        #expect(messages["$SYS/broker/uptime"] == "42 seconds")
        #expect(messages["$SYS/broker/clients/connected"] == "2")
        #expect(messages["$SYS/broker/clients/disconnected"] == "2")
        #expect(messages["$SYS/broker/clients/total"] == "4")
        #expect(messages["$SYS/broker/clients/maximum"] == "6")
        #expect(messages["$SYS/broker/publish/messages/received"] == "30")
        #expect(messages["$SYS/broker/publish/messages/sent"] == "6")
        #expect(messages["$SYS/broker/publish/messages/dropped"] == "4")
        #expect(messages["$SYS/broker/bytes/received"] == "1000")
        #expect(messages["$SYS/broker/retained messages/count"] == "5")
        #expect(messages["$SYS/broker/subscriptions/count"] == "9")
        #expect(messages["$SYS/broker/load/bytes/received/1min"] == "0.00")
        traffic.bytesReceived = 2000
        let later = Dictionary(
            uniqueKeysWithValues: figures.messages(
                uptime: .seconds(52), elapsed: 10, statistics: statistics, totals: totals, traffic: traffic
            )
        )
        // 1000 bytes in 10 s is 6000 a minute, of which the 1-minute average takes 1 - e^(-1/6).
        #expect(later["$SYS/broker/load/bytes/received/1min"] == "921.11")
        #expect(SystemTopicFigures.format(0.005) == "0.01")
        #expect(SystemTopicFigures.format(12.3) == "12.30")
    }

    @Test("A client subscribed to $SYS/# receives them, retained, and '#' does not match them [MQTT-4.7.2-1]")
    func published() async throws {
        try await withTestServer { port, server in
            let topics = SystemTopics(server: server, interval: .milliseconds(100), version: "t")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await topics.run() }
                let wide = try await TestClient.connected(port: port, version: .v5, id: "sys-wide")
                try await wide.send(.subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "#", qos: .atMostOnce)])))
                _ = try await wide.next()
                try await Task.sleep(for: .milliseconds(250))
                let client = try await TestClient.connected(port: port, version: .v3_1_1, id: "sys-reader")
                try await client.send(
                    .subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: "$SYS/broker/clients/connected", qos: .atMostOnce)]))
                )
                guard case .suback = try await client.next() else {
                    Issue.record("expected SUBACK")
                    return
                }
                // The retained value first, then fresh ones every 100 ms: one of them counts both clients.
                var values: [String] = []
                for _ in 0..<4 {
                    guard case .publish(let publish) = try await client.next() else { break }
                    #expect(publish.topic == "$SYS/broker/clients/connected")
                    values.append(String(buffer: publish.payload))
                }
                #expect(values.contains("2"))
                let seenByWide = try? await wide.next(timeout: .milliseconds(100))
                #expect(seenByWide == nil)
                group.cancelAll()
                await client.close()
                await wide.close()
            }
        }
    }
}
