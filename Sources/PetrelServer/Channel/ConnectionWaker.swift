import NIOCore
import PetrelCore

/// The engine's handle on one connection: waking it makes the connection drain its session's queue on the
/// connection's own event loop.
///
/// The engine returns wakers instead of calling them, so that the server can batch the wake-ups of one read
/// batch per event loop (`WakeBatch`): one `execute` per loop, not one per message.
final class ConnectionWaker: DeliveryWaker {
    let eventLoop: any EventLoop
    /// Cleared when the channel goes away, which also breaks the handler <-> waker reference cycle.
    let handler: NIOLoopBoundBox<MQTTConnectionHandler?>

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.handler = .makeEmptyBox(valueType: MQTTConnectionHandler.self, eventLoop: eventLoop)
    }

    /// Wakes this connection alone (used outside a read batch, e.g. by the broker's timer).
    func wake() {
        if eventLoop.inEventLoop {
            handler.value?.deliverPending()
        } else {
            eventLoop.execute { self.handler.value?.deliverPending() }
        }
    }
}

/// Wake-ups collected during one read batch, fired at its end: connections on the current loop are drained
/// in place, every other loop gets one task carrying all of its connections.
struct WakeBatch {
    private var wakers: [any DeliveryWaker] = []

    var isEmpty: Bool { wakers.isEmpty }

    mutating func append(contentsOf newWakers: [any DeliveryWaker]) {
        wakers.append(contentsOf: newWakers)
    }

    mutating func fire(on currentLoop: any EventLoop) {
        guard !wakers.isEmpty else { return }
        let batch = wakers
        wakers.removeAll(keepingCapacity: true)
        if batch.count == 1 {
            batch[0].wake()
            return
        }
        var local: [ConnectionWaker] = []
        var remote: [ObjectIdentifier: (loop: any EventLoop, wakers: [ConnectionWaker])] = [:]
        for waker in batch {
            guard let connection = waker as? ConnectionWaker else {
                waker.wake()
                continue
            }
            if connection.eventLoop === currentLoop {
                local.append(connection)
            } else {
                remote[ObjectIdentifier(connection.eventLoop), default: (connection.eventLoop, [])].wakers
                    .append(connection)
            }
        }
        for (_, entry) in remote {
            let wakers = entry.wakers
            entry.loop.execute {
                for waker in wakers { waker.handler.value?.deliverPending() }
            }
        }
        for waker in local { waker.handler.value?.deliverPending() }
    }
}
