import NIOCore
import Testing

@testable import PetrelCore

@Suite("Concurrent use of one Broker")
struct ConcurrencyTests {
    @Test("[MQTT-4.6.0-5] publishers on several threads: every message delivered once, per-publisher order kept")
    func concurrentPublishers() async throws {
        var configuration = BrokerConfiguration()
        configuration.maximumQueuedMessages = 100_000
        let broker = Broker(configuration: configuration, now: at(0))
        var subscriber = TestClient(broker)
        subscriber.connect("sub")
        subscriber.subscribe("load/#", qos: .atMostOnce)
        let publishers = 4
        let perPublisher = 2000
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<publishers {
                group.addTask {
                    var publisher = TestClient(broker)
                    publisher.connect("pub-\(index)")
                    for sequence in 0..<perPublisher {
                        publisher.publish("load/\(index)", "\(index):\(sequence)")
                    }
                    _ = publisher.machine.connectionClosed(now: at(1))
                }
                group.addTask {
                    // A subscriber coming and going while messages flow.
                    var churn = TestClient(broker)
                    churn.connect("churn-\(index)")
                    for round in 0..<200 {
                        churn.subscribe("load/\(round % publishers)", qos: .atMostOnce, packetIdentifier: UInt16(round + 1))
                        _ = churn.deliver()
                    }
                    _ = churn.machine.connectionClosed(now: at(1))
                }
            }
        }
        var next = Array(repeating: 0, count: publishers)
        for delivery in subscriber.deliver().publishes {
            let parts = delivery.body.split(separator: ":").map { Int($0)! }
            #expect(parts[1] == next[parts[0]])
            next[parts[0]] = parts[1] + 1
        }
        #expect(next == Array(repeating: perPublisher, count: publishers))
        #expect(broker.statistics.sessions == 1)
    }

    @Test("[MQTT-4.8.2] shared subscription round robin under concurrent publishers: each message to one member, evenly")
    func concurrentSharedRoundRobin() async throws {
        var configuration = BrokerConfiguration()
        configuration.maximumQueuedMessages = 100_000
        let broker = Broker(configuration: configuration, now: at(0))
        var members = (0..<4).map { _ in TestClient(broker) }
        for index in members.indices {
            members[index].connect("member-\(index)")
            members[index].subscribe("$share/g/load/#", qos: .atMostOnce)
        }
        let publishers = 4
        let perPublisher = 1000
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<publishers {
                group.addTask {
                    var publisher = TestClient(broker)
                    publisher.connect("pub-\(index)")
                    for sequence in 0..<perPublisher {
                        publisher.publish("load/\(index)", "\(index):\(sequence)")
                    }
                    _ = publisher.machine.connectionClosed(now: at(1))
                }
            }
        }
        var seen = Set<String>()
        var counts: [Int] = []
        for index in members.indices {
            let bodies = members[index].deliver().publishes.map(\.body)
            counts.append(bodies.count)
            seen.formUnion(bodies)
        }
        #expect(counts.reduce(0, +) == publishers * perPublisher)
        #expect(seen.count == publishers * perPublisher)
        // One atomic turn per message: the members' shares differ by at most one.
        #expect(counts.max()! - counts.min()! <= 1)
    }
}
