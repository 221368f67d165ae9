import MQTTWire
import PetrelCore
import PetrelServer
import Prometheus
import Synchronization

/// The broker's state as Prometheus metrics, read from the engine and the server when scraped.
///
/// Nothing here runs per message: the engine's counters (`Broker.statistics`), its totals (`Broker.totals()`, a
/// walk over the sessions) and the server's per-loop traffic counters (`MQTTServer.traffic`) are read once per
/// scrape and folded into the registry: gauges are set, counters advance by what changed since the last scrape.
/// What is recorded as it happens (storage commit time, event loop lag) goes through swift-metrics into the same
/// registry.
public final class BrokerMetricsCollector: Sendable {
    private let broker: Broker
    private let server: MQTTServer
    private let startedAt: ContinuousClock.Instant
    private let metrics: Mutex<Metrics>

    public init(broker: Broker, server: MQTTServer, registry: PrometheusCollectorRegistry, version: String) {
        self.broker = broker
        self.server = server
        self.startedAt = .now
        self.metrics = Mutex(Metrics(registry: registry))
        registry.makeGauge(descriptor: .petrel("petrel_build_info", help: "Petrel's version."), labels: [("version", version)])
            .set(Double(1))
    }

    /// Brings every metric up to date; called before the registry is written out.
    public func collect() {
        let statistics = broker.statistics
        let totals = broker.totals()
        let traffic = server.traffic.snapshot()
        let refusedByLimits = server.connectionsRefusedByLimits
        let uptime = ContinuousClock.now - startedAt
        metrics.withLock { metrics in
            metrics.uptime.set(Double(uptime.components.seconds))
            for (kind, gauge) in metrics.connections {
                gauge.set(Double(traffic.connections[kind] ?? 0))
            }
            metrics.connectionsAccepted.advance(to: statistics.connectionsTotal)
            metrics.sessionsOnline.set(Double(totals.sessionsOnline))
            metrics.sessionsOffline.set(Double(totals.sessionsOffline))
            metrics.subscriptions.set(Double(totals.subscriptions))
            metrics.sharedGroups.set(Double(totals.sharedSubscriptionGroups))
            metrics.retainedMessages.set(Double(statistics.retainedMessages))
            metrics.retainedBytes.set(Double(statistics.retainedBytes))
            metrics.queuedMessages.set(Double(totals.queuedMessages))
            metrics.queuedBytes.set(Double(statistics.queuedBytes))
            metrics.inflightMessages.set(Double(totals.inflightMessages))
            metrics.longestQueue.set(Double(totals.longestQueue))
            for qos in 0..<3 {
                metrics.messagesReceived[qos].advance(to: traffic.messagesReceived[qos])
                metrics.payloadReceived[qos].advance(to: traffic.payloadBytesReceived[qos])
                metrics.messagesSent[qos].advance(to: traffic.messagesSent[qos])
                metrics.payloadSent[qos].advance(to: traffic.payloadBytesSent[qos])
            }
            metrics.bytesReceived.advance(to: traffic.bytesReceived)
            metrics.bytesSent.advance(to: traffic.bytesSent)
            metrics.droppedQueueFull.advance(to: statistics.messagesDroppedQueueFull)
            metrics.droppedExpired.advance(to: statistics.messagesDroppedExpired)
            metrics.droppedTooLarge.advance(to: statistics.messagesDroppedTooLarge)
            metrics.droppedMemoryBudget.advance(to: statistics.messagesDroppedMemoryBudget)
            metrics.droppedNotAuthorized.advance(to: statistics.deliveriesDenied)
            metrics.authenticationFailures.advance(to: statistics.authenticationFailures)
            metrics.publishesDenied.advance(to: statistics.publishesDenied)
            metrics.subscriptionsDenied.advance(to: statistics.subscriptionsDenied)
            metrics.refusedTopicLevels.advance(to: statistics.topicsRefusedTooManyLevels)
            metrics.refusedTopicLength.advance(to: statistics.topicsRefusedTooLong)
            metrics.refusedSubscriptionQuota.advance(to: statistics.subscriptionsRefusedQuota)
            metrics.refusedPublishRate.advance(to: statistics.clientsDisconnectedPublishRate)
            metrics.refusedPacketTooLarge.advance(to: statistics.packetsDroppedTooLarge)
            metrics.refusedConnectionLimit.advance(to: refusedByLimits)
        }
    }
}

