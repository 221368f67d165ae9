import Histogram
import NIOCore

/// The counters and the latency histogram of the connections on one event loop. Only touched on that loop;
/// the runner reads it through `EventLoop.submit`.
final class LoopState {
    let eventLoop: any EventLoop
    let runIdentifier: String
    private(set) var clients: [BenchClient] = []
    private var histogram: Histogram<UInt64>
    var delivered = 0
    var lastDeliveryAt: UInt64 = 0
    var unexpected = 0
    var disconnects = 0
    private(set) var errors: [String] = []

    /// Latencies above this many nanoseconds (ten minutes) are recorded as this value.
    static let highestLatency: UInt64 = 600_000_000_000

    let ledger: DeliveryLedger

    init(eventLoop: any EventLoop, runIdentifier: String, ledger: DeliveryLedger) {
        self.eventLoop = eventLoop
        self.ledger = ledger
        self.runIdentifier = runIdentifier
        self.histogram = Histogram(
            lowestDiscernibleValue: 1,
            highestTrackableValue: Self.highestLatency,
            numberOfSignificantValueDigits: .three
        )
    }

    private var roundWaiting: [BenchClient] = []
    private var roundScheduled = false

    /// Publishers that saturate the broker write one batch each per round. A round runs as a task scheduled a
    /// few microseconds ahead, never an immediate one: an event loop runs immediate tasks until none are left,
    /// so publishers re-queuing themselves at once would keep it from reading the subscribers' sockets.
    func requestRound(for client: BenchClient) {
        roundWaiting.append(client)
        if !inRound { scheduleRound() }
    }

    private var inRound = false

    /// The deadline is taken after the current round has finished, so that the loop always polls its sockets
    /// before the next round.
    private func scheduleRound() {
        guard !roundScheduled, !roundWaiting.isEmpty else { return }
        roundScheduled = true
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(deadline: .now() + .microseconds(10)) {
            bound.value.runRound()
        }
    }

    private func runRound() {
        roundScheduled = false
        let waiting = roundWaiting
        roundWaiting.removeAll(keepingCapacity: true)
        inRound = true
        for client in waiting {
            client.roundPump()
        }
        inRound = false
        scheduleRound()
    }

    func register(_ client: BenchClient) {
        clients.append(client)
    }

    func recordLatency(_ nanoseconds: UInt64) {
        _ = histogram.record(Swift.min(Swift.max(nanoseconds, 1), Self.highestLatency))
    }

    func noteError(_ message: String) {
        if errors.count < 20 { errors.append(message) }
    }

    func startPublishing(at start: UInt64, publishers: Int, rate: Double?) {
        for client in clients {
            guard case .publisher(let index) = client.role else { continue }
            var offset: UInt64 = 0
            if let rate {
                // Spread the publishers evenly over one interval of a single publisher.
                let interval = Double(publishers) * 1_000_000_000 / rate
                offset = UInt64(interval * Double(index) / Double(publishers))
            }
            client.startPublishing(at: start, offset: offset)
        }
    }

    func stopPublishing() -> LoopSnapshot {
        for client in clients { client.stopPublishing() }
        return snapshot()
    }

    func snapshot() -> LoopSnapshot {
        var snapshot = LoopSnapshot()
        snapshot.delivered = delivered
        snapshot.lastDeliveryAt = lastDeliveryAt
        for client in clients {
            switch client.role {
            case .publisher(let index):
                snapshot.sent += client.sent
                snapshot.acknowledged += client.acknowledged
                snapshot.inflight += client.inflight
                snapshot.sentByPublisher.append(PublisherCount(publisher: index, sent: client.sent))
                if !client.hasFinished { snapshot.unfinishedPublishers += 1 }
            case .subscriber:
                for tracker in client.trackers { snapshot.unique += tracker.unique }
            case .idle:
                break
            }
        }
        return snapshot
    }

    func report() -> LoopReport {
        var report = LoopReport(
            snapshot: snapshot(),
            histogram: histogram,
            unexpected: unexpected,
            disconnects: disconnects,
            errors: errors
        )
        for client in clients {
            if case .subscriber(let index) = client.role {
                report.subscribers.append(
                    SubscriberReport(subscriber: index, firstPublisher: client.firstPublisher, trackers: client.trackers)
                )
            }
        }
        return report
    }

    func closeAll() -> EventLoopFuture<Void> {
        let closed = clients.map { $0.close() }
        return EventLoopFuture.andAllComplete(closed, on: eventLoop)
    }
}

struct PublisherCount: Sendable {
    var publisher: Int
    var sent: Int
}

/// Counters of one loop at one instant.
struct LoopSnapshot: Sendable {
    var sent = 0
    var acknowledged = 0
    var inflight = 0
    var delivered = 0
    var unique = 0
    var unfinishedPublishers = 0
    var lastDeliveryAt: UInt64 = 0
    var sentByPublisher: [PublisherCount] = []

    static func + (lhs: LoopSnapshot, rhs: LoopSnapshot) -> LoopSnapshot {
        var sum = lhs
        sum.sent += rhs.sent
        sum.acknowledged += rhs.acknowledged
        sum.inflight += rhs.inflight
        sum.delivered += rhs.delivered
        sum.unique += rhs.unique
        sum.unfinishedPublishers += rhs.unfinishedPublishers
        sum.lastDeliveryAt = Swift.max(lhs.lastDeliveryAt, rhs.lastDeliveryAt)
        sum.sentByPublisher += rhs.sentByPublisher
        return sum
    }
}

struct SubscriberReport: Sendable {
    var subscriber: Int
    var firstPublisher: Int
    var trackers: [SequenceTracker]
}

/// Everything a loop measured, collected once at the end of the run.
struct LoopReport: Sendable {
    var snapshot: LoopSnapshot
    var histogram: Histogram<UInt64>
    var unexpected: Int
    var disconnects: Int
    var errors: [String]
    var subscribers: [SubscriberReport] = []
}
