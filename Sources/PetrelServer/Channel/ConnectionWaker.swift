import NIOCore
import PetrelCore

/// The engine's handle on one connection: waking it makes the connection drain its session's queue on the
/// connection's own event loop.
///
/// The engine returns wakers instead of calling them, so that the server can batch the wake-ups of one read
/// batch per event loop (`WakeBatch`): one `execute` per loop, not one per message.
///
/// `@unchecked Sendable`: the only mutable state, `loopBoundHandler`, is read and written only through
/// `handler`, whose accessors trap unless they run on `eventLoop` (immutable), so it is touched by one thread
/// only; the rest is immutable and `Sendable`. This is what `NIOLoopBoundBox` does, without a second object per
/// connection.
final class ConnectionWaker: DeliveryWaker, @unchecked Sendable {
    let eventLoop: any EventLoop
    private var loopBoundHandler: MQTTConnectionHandler?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The connection, on its event loop only. Cleared when the channel goes away, which also breaks the
    /// handler <-> waker reference cycle.
    var handler: MQTTConnectionHandler? {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self.loopBoundHandler
        }
        set {
            self.eventLoop.preconditionInEventLoop()
            self.loopBoundHandler = newValue
        }
    }

    /// Wakes this connection alone (used outside a read batch, e.g. by the broker's timer).
    func wake() {
        if eventLoop.inEventLoop {
            handler?.deliverPending()
        } else {
            eventLoop.execute { self.handler?.deliverPending() }
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
                for waker in wakers { waker.handler?.deliverPending() }
            }
        }
        for waker in local { waker.handler?.deliverPending() }
    }
}