/// A Prometheus counter fed from a running total that the broker keeps itself.
private struct FoldedCounter {
    let counter: Counter
    var last = 0

    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)] = [], help: String) {
        self.counter = registry.makeCounter(descriptor: .petrel(name, help: help), labels: labels)
    }

    mutating func advance(to total: Int) {
        guard total > last else { return }
        counter.increment(by: Int64(total - last))
        last = total
    }
}

/// Every metric the collector sets, made once.
private struct Metrics {
    let uptime: Gauge
    let connections: [(TrafficSnapshot.ConnectionKind, Gauge)]
    var connectionsAccepted: FoldedCounter
    let sessionsOnline: Gauge
    let sessionsOffline: Gauge
    let subscriptions: Gauge
    let sharedGroups: Gauge
    let retainedMessages: Gauge
    let retainedBytes: Gauge
    let queuedMessages: Gauge
    let queuedBytes: Gauge
    let inflightMessages: Gauge
    let longestQueue: Gauge
    var messagesReceived: [FoldedCounter]
    var payloadReceived: [FoldedCounter]
    var messagesSent: [FoldedCounter]
    var payloadSent: [FoldedCounter]
    var bytesReceived: FoldedCounter
    var bytesSent: FoldedCounter
    var droppedQueueFull: FoldedCounter
    var droppedExpired: FoldedCounter
    var droppedTooLarge: FoldedCounter
    var droppedMemoryBudget: FoldedCounter
    var droppedNotAuthorized: FoldedCounter
    var authenticationFailures: FoldedCounter
    var publishesDenied: FoldedCounter
    var subscriptionsDenied: FoldedCounter
    var refusedTopicLevels: FoldedCounter
    var refusedTopicLength: FoldedCounter
    var refusedSubscriptionQuota: FoldedCounter
    var refusedPublishRate: FoldedCounter
    var refusedPacketTooLarge: FoldedCounter
    var refusedConnectionLimit: FoldedCounter

