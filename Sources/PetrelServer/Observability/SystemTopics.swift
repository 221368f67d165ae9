import NIOCore
import PetrelCore
import ServiceLifecycle

/// The broker's `$SYS/broker/...` topics, with Mosquitto's names and meanings, published retained every
/// `interval` (and once at start) as a `Service` beside the MQTT server.
///
/// They are ordinary retained messages at QoS 0 that the store does not keep (they are made anew at start): a
/// subscriber gets them like any other, through the access rules. A filter starting with a wildcard does not
/// match them [MQTT-4.7.2-1]: one asks for `$SYS/#`.
public final class SystemTopics: Service {
    private let server: MQTTServer
    private let interval: Duration
    private let version: String

    public init(server: MQTTServer, interval: Duration, version: String) {
        self.server = server
        self.interval = interval
        self.version = version
    }

    public func run() async throws {
        var figures = SystemTopicFigures(version: version)
        let clock = ContinuousClock()
        let started = clock.now
        var last = started
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = clock.now
            let elapsed = now - last
            last = now
            let messages = figures.messages(
                uptime: now - started,
                elapsed: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                statistics: server.broker.statistics,
                totals: server.broker.totals(),
                traffic: server.traffic.snapshot()
            )
            for (topic, value) in messages {
                let result = server.broker.publishOwnMessage(
                    topic: topic,
                    payload: ByteBuffer(string: value),
                    retain: true,
                    now: .now()
                )
                for waker in result.wake { waker.wake() }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}

/// What goes into each topic: counters as they are, and load averages smoothed between samples.
struct SystemTopicFigures {
    let version: String
    private var loads: [String: LoadAverage] = [:]

    init(version: String) {
        self.version = version
    }

    /// Topic and payload of every `$SYS` message, given the broker's figures `elapsed` seconds after the last.
    mutating func messages(
        uptime: Duration,
        elapsed: Double,
        statistics: BrokerStatistics,
        totals: BrokerTotals,
        traffic: TrafficSnapshot
    ) -> [(String, String)] {
        let prefix = "$SYS/broker/"
        let published = traffic.messagesReceived.reduce(0, +)
        let delivered = traffic.messagesSent.reduce(0, +)
        let dropped = statistics.messagesDroppedQueueFull + statistics.messagesDroppedExpired
            + statistics.messagesDroppedTooLarge + statistics.messagesDroppedMemoryBudget
        let connected = traffic.connectionsTotal
        var messages: [(String, String)] = [
            ("version", "petrel version \(version)"),
            ("uptime", "\(uptime.components.seconds) seconds"),
            ("clients/connected", "\(connected)"),
            ("clients/active", "\(connected)"),
            ("clients/disconnected", "\(totals.sessionsOffline)"),
            ("clients/inactive", "\(totals.sessionsOffline)"),
            ("clients/total", "\(connected + totals.sessionsOffline)"),
            ("clients/maximum", "\(statistics.connectionsMaximum)"),
            ("messages/received", "\(traffic.packetsReceived)"),
            ("messages/sent", "\(traffic.packetsSent)"),
            ("messages/stored", "\(totals.queuedMessages + statistics.retainedMessages)"),
            ("store/messages/count", "\(totals.queuedMessages + statistics.retainedMessages)"),
            ("store/messages/bytes", "\(statistics.queuedBytes + statistics.retainedBytes)"),
            ("publish/messages/received", "\(published)"),
            ("publish/messages/sent", "\(delivered)"),
            ("publish/messages/dropped", "\(dropped)"),
            ("publish/bytes/received", "\(traffic.payloadBytesReceived.reduce(0, +))"),
            ("publish/bytes/sent", "\(traffic.payloadBytesSent.reduce(0, +))"),
            ("bytes/received", "\(traffic.bytesReceived)"),
            ("bytes/sent", "\(traffic.bytesSent)"),
            ("retained messages/count", "\(statistics.retainedMessages)"),
            ("subscriptions/count", "\(totals.subscriptions)"),
            ("shared_subscriptions/count", "\(totals.sharedSubscriptionGroups)"),
        ]
        let rates: [(String, Int)] = [
            ("messages/received", traffic.packetsReceived),
            ("messages/sent", traffic.packetsSent),
            ("publish/received", published),
            ("publish/sent", delivered),
            ("publish/dropped", dropped),
            ("bytes/received", traffic.bytesReceived),
            ("bytes/sent", traffic.bytesSent),
            ("connections", statistics.connectionsTotal),
        ]
        for (name, total) in rates {
            var load = loads[name] ?? LoadAverage()
            load.sample(total: total, elapsed: elapsed)
            loads[name] = load
            for (index, window) in LoadAverage.windows.enumerated() {
                messages.append(("load/\(name)/\(window.name)", Self.format(load.averages[index])))
            }
        }
        return messages.map { (prefix + $0.0, $0.1) }
    }

    /// Two decimals, as Mosquitto writes them.
    static func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
