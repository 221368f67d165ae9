import MQTTWire

/// The traffic shapes the load generator knows.
enum Scenario: String, CaseIterable, Sendable, Codable {
    /// P publishers, each on its own topic, to one subscriber of a wildcard filter.
    case fanIn = "fan-in"
    /// One publisher to S subscribers of the same topic.
    case fanOut = "fan-out"
    /// N publishers, each with a subscriber of its own topic.
    case pairs
    /// P publishers to an MQTT 5 shared subscription group of S members.
    case shared
    /// C connections that only connect and stay: connect rate and broker memory per connection.
    case idle
}

/// Everything a run needs, validated and with the scenario's defaults filled in.
struct BenchConfiguration: Sendable {
    var scenario: Scenario
    var host: String
    var port: Int
    var version: ProtocolVersion
    var qos: QoS
    var payloadSize: Int
    /// Seconds of publishing; `nil` when a message count bounds the run.
    var duration: Double?
    /// Messages over all publishers; `nil` when the duration bounds the run.
    var messages: Int?
    /// Messages per second over all publishers; `nil` publishes as fast as the broker takes them.
    var rate: Double?
    /// Unacknowledged messages per publisher at QoS 1 and 2.
    var inflight: Int
    /// Messages per publisher sent but not yet delivered, when publishing at saturation (0: no limit).
    var window: Int
    var publishers: Int
    var subscribers: Int
    var connections: Int
    var threads: Int
    var batch: Int
    var brokerPID: Int32?
    var connectConcurrency: Int
    var connectTimeout: Double
    var drainTimeout: Double
    var maxTime: Double
    /// Idle scenario: seconds to hold the connections after the last one connected.
    var hold: Double
    /// Idle scenario: seconds after the first memory reading (1 s after the last CONNACK) before the second.
    var idleWait: Double
    var keepAlive: UInt16
    var transport: TransportSetup

    /// Bytes every payload starts with: publisher index, sequence number, send time.
    static let stampSize = 20

    /// Unique per run, so that messages a broker still holds from an earlier run cannot match this one.
    var runIdentifier: String

    var topicPrefix: String { "petrel-bench/\(runIdentifier)" }

    func publishTopic(publisher: Int) -> String {
        switch scenario {
        case .fanIn: return "\(topicPrefix)/in/\(publisher)"
        case .fanOut: return "\(topicPrefix)/out"
        case .pairs: return "\(topicPrefix)/pair/\(publisher)"
        case .shared: return "\(topicPrefix)/shared/\(publisher)"
        case .idle: return "\(topicPrefix)/idle"
        }
    }

    func subscriptionFilter(subscriber: Int) -> String {
        switch scenario {
        case .fanIn: return "\(topicPrefix)/in/+"
        case .fanOut: return "\(topicPrefix)/out"
        case .pairs: return "\(topicPrefix)/pair/\(subscriber)"
        case .shared: return "$share/g/\(topicPrefix)/shared/+"
        case .idle: return "\(topicPrefix)/idle"
        }
    }

    /// The publishers whose messages a subscriber receives, as a range of publisher indices.
    func publisherRange(subscriber: Int) -> Range<Int> {
        switch scenario {
        case .fanIn, .fanOut, .shared: return 0..<publishers
        case .pairs: return subscriber..<(subscriber + 1)
        case .idle: return 0..<0
        }
    }

    /// How many subscriptions receive each message of a publisher (a shared group counts once).
    var receiversPerMessage: Int {
        switch scenario {
        case .fanIn, .pairs, .shared: return 1
        case .fanOut: return subscribers
        case .idle: return 0
        }
    }

    /// The message budget of one publisher in `--messages` mode.
    func messageLimit(publisher: Int) -> Int? {
        guard let messages else { return nil }
        let share = messages / publishers
        return share + (publisher < messages % publishers ? 1 : 0)
    }
}