    init(registry r: PrometheusCollectorRegistry) {
        func gauge(_ name: String, labels: [(String, String)] = [], help: String) -> Gauge {
            r.makeGauge(descriptor: .petrel(name, help: help), labels: labels)
        }
        uptime = gauge("petrel_uptime_seconds", help: "Seconds since the broker started.")
        var connections: [(TrafficSnapshot.ConnectionKind, Gauge)] = []
        for transport in ListenerConfiguration.Transport.allCases {
            for version in ProtocolVersion.allCases {
                let connected = gauge(
                    "petrel_connections",
                    labels: [("listener", transport.rawValue), ("protocol", version.metricLabel)],
                    help: "Connected clients, by listener transport and protocol version."
                )
                connections.append((.init(transport: transport, version: version), connected))
            }
        }
        self.connections = connections
        connectionsAccepted = .init(r, "petrel_connections_accepted_total", help: "Connections accepted (CONNACK 0x00).")
        let sessionsHelp = "Sessions, online (a client is connected) or offline (kept for a client that is not)."
        sessionsOnline = gauge("petrel_sessions", labels: [("state", "online")], help: sessionsHelp)
        sessionsOffline = gauge("petrel_sessions", labels: [("state", "offline")], help: sessionsHelp)
        subscriptions = gauge("petrel_subscriptions", help: "Subscriptions of all sessions, shared ones included.")
        sharedGroups = gauge("petrel_shared_subscription_groups", help: "Shared subscription groups with members.")
        retainedMessages = gauge("petrel_retained_messages", help: "Retained messages stored.")
        retainedBytes = gauge("petrel_retained_bytes", help: "Payload bytes of the retained messages.")
        queuedMessages = gauge("petrel_queued_messages", help: "Messages waiting in session queues.")
        queuedBytes = gauge("petrel_queued_bytes", help: "Bytes of the messages waiting in session queues.")
        inflightMessages = gauge("petrel_inflight_messages", help: "QoS 1 and 2 messages sent, not yet acknowledged.")
        longestQueue = gauge("petrel_queue_depth_max", help: "The longest queue of one session.")
        func byQoS(_ name: String, _ help: String) -> [FoldedCounter] {
            (0..<3).map { .init(r, name, [("qos", "\($0)")], help: help) }
        }
        messagesReceived = byQoS("petrel_messages_received_total", "PUBLISH packets received from clients.")
        payloadReceived = byQoS("petrel_messages_received_bytes_total", "Payload bytes of the PUBLISH packets received.")
        messagesSent = byQoS("petrel_messages_sent_total", "PUBLISH packets sent to clients, retransmissions included.")
        payloadSent = byQoS("petrel_messages_sent_bytes_total", "Payload bytes of the PUBLISH packets sent.")
        bytesReceived = .init(r, "petrel_network_received_bytes_total", help: "Bytes of MQTT packets read from clients.")
        bytesSent = .init(r, "petrel_network_sent_bytes_total", help: "Bytes of MQTT packets written to clients.")
        let droppedHelp = "Deliveries dropped, by reason."
        droppedQueueFull = .init(r, "petrel_messages_dropped_total", [("reason", "queue_full")], help: droppedHelp)
        droppedExpired = .init(r, "petrel_messages_dropped_total", [("reason", "expired")], help: droppedHelp)
        droppedTooLarge = .init(r, "petrel_messages_dropped_total", [("reason", "too_large")], help: droppedHelp)
        droppedMemoryBudget = .init(r, "petrel_messages_dropped_total", [("reason", "memory_budget")], help: droppedHelp)
        droppedNotAuthorized = .init(r, "petrel_messages_dropped_total", [("reason", "not_authorized")], help: droppedHelp)
        authenticationFailures = .init(
            r,
            "petrel_authentication_failures_total",
            help: "CONNECTs refused for wrong, unknown or missing credentials."
        )
        let deniedHelp = "Access checks that refused, by action."
        publishesDenied = .init(r, "petrel_authorization_denied_total", [("action", "publish")], help: deniedHelp)
        subscriptionsDenied = .init(r, "petrel_authorization_denied_total", [("action", "subscribe")], help: deniedHelp)
        let refusedHelp = "Packets and connections refused by a limit, by limit."
        refusedTopicLevels = .init(r, "petrel_limit_refusals_total", [("limit", "topic_levels")], help: refusedHelp)
        refusedTopicLength = .init(r, "petrel_limit_refusals_total", [("limit", "topic_length")], help: refusedHelp)
        refusedSubscriptionQuota = .init(r, "petrel_limit_refusals_total", [("limit", "subscriptions")], help: refusedHelp)
        refusedPublishRate = .init(r, "petrel_limit_refusals_total", [("limit", "publish_rate")], help: refusedHelp)
        refusedPacketTooLarge = .init(r, "petrel_limit_refusals_total", [("limit", "client_packet_size")], help: refusedHelp)
        refusedConnectionLimit = .init(r, "petrel_limit_refusals_total", [("limit", "connections")], help: refusedHelp)
    }
}

extension MetricNameDescriptor {
    /// A metric whose whole name is given, with its `# HELP` line.
    static func petrel(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}

extension ProtocolVersion {
    /// `3.1`, `3.1.1` or `5`.
    var metricLabel: String {
        switch self {
        case .v3_1: "3.1"
        case .v3_1_1: "3.1.1"
        case .v5: "5"
        }
    }
}
