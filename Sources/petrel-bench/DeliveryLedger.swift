import NIOConcurrencyHelpers
import NIOCore

/// Delivery progress per publisher, over all subscribers and event loops: for each subscriber, one more than
/// the highest sequence number it received from the publisher, summed.
///
/// Publishing at saturation, a publisher keeps at most `--window` messages sent but not yet delivered, so that
/// the run measures what the broker delivers rather than what kernel buffers and broker queues absorb.
/// Progress rather than a count of deliveries moves the window, so that a message the broker dropped does not
/// hold it shut. Subscribers add their progress once per read batch; a publisher whose window is full parks
/// itself here and is woken on its own event loop by the subscriber that next makes progress.
final class DeliveryLedger: Sendable {
    private struct Entries {
        var delivered: [Int]
        var parked: [NIOLoopBound<BenchClient>?]
    }

    private let entries: NIOLockedValueBox<Entries>

    init(publishers: Int) {
        entries = NIOLockedValueBox(
            Entries(
                delivered: Array(repeating: 0, count: publishers),
                parked: Array(repeating: nil, count: publishers)
            )
        )
    }

    func delivered(publisher: Int) -> Int {
        entries.withLockedValue { $0.delivered[publisher] }
    }

    /// Parks `client` unless its deliveries moved past `seen` meanwhile; returns the current count.
    func park(_ client: NIOLoopBound<BenchClient>, publisher: Int, seen: Int) -> Int {
        entries.withLockedValue { entries in
            let delivered = entries.delivered[publisher]
            if delivered == seen { entries.parked[publisher] = client }
            return delivered
        }
    }

    /// Adds `counts[slot]` deliveries to publisher `first + slot` for each of `slots`, and wakes the publishers
    /// that were parked.
    func add(first: Int, slots: [Int], counts: [Int]) {
        var woken: [NIOLoopBound<BenchClient>] = []
        entries.withLockedValue { entries in
            for slot in slots {
                let publisher = first + slot
                entries.delivered[publisher] += counts[slot]
                if let parked = entries.parked[publisher] {
                    entries.parked[publisher] = nil
                    woken.append(parked)
                }
            }
        }
        for client in woken {
            client.eventLoop.execute { client.value.wake() }
        }
    }
}
