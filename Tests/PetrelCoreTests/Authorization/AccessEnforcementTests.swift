import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore

/// The engine applies an `Authorizer` to every PUBLISH, SUBSCRIBE, delivery, retained message and will.
@Suite("Access rules in the engine")
struct AccessEnforcementTests {
    static let rules = """
        user alice
        topic readwrite alice/#
        topic read shared/#
        topic deny shared/secret/#
        user bob
        topic write alice/inbox/#
        topic readwrite bob/#
        topic write shared/#
        """

    static func broker(_ text: String = rules) throws -> (Broker, AccessControl) {
        let control = AccessControl(try AccessControlList(parsing: text))
        var configuration = BrokerConfiguration()
        configuration.authorizer = control
        return (Broker(configuration: configuration, now: at(0)), control)
    }

    static func client(_ broker: Broker, _ id: String, user: String?, version: ProtocolVersion = .v5) -> TestClient {
        var client = TestClient(broker, version: version)
        let actions = client.connect(id, username: user)
        #expect(connack(actions)?.reasonCode == .success)
        return client
    }

    static func suback(_ actions: ConnectionActions) -> [ReasonCode] {
        for packet in actions.nonPublishPackets {
            if case .suback(let ack) = packet { return ack.reasonCodes }
        }
        return []
    }

    static func ackReason(_ actions: ConnectionActions) -> ReasonCode? {
        for packet in actions.nonPublishPackets {
            switch packet {
            case .puback(let ack), .pubrec(let ack): return ack.reasonCode
            default: continue
            }
        }
        return nil
    }

    @Test("MQTT 5: a PUBLISH the rules forbid gets PUBACK / PUBREC 0x87 and reaches nobody")
    func publishDeniedV5() throws {
        let (broker, _) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice")
        _ = alice.subscribe("bob/#", qos: .atLeastOnce)
        var bob = Self.client(broker, "b", user: "bob")
        _ = bob.subscribe("bob/#", qos: .atLeastOnce)
        let denied = alice.publish("bob/x", "no", qos: .atLeastOnce, packetIdentifier: 7)
        #expect(Self.ackReason(denied) == .notAuthorized)
        #expect(bob.deliver().publishes.isEmpty)
        let deniedQoS2 = alice.publish("bob/x", "no", qos: .exactlyOnce, packetIdentifier: 8)
        #expect(Self.ackReason(deniedQoS2) == .notAuthorized)
        #expect(bob.deliver().publishes.isEmpty)
        #expect(broker.statistics.publishesDenied == 2)
    }

    @Test("MQTT 3.1.1: a forbidden PUBLISH is acknowledged as usual and dropped; QoS 2 completes")
    func publishDeniedV311() throws {
        let (broker, _) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice", version: .v3_1_1)
        var bob = Self.client(broker, "b", user: "bob", version: .v3_1_1)
        _ = bob.subscribe("bob/#", qos: .atLeastOnce)
        #expect(Self.ackReason(alice.publish("bob/x", "no", qos: .atLeastOnce, packetIdentifier: 1)) == .success)
        #expect(Self.ackReason(alice.publish("bob/y", "no", qos: .exactlyOnce, packetIdentifier: 2)) == .success)
        let completed = alice.send(.pubrel(MQTTPacket.PubAck(packetIdentifier: 2)))
        #expect(completed.nonPublishPackets.contains { if case .pubcomp = $0 { true } else { false } })
        #expect(bob.deliver().publishes.isEmpty)
    }

    @Test("An allowed PUBLISH reaches a subscriber who may read it")
    func publishAllowed() throws {
        let (broker, _) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice")
        _ = alice.subscribe("alice/inbox/#", qos: .atLeastOnce)
        var bob = Self.client(broker, "b", user: "bob")
        let sent = bob.publish("alice/inbox/1", "hello", qos: .atLeastOnce, packetIdentifier: 3)
        #expect(Self.ackReason(sent) == .noMatchingSubscribers || Self.ackReason(sent) == .success)
        #expect(alice.deliver().publishes.map(\.body) == ["hello"])
    }

