import Foundation
import Histogram
import MQTTWire
import NIOCore
import NIOPosix

/// Connects the clients of a scenario, lets them publish for the run's length, drains, and measures.
struct BenchRunner: Sendable {
    let configuration: BenchConfiguration

    private struct Loop: Sendable {
        var eventLoop: any EventLoop
        var state: NIOLoopBound<LoopState>
    }

    func run() async throws -> BenchResult {
        let configuration = self.configuration
        var result = BenchResult(
            scenario: configuration.scenario.rawValue,
            protocolVersion: configuration.version == .v5 ? "5" : "3.1.1",
            qos: Int(configuration.qos.rawValue),
            payloadBytes: configuration.payloadSize,
            publishers: configuration.scenario == .idle ? 0 : configuration.publishers,
            subscribers: configuration.scenario == .idle ? 0 : configuration.subscribers,
            connections: configuration.scenario == .idle
                ? configuration.connections : configuration.publishers + configuration.subscribers,
            rate: configuration.rate,
            inflight: configuration.inflight,
            window: configuration.rate == nil ? configuration.window : 0
        )
        result.openFileLimit = raiseOpenFileLimit()

        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        let runIdentifier = configuration.runIdentifier
        let ledger = DeliveryLedger(publishers: configuration.publishers)
        var loops: [Loop] = []
        for eventLoop in group.makeIterator() {
            let state = try await eventLoop.submit {
                NIOLoopBound(LoopState(eventLoop: eventLoop, runIdentifier: runIdentifier, ledger: ledger), eventLoop: eventLoop)
            }.get()
            loops.append(Loop(eventLoop: eventLoop, state: state))
        }

        do {
            if configuration.scenario == .idle {
                try await runIdle(loops: loops, result: &result)
            } else {
                try await runTraffic(loops: loops, result: &result)
            }
        } catch let failure as ClientFailure {
            result.status = failure.unsupported ? .unsupported : .failed
            result.message = failure.description
        } catch {
            result.status = .failed
            result.message = "\(error)"
        }

        for loop in loops {
            let state = loop.state
            try? await loop.eventLoop.flatSubmit { state.value.closeAll() }.get()
        }
        try? await group.shutdownGracefully()
        return result
    }

    // MARK: Connecting

