import NIOCore

/// The connections of one event loop, and when each wants its timers looked at: the connect timeout before
/// CONNECT is accepted, then 1.5 times the keep alive after the last packet [MQTT-3.1.2-24].
///
/// One repeating task per loop (`checkDeadlines`) replaces a task scheduled per connection, which cost every
/// idle connection about 350 bytes: the scheduled task, its promise, two closures and its slot in the loop's
/// timer heap. Here a connection costs two array slots. A deadline is not moved by every packet: when it
/// passes, the connection compares it with its last activity and names its next one, so an active connection
/// is looked at once per keep alive, as it was with its own timer. A connection is closed at most one check
/// interval after its deadline.
///
/// A graceful shutdown also finds the connections here. Used only on its event loop (not `Sendable`).
final class EventLoopConnections {
    private var handlers: [MQTTConnectionHandler] = []
    /// When each handler (same index) must be looked at next; `.distantFuture` for never.
    private var deadlines: [NIODeadline] = []
    /// What this loop's connections receive and send (`TrafficCounters`).
    let traffic: LoopTraffic

    init(traffic: LoopTraffic = LoopTraffic()) {
        self.traffic = traffic
    }

    var count: Int { self.handlers.count }

    /// Adds `handler`, to be looked at once `deadline` has passed.
    func add(_ handler: MQTTConnectionHandler, deadline: NIODeadline) {
        handler.connectionIndex = self.handlers.count
        self.handlers.append(handler)
        self.deadlines.append(deadline)
    }

    /// Removes `handler` (the last one takes its slot); removing twice is harmless.
    func remove(_ handler: MQTTConnectionHandler) {
        let index = handler.connectionIndex
        guard self.handlers.indices.contains(index), self.handlers[index] === handler else { return }
        let last = self.handlers.count - 1
        if index != last {
            self.handlers[index] = self.handlers[last]
            self.deadlines[index] = self.deadlines[last]
            self.handlers[index].connectionIndex = index
        }
        self.handlers.removeLast()
        self.deadlines.removeLast()
        handler.connectionIndex = -1
    }

    func setDeadline(_ deadline: NIODeadline, for handler: MQTTConnectionHandler) {
        let index = handler.connectionIndex
        guard self.handlers.indices.contains(index), self.handlers[index] === handler else { return }
        self.deadlines[index] = deadline
    }

    /// Tells every connection whose deadline has passed; each names its next deadline or closes. The scan
    /// reads one contiguous array of deadlines and touches only the connections that are due.
    func checkDeadlines(now: NIODeadline) {
        var due: [MQTTConnectionHandler] = []
        for index in self.deadlines.indices where self.deadlines[index] <= now {
            due.append(self.handlers[index])
        }
        // Collected first: a connection that closes leaves the arrays while they would be walked.
        for handler in due {
            handler.deadlinePassed(now: now)
        }
    }

    /// Asks every connection to say goodbye and close (graceful shutdown).
    func shutdownAll() {
        let all = self.handlers
        for handler in all {
            handler.serverShutdown()
        }
    }
}
