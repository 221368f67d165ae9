import NIOCore
import PetrelCore

/// The engine's handle on one connection: waking it makes the connection drain its session's queue on the
/// connection's own event loop.
///
/// The engine returns wakers instead of calling them, so that the server can batch the wake-ups of one read
/// batch per event loop (`WakeBatch`, `DeliveryScheduler`): one drain per connection and loop iteration, not
/// one per message.
///
/// `@unchecked Sendable`: the only mutable state, `loopBoundHandler`, is read and written only through
/// `handler`, whose accessors trap unless they run on `eventLoop` (its immutable scheduler's), so it is touched
/// by one thread only; the rest is immutable and `Sendable`. This is what `NIOLoopBoundBox` does, without a
/// second object per connection.
final class ConnectionWaker: DeliveryWaker, @unchecked Sendable {
    /// The drain queue of this connection's event loop.
    let scheduler: DeliveryScheduler
    private var loopBoundHandler: MQTTConnectionHandler?

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

    var isEmpty: Bool { wakers.isEmpty }

    mutating func append(contentsOf newWakers: [any DeliveryWaker]) {
        wakers.append(contentsOf: newWakers)
    }

    mutating func fire(on currentLoop: any EventLoop) {
        guard !wakers.isEmpty else { return }
        let batch = wakers
        wakers.removeAll(keepingCapacity: true)
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

/// The connections of one event loop that have messages to drain, drained once the loop has read from every
/// socket that was ready: a subscriber fed by many publishers then writes once per loop iteration, with the
/// messages of all of them, instead of once per publisher's read.
///
/// NIO runs the tasks given to `execute` after the I/O events of the iteration, so the delay is at most one
/// iteration of the loop.
final class DeliveryScheduler: Sendable {
    let eventLoop: any EventLoop
    private let queue: NIOLoopBoundBox<Queue>

    private struct Queue {
        var pending: [ConnectionWaker] = []
        var spare: [ConnectionWaker] = []
        var scheduled = false
    }

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.queue = .makeBoxSendingValue(Queue(), eventLoop: eventLoop)
    }

    /// Called on `eventLoop` only. A connection is scheduled at most once per drain: the engine hands out a
    /// session's waker again only after the session was drained.
    func schedule(_ waker: ConnectionWaker) {
        queue.value.pending.append(waker)
        guard !queue.value.scheduled else { return }
        queue.value.scheduled = true
        eventLoop.execute { self.run() }
    }

    private func run() {
        // Drains may schedule further connections (a subscriber that publishes back): those wait for the next
        // task, so one run ends.
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
