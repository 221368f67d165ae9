import ArgumentParser
import Foundation
import MQTTWire
import NIOCore

extension Scenario: ExpressibleByArgument {}

enum ProtocolOption: String, ExpressibleByArgument, CaseIterable {
    case v3_1_1 = "3.1.1"
    case v5 = "5"
}

@main
struct PetrelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel-bench",
        abstract: "Drives thousands of MQTT connections against a broker on 127.0.0.1 and measures it.",
        discussion: """
            Scenarios: fan-in (P publishers to one wildcard subscriber), fan-out (one publisher to S \
            subscribers), pairs (N publishers each with its own subscriber), shared (P publishers to a \
            $share group of S members, MQTT 5), idle (C connections held: connect rate and broker memory \
            per connection). Without --rate publishers send as fast as the broker takes messages; with \
            --rate the total rate is fixed and latency is measured at that load.
            """
    )

    @Argument(help: "fan-in, fan-out, pairs, shared or idle.")
    var scenario: Scenario

    @Option(help: "Broker address; loopback only.")
    var host = "127.0.0.1"

    @Option(help: "Broker port.")
    var port = 1883

    @Option(help: "Quality of service of publications and subscriptions: 0, 1 or 2.")
    var qos = 0

    @Option(help: "Payload size in bytes (at least 20: publisher, sequence number, send time).")
    var payload = 64

    @Option(name: .customLong("protocol"), help: "MQTT protocol version: 3.1.1 or 5 (shared: 5 by default).")
    var protocolVersion: ProtocolOption?

    @Option(help: "Seconds of publishing (default 10 unless --messages is given).")
    var duration: Double?

    @Option(help: "Messages over all publishers; the run ends when they are sent (or at --max-time).")
    var messages: Int?

    @Option(help: "Messages per second over all publishers; measures latency at this load.")
    var rate: Double?

    @Option(help: "Unacknowledged messages per publisher at QoS 1 and 2.")
    var inflight = 32

    @Option(
        help: """
            Messages per publisher sent but not yet delivered to its subscribers, without --rate (0: no limit). \
            Keeps a saturating run at what the broker delivers instead of filling kernel buffers and queues.
            """
    )
    var window = 64

    @Option(help: "Publishers (fan-in default 100, pairs 100, shared 10; fan-out always 1).")
    var publishers: Int?

    @Option(help: "Subscribers (fan-out default 100, shared 10; fan-in always 1; pairs as many as publishers).")
    var subscribers: Int?

    @Option(help: "Idle connections to open.")
    var connections = 1000

    @Option(help: "Event loop threads of the load generator (default: the cores available).")
    var threads: Int?

    @Option(help: "PUBLISH packets written per flush.")
    var batch = 64

    @Option(name: .customLong("broker-pid"), help: "Process id of the broker, for its RSS and CPU time.")
    var brokerPID: Int32?

    @Option(help: "Connections being opened at the same time.")
    var connectConcurrency = 200

    @Option(help: "Seconds a connection may take to be ready (CONNACK, SUBACK).")
    var connectTimeout = 10.0

    @Option(help: "Seconds to wait after publishing for outstanding deliveries.")
    var drain = 5.0

    @Option(help: "Upper bound in seconds on the publishing phase with --messages.")
    var maxTime = 120.0

    @Option(help: "Idle: seconds to hold the connections after measuring.")
    var hold = 0.0

    @Option(
        help: """
            Idle: read the broker's memory again after the connections were idle this many seconds more (a broker \
            that hibernates idle connections, such as Petrel after its --hibernate-after, then shows what they cost).
            """
    )
    var idleWait = 0.0

    @Option(help: "Transport: mqtt, mqtts (TLS), ws (WebSockets) or wss (WebSockets over TLS).")
    var transport: BenchTransport = .mqtt

    @Option(help: "PEM CA that signed the broker's certificate (mqtts, wss); without it the certificate is not verified.")
    var tlsCa: String?

    @Option(help: "WebSocket path (ws, wss).")
    var wsPath = "/mqtt"

    @Option(help: "Keep alive in seconds sent in CONNECT (no PINGREQ is sent: keep runs shorter).")
    var keepAlive: UInt16 = 600

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard host == "127.0.0.1" || host == "localhost" || host == "::1" else {
            throw ValidationError("--host must be a loopback address")
        }
        guard (0...2).contains(qos) else { throw ValidationError("--qos must be 0, 1 or 2") }
        guard payload >= BenchConfiguration.stampSize else {
            throw ValidationError("--payload must be at least \(BenchConfiguration.stampSize) bytes")
        }
        guard duration == nil || messages == nil else {
            throw ValidationError("give --duration or --messages, not both")
        }
        if let duration, !(duration > 0 && duration <= 3600) {
            throw ValidationError("--duration must be in (0, 3600]")
        }
        if let messages, messages <= 0 { throw ValidationError("--messages must be positive") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        guard (1...65_535).contains(inflight) else { throw ValidationError("--inflight must be in 1...65535") }
        guard window >= 0 else { throw ValidationError("--window must not be negative") }
        guard batch >= 1, connectConcurrency >= 1, connections >= 1 else {
            throw ValidationError("--batch, --connect-concurrency and --connections must be positive")
        }
        if scenario == .shared && protocolVersion == .v3_1_1 {
            throw ValidationError("shared subscriptions are measured with --protocol 5")
        }
    }

    func makeConfiguration() throws -> BenchConfiguration {
        var publisherCount: Int
        var subscriberCount: Int
        switch scenario {
        case .fanIn:
            publisherCount = publishers ?? 100
            subscriberCount = 1
        case .fanOut:
            publisherCount = 1
            subscriberCount = subscribers ?? 100
        case .pairs:
            publisherCount = publishers ?? subscribers ?? 100
            subscriberCount = publisherCount
        case .shared:
            publisherCount = publishers ?? 10
            subscriberCount = subscribers ?? 10
        case .idle:
            publisherCount = 0
            subscriberCount = 0
        }
        guard scenario == .idle || (publisherCount >= 1 && subscriberCount >= 1) else {
            throw ValidationError("--publishers and --subscribers must be positive")
        }
        let version: ProtocolVersion
        switch protocolVersion ?? (scenario == .shared ? .v5 : .v3_1_1) {
        case .v3_1_1: version = .v3_1_1
        case .v5: version = .v5
        }
        return BenchConfiguration(
            scenario: scenario,
            host: host,
            port: port,
            version: version,
            qos: QoS(rawValue: UInt8(qos)) ?? .atMostOnce,
            payloadSize: payload,
            duration: messages == nil ? (duration ?? 10) : nil,
            messages: messages,
            rate: rate,
            inflight: inflight,
            window: window,
            publishers: publisherCount,
            subscribers: subscriberCount,
            connections: connections,
            threads: threads ?? System.coreCount,
            batch: batch,
            brokerPID: brokerPID,
            connectConcurrency: connectConcurrency,
            connectTimeout: connectTimeout,
            drainTimeout: drain,
            maxTime: maxTime,
            hold: hold,
            idleWait: idleWait,
            keepAlive: keepAlive,
            transport: try TransportSetup(transport: transport, caFile: tlsCa, path: wsPath, host: host),
            runIdentifier: String(getpid())
        )
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        let result = try await BenchRunner(configuration: configuration).run()
        print(json ? result.json() : result.table())
        if result.status == .failed {
            throw ExitCode(1)
        }
    }
}
