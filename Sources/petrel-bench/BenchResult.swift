import Foundation
import Histogram

/// The outcome of one run, printed as a table or, with `--json`, as one JSON object (snake_case keys).
struct BenchResult: Codable, Sendable {
    enum Status: String, Codable, Sendable {
        case ok
        /// The broker refused a feature the scenario needs.
        case unsupported
        case failed
    }

    struct Latency: Codable, Sendable {
        var count: UInt64
        var p50Micros: Double
        var p99Micros: Double
        var p999Micros: Double
        var maxMicros: Double
        var meanMicros: Double

        init(_ histogram: Histogram<UInt64>) {
            func micros(_ nanoseconds: UInt64) -> Double { (Double(nanoseconds) / 1000 * 10).rounded() / 10 }
            count = histogram.totalCount
            p50Micros = micros(histogram.valueAtPercentile(50))
            p99Micros = micros(histogram.valueAtPercentile(99))
            p999Micros = micros(histogram.valueAtPercentile(99.9))
            maxMicros = micros(histogram.max)
            meanMicros = (histogram.mean / 100).rounded() / 10
        }
    }

    struct Broker: Codable, Sendable {
        var pid: Int32
        var rssBeforeKib: Int
        var rssAfterKib: Int
        var rssPeakKib: Int
        /// CPU seconds the broker used while messages flowed (or, idle, while connecting).
        var cpuSeconds: Double
        /// `cpuSeconds` over the wall time of the same interval, in percent of one core.
        var cpuPercent: Double
    }

    var status: Status = .ok
    var message: String?
    var scenario: String
    var protocolVersion: String
    var qos: Int
    var payloadBytes: Int
    var publishers: Int
    var subscribers: Int
    var connections: Int
    var rate: Double?
    var inflight: Int
    var window: Int
    /// Seconds during which the publishers sent.
    var durationSeconds: Double = 0
    var sent = 0
    var sentPerSecond = 0.0
    var delivered = 0
    var deliveredPerSecond = 0.0
    /// Deliveries the broker owed: each message sent times the subscriptions it matches.
    var expected = 0
    var lost = 0
    var duplicates = 0
    var outOfOrder = 0
    var unexpected = 0
    var disconnects = 0
    var latency: Latency?
    var connected = 0
    var connectFailures = 0
    var connectSeconds = 0.0
    var connectsPerSecond = 0.0
    var broker: Broker?
    /// Idle scenario: growth of the broker's RSS divided by the connections held, after the idle wait (or 1 s
    /// after the last CONNACK without one).
    var rssPerConnectionBytes: Double?
    /// Idle scenario: the same 1 s after the last CONNACK.
    var rssPerConnectionConnectedBytes: Double?
    /// Idle scenario: seconds between the two readings.
    var idleWaitSeconds: Double?
    var benchCpuSeconds: Double?
    /// `benchCpuSeconds` over the same interval as the broker's CPU time, in percent of one core: near 100 × the
    /// generator's threads, the figures measure the generator rather than the broker.
    var benchCpuPercent: Double?
    var openFileLimit: Int = 0
    var errors: [String] = []

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        var lines: [String] = []
        var title = "\(scenario)  MQTT \(protocolVersion)"
        if scenario != "idle" {
            title += "  QoS \(qos)  payload \(payloadBytes) B  publishers \(publishers)  subscribers \(subscribers)"
            if let rate { title += "  rate \(grouped(rate)) msg/s" }
        } else {
            title += "  connections \(connections)"
        }
        lines.append(title)
        if status != .ok {
            lines.append("  status        \(status.rawValue): \(message ?? "")")
        }
        if scenario == "idle" {
            lines.append(
                "  connected     \(grouped(connected)) of \(grouped(connections)) in \(fixed(connectSeconds)) s"
                    + " (\(grouped(connectsPerSecond)) connects/s), failed \(grouped(connectFailures))"
            )
            if let connectedBytes = rssPerConnectionConnectedBytes {
                lines.append("  broker RSS    \(fixed(connectedBytes / 1024, 2)) KiB per connection, 1 s after connecting")
            }
            if let idleWaitSeconds, let rssPerConnectionBytes {
                lines.append(
                    "  broker RSS    \(fixed(rssPerConnectionBytes / 1024, 2)) KiB per connection, after \(fixed(idleWaitSeconds)) s more idle"
                )
            }
        } else {
            lines.append("  window        \(fixed(durationSeconds)) s")
            lines.append("  sent          \(grouped(sent)) msgs  \(grouped(sentPerSecond)) msg/s")
            lines.append("  delivered     \(grouped(delivered)) msgs  \(grouped(deliveredPerSecond)) msg/s")
            lines.append(
                "  lost          \(grouped(lost)) of \(grouped(expected))  duplicates \(grouped(duplicates))"
                    + "  out of order \(grouped(outOfOrder))"
            )
            if let latency, latency.count > 0 {
                lines.append(
                    "  latency µs    p50 \(fixed(latency.p50Micros))  p99 \(fixed(latency.p99Micros))"
                        + "  p99.9 \(fixed(latency.p999Micros))  max \(fixed(latency.maxMicros))"
                )
            }
        }
        if let broker {
            lines.append(
                "  broker        pid \(broker.pid)  RSS \(fixed(Double(broker.rssBeforeKib) / 1024)) ->"
                    + " \(fixed(Double(broker.rssAfterKib) / 1024)) MiB (peak \(fixed(Double(broker.rssPeakKib) / 1024)))"
                    + "  CPU \(fixed(broker.cpuSeconds, 2)) s (\(fixed(broker.cpuPercent)) %)"
            )
        }
        if let benchCpuSeconds, let benchCpuPercent {
            lines.append("  generator     CPU \(fixed(benchCpuSeconds, 2)) s (\(fixed(benchCpuPercent)) %)")
        }
        if unexpected > 0 || disconnects > 0 {
            lines.append("  unexpected    \(unexpected) messages, \(disconnects) connections dropped by the broker")
        }
        for error in errors.prefix(5) {
            lines.append("  error         \(error)")
        }
        return lines.joined(separator: "\n")
    }
}

func fixed(_ value: Double, _ digits: Int = 1) -> String {
    String(format: "%.\(digits)f", value)
}

func grouped(_ value: Double) -> String {
    grouped(Int(value.rounded()))
}

func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (offset, character) in digits.enumerated() {
        if offset > 0 && (digits.count - offset) % 3 == 0 { out.append(",") }
        out.append(character)
    }
    return value < 0 ? "-" + out : out
}