    /// Connects `count` clients made by `role`, `connectConcurrency` at a time. With `tolerateFailures`
    /// failures are counted and connecting stops after `maximumFailures` of them; otherwise the first failure
    /// is thrown.
    private func connect(
        count: Int,
        role: @escaping @Sendable (Int) -> ClientRole,
        loopOffset: Int,
        loops: [Loop],
        tolerateFailures: Bool,
        maximumFailures: Int = 100
    ) async throws -> (connected: Int, failed: Int, firstError: String?) {
        let configuration = self.configuration
        var connected = 0
        var failed = 0
        var firstError: String?
        try await withThrowingTaskGroup(of: Result<Void, any Error>.self) { tasks in
            var next = 0
            func launch() {
                let index = next
                next += 1
                let loop = loops[(index + loopOffset) % loops.count]
                tasks.addTask {
                    do {
                        try await Self.connectOne(role: role(index), loop: loop, configuration: configuration)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
            }
            while next < count && next < configuration.connectConcurrency { launch() }
            while let outcome = try await tasks.next() {
                switch outcome {
                case .success:
                    connected += 1
                case .failure(let error):
                    failed += 1
                    if firstError == nil { firstError = "\(error)" }
                    if !tolerateFailures {
                        tasks.cancelAll()
                        throw error
                    }
                }
                if next < count && failed < maximumFailures { launch() }
            }
        }
        return (connected, failed, firstError)
    }

    private static func connectOne(role: ClientRole, loop: Loop, configuration: BenchConfiguration) async throws {
        let ready = loop.eventLoop.makePromise(of: ClientReady.self)
        let state = loop.state
        let bootstrap = ClientBootstrap(group: loop.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(Int64(configuration.connectTimeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configuration.transport.configure(channel) { channel in
                        let client = BenchClient(
                            role: role,
                            state: state.value,
                            configuration: configuration,
                            ready: ready
                        )
                        try channel.pipeline.syncOperations.addHandler(client)
                    }
                }
            }
        do {
            _ = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            ready.fail(error)
            _ = try? await ready.futureResult.get()
            throw error
        }
        _ = try await ready.futureResult.get()
    }

    // MARK: Idle

    private func runIdle(loops: [Loop], result: inout BenchResult) async throws {
        let before = configuration.brokerPID.flatMap(ProcessSample.read)
        let started = ContinuousClock.now
        let outcome = try await connect(
            count: configuration.connections,
            role: { .idle($0) },
            loopOffset: 0,
            loops: loops,
            tolerateFailures: true
        )
        let seconds = (ContinuousClock.now - started).seconds
        result.connected = outcome.connected
        result.connectFailures = outcome.failed
        result.connectSeconds = seconds
        result.connectsPerSecond = Double(outcome.connected) / Swift.max(seconds, 1e-9)
        if let firstError = outcome.firstError { result.errors.append(firstError) }
        // Let the broker finish its bookkeeping before its memory is read.
        try await Task.sleep(for: .seconds(1))
        if let pid = configuration.brokerPID, let before, let after = ProcessSample.read(pid: pid) {
            result.broker = .init(
                pid: pid,
                rssBeforeKib: before.residentKiB,
                rssAfterKib: after.residentKiB,
                rssPeakKib: after.peakResidentKiB,
                cpuSeconds: after.cpuSeconds - before.cpuSeconds,
                cpuPercent: 100 * (after.cpuSeconds - before.cpuSeconds) / Swift.max(seconds, 1e-9)
            )
            if outcome.connected > 0 {
                result.rssPerConnectionConnectedBytes =
                    (Double(after.residentKiB - before.residentKiB) * 1024 / Double(outcome.connected)).rounded()
                result.rssPerConnectionBytes = result.rssPerConnectionConnectedBytes
            }
        }
        if configuration.idleWait > 0 {
            try await Task.sleep(for: .seconds(configuration.idleWait))
            if let pid = configuration.brokerPID, let before, let after = ProcessSample.read(pid: pid), outcome.connected > 0 {
                result.idleWaitSeconds = configuration.idleWait
                result.rssPerConnectionBytes =
                    (Double(after.residentKiB - before.residentKiB) * 1024 / Double(outcome.connected)).rounded()
            }
        }
        if configuration.hold > 0 {
            try await Task.sleep(for: .seconds(configuration.hold))
        }
        var disconnects = 0
        for loop in loops {
            let state = loop.state
            disconnects += try await loop.eventLoop.submit { state.value.disconnects }.get()
        }
        result.disconnects = disconnects
        if outcome.connected == 0 {
            result.status = .failed
            result.message = outcome.firstError ?? "no connection succeeded"
        }
    }

    // MARK: Traffic

    private func snapshot(_ loops: [Loop], stop: Bool = false) async throws -> LoopSnapshot {
        var total = LoopSnapshot()
        for loop in loops {
            let state = loop.state
            total = total + (try await loop.eventLoop.submit { stop ? state.value.stopPublishing() : state.value.snapshot() }.get())
        }
        return total
    }

    private func runTraffic(loops: [Loop], result: inout BenchResult) async throws {
        let configuration = self.configuration
        let before = configuration.brokerPID.flatMap(ProcessSample.read)
        let connectStarted = ContinuousClock.now
        let subscribers = try await connect(
            count: configuration.subscribers,
            role: { .subscriber($0) },
            loopOffset: 0,
            loops: loops,
            tolerateFailures: false
        )
        let publishers = try await connect(
            count: configuration.publishers,
            role: { .publisher($0) },
            loopOffset: configuration.subscribers,
            loops: loops,
            tolerateFailures: false
        )
        result.connected = subscribers.connected + publishers.connected
        result.connectSeconds = (ContinuousClock.now - connectStarted).seconds
        result.connectsPerSecond = Double(result.connected) / Swift.max(result.connectSeconds, 1e-9)

        // Publishing starts at the same instant on every loop.
        let brokerAtStart = configuration.brokerPID.flatMap(ProcessSample.read)
        let benchAtStart = ProcessSample.readSelf()
        let start = NIODeadline.now() + .milliseconds(20)
        let startNanos = start.uptimeNanoseconds
        for loop in loops {
            let state = loop.state
            let publisherCount = configuration.publishers
            let rate = configuration.rate
            try await loop.eventLoop.submit {
                state.value.startPublishing(at: startNanos, publishers: publisherCount, rate: rate)
            }.get()
        }

        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(configuration.duration ?? configuration.maxTime) + .milliseconds(20)
        if configuration.duration != nil {
            try await Task.sleep(until: deadline, clock: clock)
        } else {
            while clock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                if try await snapshot(loops).unfinishedPublishers == 0 { break }
            }
        }
        let atStop = try await snapshot(loops, stop: true)
        let stopNanos = NIODeadline.now().uptimeNanoseconds
        let window = Double(stopNanos - startNanos) / 1e9

        // Drain: wait for every owed delivery and acknowledgement, within the drain timeout.
        let expected = atStop.sent * configuration.receiversPerMessage
        let drainDeadline = clock.now + .seconds(configuration.drainTimeout)
        var latest = atStop
        while clock.now < drainDeadline {
            latest = try await snapshot(loops)
            if latest.unique >= expected && latest.inflight == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let drainedNanos = NIODeadline.now().uptimeNanoseconds
        let brokerAtEnd = configuration.brokerPID.flatMap(ProcessSample.read)
        let benchAtEnd = ProcessSample.readSelf()

        var reports: [LoopReport] = []
        for loop in loops {
            let state = loop.state
            reports.append(try await loop.eventLoop.submit { state.value.report() }.get())
        }
        self.summarise(reports, expected: expected, into: &result)
        result.durationSeconds = window
        result.sent = atStop.sent
        result.sentPerSecond = Double(atStop.sent) / window
        if configuration.duration != nil {
            result.deliveredPerSecond = Double(atStop.delivered) / window
        } else {
            let last = reports.map(\.snapshot.lastDeliveryAt).max() ?? stopNanos
            let span = Double((last > startNanos ? last : stopNanos) - startNanos) / 1e9
            result.deliveredPerSecond = Double(result.delivered) / Swift.max(span, 1e-9)
        }
        if let pid = configuration.brokerPID, let before, let brokerAtStart, let brokerAtEnd {
            let cpu = brokerAtEnd.cpuSeconds - brokerAtStart.cpuSeconds
            result.broker = .init(
                pid: pid,
                rssBeforeKib: before.residentKiB,
                rssAfterKib: brokerAtEnd.residentKiB,
                rssPeakKib: brokerAtEnd.peakResidentKiB,
                cpuSeconds: cpu,
                cpuPercent: 100 * cpu / Swift.max(Double(drainedNanos - startNanos) / 1e9, 1e-9)
            )
        }
        if let benchAtStart, let benchAtEnd {
            let cpu = benchAtEnd.cpuSeconds - benchAtStart.cpuSeconds
            result.benchCpuSeconds = (cpu * 100).rounded() / 100
            result.benchCpuPercent = (1000 * cpu / Swift.max(Double(drainedNanos - startNanos) / 1e9, 1e-9)).rounded() / 10
        }
        if result.delivered == 0 && result.status == .ok {
            result.status = .failed
            result.message = "nothing was delivered"
        }
    }

    private func summarise(_ reports: [LoopReport], expected: Int, into result: inout BenchResult) {
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: LoopState.highestLatency,
            numberOfSignificantValueDigits: .three
        )
        var sentByPublisher = Array(repeating: 0, count: configuration.publishers)
        var unique = 0
        var duplicates = 0
        var outOfOrder = 0
        var sharedGroup: [SequenceTracker] = configuration.scenario == .shared
            ? Array(repeating: SequenceTracker(), count: configuration.publishers) : []
        for report in reports {
            histogram.add(report.histogram)
            result.delivered += report.snapshot.delivered
            result.unexpected += report.unexpected
            result.disconnects += report.disconnects
            result.errors += report.errors
            for count in report.snapshot.sentByPublisher where count.publisher < sentByPublisher.count {
                sentByPublisher[count.publisher] = count.sent
            }
            for subscriber in report.subscribers {
                for (slot, tracker) in subscriber.trackers.enumerated() {
                    if configuration.scenario == .shared {
                        sharedGroup[subscriber.firstPublisher + slot].merge(tracker)
                    } else {
                        unique += tracker.unique
                        duplicates += tracker.duplicates
                        outOfOrder += tracker.outOfOrder
                    }
                }
            }
        }
        for tracker in sharedGroup {
            unique += tracker.unique
            duplicates += tracker.duplicates
            outOfOrder += tracker.outOfOrder
        }
        result.expected = sentByPublisher.reduce(0, +) * configuration.receiversPerMessage
        result.lost = Swift.max(0, result.expected - unique)
        result.duplicates = duplicates
        result.outOfOrder = outOfOrder
        if histogram.totalCount > 0 {
            result.latency = BenchResult.Latency(histogram)
        }
    }
}

extension Duration {
    var seconds: Double {
        let parts = self.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
