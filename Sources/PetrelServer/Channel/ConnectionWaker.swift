import NIOCore
import PetrelCore

/// The engine's handle on one connection: waking it makes the connection drain its session's queue on the
/// connection's own event loop.
///
/// The engine returns wakers instead of calling them, so that the server can batch the wake-ups of one read
/// batch per event loop (`WakeBatch`, `DeliveryScheduler`): one drain per connection and loop iteration, not
/// one per message.
///
/// `@unchecked Sendable`: the mutable state is `loopBoundHandler`, read and written only through `handler`, whose
/// accessors trap unless they run on `eventLoop` (its immutable scheduler's), and `drainedInEpoch`, touched only
/// by that scheduler's loop-bound `schedule`; so it is touched by one thread only; the rest is immutable and
/// `Sendable`. This is what `NIOLoopBoundBox` does, without a second object per connection.
final class ConnectionWaker: DeliveryWaker, @unchecked Sendable {
    /// The drain queue of this connection's event loop.
    let scheduler: DeliveryScheduler
    private var loopBoundHandler: MQTTConnectionHandler?
    /// The scheduler's iteration in which this connection was last drained at once; touched on `eventLoop` only,
    /// by its `DeliveryScheduler`.
    var drainedInEpoch: UInt64 = .max

    init(scheduler: DeliveryScheduler) {
        self.scheduler = scheduler
    }

    /// The connection's event loop (its scheduler's: one field less per connection).
    var eventLoop: any EventLoop { self.scheduler.eventLoop }

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

/// Wake-ups collected during one read batch, fired at its end: connections on the current loop go to its
/// `DeliveryScheduler` (drained once the loop has read every ready socket), every other loop gets one task
/// carrying all of its connections.
struct WakeBatch {
    private var wakers: [any DeliveryWaker] = []

    mutating func append(contentsOf newWakers: [any DeliveryWaker]) {
        wakers.append(contentsOf: newWakers)
    }

    /// The wakers collected so far, leaving the batch empty. Firing them is a separate step (`fire(_:on:)`)
    /// because a drain it starts may be this very connection's, which collects and fires wakers of its own.
    mutating func take() -> [any DeliveryWaker] {
        guard !wakers.isEmpty else { return [] }
        let batch = wakers
        wakers.removeAll(keepingCapacity: true)
        return batch
    }

    static func fire(_ batch: [any DeliveryWaker], on currentLoop: any EventLoop) {
        guard !batch.isEmpty else { return }
        var remote: [ObjectIdentifier: (loop: any EventLoop, wakers: [ConnectionWaker])] = [:]
        for waker in batch {
            guard let connection = waker as? ConnectionWaker else {
                waker.wake()
                continue
            }
            if connection.eventLoop === currentLoop {
                connection.scheduler.schedule(connection)
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
    }
}

/// The connections of one event loop that have messages to drain. A connection is drained at once the first
/// time it is woken in an iteration of the loop (a message read from a socket reaches its subscriber without
/// waiting for the other sockets of the iteration); woken again in the same iteration, it is drained once more
/// after the loop has read from every ready socket. A subscriber fed by many publishers thus writes at most twice
/// per iteration, with the messages of all of them, instead of once per publisher's read.
///
/// NIO runs the tasks given to `execute` after the I/O events of the iteration, so the second drain waits at
/// most for the rest of the iteration; that task also closes the iteration (`epoch`).
final class DeliveryScheduler: Sendable {
    let eventLoop: any EventLoop
    private let queue: NIOLoopBoundBox<Queue>

    private struct Queue {
        var pending: [ConnectionWaker] = []
        var spare: [ConnectionWaker] = []
        var scheduled = false
        /// Counts the loop iterations in which something was drained.
        var epoch: UInt64 = 0
    }

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.queue = .makeBoxSendingValue(Queue(), eventLoop: eventLoop)
    }

    /// Called on `eventLoop` only. A connection is scheduled at most once per drain: the engine hands out a
    /// session's waker again only after the session was drained.
    func schedule(_ waker: ConnectionWaker) {
        let epoch = queue.value.epoch
        if waker.drainedInEpoch != epoch {
            waker.drainedInEpoch = epoch
            closeIterationLater()
            waker.handler?.deliverPending()
        } else {
            queue.value.pending.append(waker)
            closeIterationLater()
        }
    }

    private func closeIterationLater() {
        guard !queue.value.scheduled else { return }
        queue.value.scheduled = true
        eventLoop.execute { self.run() }
    }

    private func run() {
        queue.value.epoch &+= 1
        // Drains may schedule further connections (a subscriber that publishes back): those belong to the next
        // iteration, so one run ends.
        var batch = queue.value.spare
        swap(&batch, &queue.value.pending)
        queue.value.scheduled = false
        for waker in batch { waker.handler?.deliverPending() }
        batch.removeAll(keepingCapacity: true)
        queue.value.spare = batch
    }
}

/// One `DeliveryScheduler` per event loop of a group, made when the server starts.
struct DeliverySchedulers: Sendable {
    private let byLoop: [ObjectIdentifier: DeliveryScheduler]

    init(group: any EventLoopGroup) {
        var byLoop: [ObjectIdentifier: DeliveryScheduler] = [:]
        for loop in group.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = DeliveryScheduler(eventLoop: loop)
        }
        self.byLoop = byLoop
    }

    func scheduler(for loop: any EventLoop) -> DeliveryScheduler {
        if let scheduler = byLoop[ObjectIdentifier(loop)] { return scheduler }
        preconditionFailure("event loop not in the server's group")
    }
}