    @Test("SUBSCRIBE: each forbidden or too wide filter gets 0x87 (3.1.1: 0x80), the others their QoS")
    func subscribeDenied() throws {
        let (broker, _) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice")
        let actions = alice.send(
            .subscribe(
                MQTTPacket.Subscribe(
                    packetIdentifier: 1,
                    subscriptions: [
                        .init(filter: "alice/#", qos: .atLeastOnce),
                        .init(filter: "#", qos: .atLeastOnce),
                        .init(filter: "bob/x", qos: .atLeastOnce),
                        .init(filter: "$share/g/shared/#", qos: .atLeastOnce),
                        .init(filter: "$share/g/bob/#", qos: .atLeastOnce),
                    ]
                )
            )
        )
        #expect(Self.suback(actions) == [.grantedQoS1, .notAuthorized, .notAuthorized, .grantedQoS1, .notAuthorized])
        #expect(broker.statistics.subscriptionsDenied == 3)
        var old = Self.client(broker, "o", user: "alice", version: .v3_1_1)
        let legacy = old.subscribe("#", qos: .atLeastOnce)
        #expect(Self.suback(legacy).map(\.isFailure) == [true])
    }

    @Test("Deliveries are checked one by one: a deny rule inside an allowed subscription holds")
    func deliveryDenied() throws {
        let (broker, _) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice")
        #expect(Self.suback(alice.subscribe("shared/#", qos: .atLeastOnce)) == [.grantedQoS1])
        var bob = Self.client(broker, "b", user: "bob")
        _ = bob.publish("shared/news", "ok", qos: .atLeastOnce, packetIdentifier: 1)
        _ = bob.publish("shared/secret/plan", "hidden", qos: .atLeastOnce, packetIdentifier: 2)
        #expect(alice.deliver().publishes.map(\.body) == ["ok"])
        #expect(broker.statistics.deliveriesDenied == 1)
    }

    @Test("Retained messages the subscriber may not read are not sent")
    func retainedDenied() throws {
        let (broker, _) = try Self.broker()
        var bob = Self.client(broker, "b", user: "bob")
        _ = bob.publish("shared/news", "ok", qos: .atLeastOnce, retain: true, packetIdentifier: 1)
        _ = bob.publish("shared/secret/plan", "hidden", qos: .atLeastOnce, retain: true, packetIdentifier: 2)
        #expect(broker.statistics.retainedMessages == 2)
        var alice = Self.client(broker, "a", user: "alice")
        let actions = alice.subscribe("shared/#", qos: .atLeastOnce)
        #expect(actions.publishes.map(\.body) == ["ok"])
    }

    @Test("A will on a topic the client may not publish to refuses the CONNECT: 0x87 (3.1.1: 0x05)")
    func willDenied() throws {
        let (broker, _) = try Self.broker()
        for version in [ProtocolVersion.v5, .v3_1_1] {
            var alice = TestClient(broker, version: version)
            let will = MQTTPacket.Will(topic: "bob/alarm", payload: payload("gone"), qos: .atMostOnce, retain: false)
            let actions = alice.connect("a-\(version.rawValue)", will: will, username: "alice")
            #expect(connack(actions)?.reasonCode == .notAuthorized)
            #expect(actions.close)
        }
        var allowed = TestClient(broker)
        let will = MQTTPacket.Will(topic: "alice/status", payload: payload("gone"), qos: .atMostOnce, retain: false)
        #expect(connack(allowed.connect("a-ok", will: will, username: "alice"))?.reasonCode == .success)
    }

    @Test("New rules apply to connected clients at once, to queued messages as well")
    func reload() throws {
        let (broker, control) = try Self.broker()
        var alice = Self.client(broker, "a", user: "alice")
        _ = alice.subscribe("alice/#", qos: .atLeastOnce)
        var carol = Self.client(broker, "c", user: "carol")
        #expect(Self.ackReason(carol.publish("alice/x", "1", qos: .atLeastOnce, packetIdentifier: 1)) == .notAuthorized)
        control.replace(with: try AccessControlList(parsing: Self.rules + "\nuser carol\ntopic write alice/#\n"))
        #expect(Self.ackReason(carol.publish("alice/x", "2", qos: .atLeastOnce, packetIdentifier: 2)) != .notAuthorized)
        // Queued for alice under the old rules; the new ones take alice's read access away before delivery.
        control.replace(with: try AccessControlList(parsing: "user carol\ntopic write alice/#\nuser alice\ntopic read other/#\n"))
        #expect(alice.deliver().publishes.isEmpty)
    }

    @Test("Without an authorizer everything is allowed, as before")
    func noRules() {
        let broker = Broker(configuration: BrokerConfiguration(), now: at(0))
        var alice = Self.client(broker, "a", user: "alice")
        #expect(Self.suback(alice.subscribe("#", qos: .atLeastOnce)) == [.grantedQoS1])
        var bob = Self.client(broker, "b", user: nil)
        _ = bob.publish("any/where", "x", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(alice.deliver().publishes.map(\.body) == ["x"])
    }
}
