import MQTTWire
import NIOCore
import Synchronization
import Testing

@testable import PetrelCore

/// Stands in for an HTTP service: answers it has been given are its cache; the tests answer the rest.
private final class ScriptedAuthorizer: ExternalAuthorizer {
    let cached = Mutex<[AuthorizationRequest: Bool]>([:])

    func cachedDecision(_ request: AuthorizationRequest, now: NIODeadline) -> Bool? {
        self.cached.withLock { $0[request] }
    }

    func decide(_ request: AuthorizationRequest) async -> Bool { false }
}

/// A packet whose access check takes I/O waits for the server's answer and is then handled as usual.
@Suite("External authorizers in the engine")
struct ExternalAuthorizerTests {
    private static func broker(acl: String? = nil) throws -> (Broker, ScriptedAuthorizer) {
        let authorizer = ScriptedAuthorizer()
        var configuration = BrokerConfiguration()
        configuration.externalAuthorizer = authorizer
        if let acl { configuration.authorizer = AccessControl(try AccessControlList(parsing: acl)) }
        return (Broker(configuration: configuration, now: at(0)), authorizer)
    }

    private static func client(_ broker: Broker, _ id: String, user: String? = nil, version: ProtocolVersion = .v5) -> TestClient {
        var client = TestClient(broker, version: version)
        #expect(connack(client.connect(id, username: user))?.reasonCode == .success)
        return client
    }

    private static func request(_ id: String, _ user: String?, _ action: AccessAction, _ topic: String) -> AuthorizationRequest {
        AuthorizationRequest(identity: ClientIdentity(clientIdentifier: id, username: user), action: action, topic: topic)
    }

    /// A subscriber to `filter` the authorizer lets in.
    private static func subscriber(_ broker: Broker, _ authorizer: ScriptedAuthorizer, _ filter: String) -> TestClient {
        var client = Self.client(broker, "listener")
        authorizer.cached.withLock { $0[Self.request("listener", nil, .subscribe, filter)] = true }
        #expect(AccessEnforcementTests.suback(client.subscribe(filter, qos: .atLeastOnce)) == [.grantedQoS1])
        return client
    }

    @Test("A PUBLISH without a cached answer waits and asks; allowed, it is acknowledged and routed")
    func publishAskedThenAllowed() throws {
        let (broker, authorizer) = try Self.broker()
        var listener = Self.subscriber(broker, authorizer, "sensors/#")
        var sensor = Self.client(broker, "sensor-1", user: "alice")
        let asked = sensor.publish("sensors/t", "21.5", qos: .atLeastOnce, packetIdentifier: 3)
        #expect(asked.outbound.isEmpty)
        #expect(asked.commit == nil)
        #expect(asked.authorizationRequests == [Self.request("sensor-1", "alice", .publish, "sensors/t")])
        #expect(sensor.machine.isAwaitingDecision)
        let answered = sensor.machine.externalAuthorizationDecided([true], now: at(1))
        #expect(!sensor.machine.isAwaitingDecision)
        #expect(AccessEnforcementTests.ackReason(answered) == .success)
        #expect(answered.wakes(listener))
        #expect(listener.deliver().publishes.map(\.body) == ["21.5"])
    }

    @Test("Denied: MQTT 5 PUBACK / PUBREC 0x87 and no delivery; 3.1.1 acknowledged and dropped")
    func publishDenied() throws {
        let (broker, authorizer) = try Self.broker()
        var listener = Self.subscriber(broker, authorizer, "sensors/#")
        var v5 = Self.client(broker, "v5")
        _ = v5.publish("sensors/a", "x", qos: .exactlyOnce, packetIdentifier: 1)
        #expect(AccessEnforcementTests.ackReason(v5.machine.externalAuthorizationDecided([false], now: at(1))) == .notAuthorized)
        var v311 = Self.client(broker, "v311", version: .v3_1_1)
        _ = v311.publish("sensors/b", "y", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(AccessEnforcementTests.ackReason(v311.machine.externalAuthorizationDecided([false], now: at(1))) == .success)
        #expect(listener.deliver().publishes.isEmpty)
        #expect(broker.statistics.publishesDenied == 2)
    }

    @Test("A cached answer decides at once, without waiting")
    func cachedAnswer() throws {
        let (broker, authorizer) = try Self.broker()
        var sensor = Self.client(broker, "s")
        authorizer.cached.withLock {
            $0[Self.request("s", nil, .publish, "open")] = true
            $0[Self.request("s", nil, .publish, "closed")] = false
        }
        let allowed = sensor.publish("open", "x", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(allowed.authorizationRequests == nil)
        #expect(AccessEnforcementTests.ackReason(allowed) == .noMatchingSubscribers)
        let denied = sensor.publish("closed", "x", qos: .atLeastOnce, packetIdentifier: 2)
        #expect(denied.authorizationRequests == nil)
        #expect(AccessEnforcementTests.ackReason(denied) == .notAuthorized)
    }

    @Test("A SUBSCRIBE asks about each filter it has no answer for, once, a shared one by the filter it shares")
    func subscribeAsksPerFilter() throws {
        let (broker, authorizer) = try Self.broker()
        var client = Self.client(broker, "c", user: "u")
        authorizer.cached.withLock { $0[Self.request("c", "u", .subscribe, "known/#")] = true }
        let filters = ["a/+", "$share/group/b/#", "known/#", "bad/#/x", "a/+"]
        let subscribe = MQTTPacket.Subscribe(
            packetIdentifier: 9,
            subscriptions: filters.map { MQTTPacket.TopicSubscription(filter: $0, options: .init(qos: .atLeastOnce)) }
        )
        let asked = client.send(.subscribe(subscribe))
        #expect(asked.outbound.isEmpty)
        #expect(asked.authorizationRequests == [Self.request("c", "u", .subscribe, "a/+"), Self.request("c", "u", .subscribe, "b/#")])
        let answered = client.machine.externalAuthorizationDecided([false, true], now: at(1))
        #expect(AccessEnforcementTests.suback(answered) == [.notAuthorized, .grantedQoS1, .grantedQoS1, .topicFilterInvalid, .notAuthorized])
        #expect(broker.statistics.subscriptionsDenied == 2)
    }

    @Test("The ACL file decides first: what it denies is not asked about")
    func aclFileFirst() throws {
        let (broker, _) = try Self.broker(acl: "topic readwrite public/#\n")
        var client = Self.client(broker, "c")
        let denied = client.publish("private/x", "x", qos: .atLeastOnce, packetIdentifier: 1)
        #expect(denied.authorizationRequests == nil)
        #expect(AccessEnforcementTests.ackReason(denied) == .notAuthorized)
        #expect(client.publish("public/x", "x", qos: .atLeastOnce, packetIdentifier: 2).authorizationRequests?.count == 1)
    }

    @Test("A will topic is asked about at CONNECT: denied, CONNACK 0x87; allowed, connected")
    func willTopic() throws {
        let (broker, _) = try Self.broker()
        let will = MQTTPacket.Will(topic: "status/c", payload: payload("offline"), qos: .atLeastOnce, retain: false)
        var refused = TestClient(broker)
        let asked = refused.connect("c", will: will, username: "u")
        #expect(asked.outbound.isEmpty)
        #expect(asked.authorizationRequests == [Self.request("c", "u", .publish, "status/c")])
        let no = refused.machine.externalAuthorizationDecided([false], now: at(1))
        #expect(connack(no)?.reasonCode == .notAuthorized)
        #expect(no.close)
        var accepted = TestClient(broker)
        _ = accepted.connect("c", will: will, username: "u")
        #expect(connack(accepted.machine.externalAuthorizationDecided([true], now: at(1)))?.reasonCode == .success)
        #expect(accepted.machine.isConnected)
    }

    @Test("A will of a client with an assigned identifier is asked about once")
    func willWithAssignedIdentifier() throws {
        let (broker, _) = try Self.broker()
        let will = MQTTPacket.Will(topic: "status/x", payload: payload("offline"), qos: .atMostOnce, retain: false)
        var client = TestClient(broker)
        #expect(client.connect("", will: will).authorizationRequests?.count == 1)
        let answered = client.machine.externalAuthorizationDecided([true], now: at(1))
        #expect(connack(answered)?.reasonCode == .success)
        #expect(answered.authorizationRequests == nil)
    }

    @Test("A PUBLISH by Topic Alias is asked about by the topic the alias stands for")
    func topicAlias() throws {
        let (broker, authorizer) = try Self.broker()
        var client = Self.client(broker, "c")
        var properties = MQTTProperties()
        properties.topicAlias = 1
        authorizer.cached.withLock { $0[Self.request("c", nil, .publish, "long/topic/name")] = true }
        _ = client.publish("long/topic/name", "first", qos: .atLeastOnce, packetIdentifier: 1, properties: properties)
        authorizer.cached.withLock { $0 = [:] }
        let asked = client.publish("", "second", qos: .atLeastOnce, packetIdentifier: 2, properties: properties)
        #expect(asked.authorizationRequests == [Self.request("c", nil, .publish, "long/topic/name")])
        #expect(AccessEnforcementTests.ackReason(client.machine.externalAuthorizationDecided([true], now: at(1))) == .noMatchingSubscribers)
    }

    @Test("A connection that ends while it waits ignores the late answer")
    func lateAnswer() throws {
        let (broker, authorizer) = try Self.broker()
        var listener = Self.subscriber(broker, authorizer, "t")
        var client = Self.client(broker, "c")
        _ = client.publish("t", "x", qos: .atLeastOnce, packetIdentifier: 1)
        _ = client.machine.connectionClosed(now: at(1))
        #expect(!client.machine.isAwaitingDecision)
        #expect(client.machine.externalAuthorizationDecided([true], now: at(2)).outbound.isEmpty)
        #expect(listener.deliver().publishes.isEmpty)
    }
}

@Suite("Decision cache")
struct DecisionCacheTests {
    @Test("An answer is kept for its time to live")
    func expires() {
        let cache = DecisionCache<String, Bool>(timeToLive: .seconds(30), capacity: 10)
        cache.store(true, for: "a", now: at(0))
        #expect(cache.decision(for: "a", now: at(29)) == true)
        #expect(cache.decision(for: "a", now: at(30)) == nil)
        #expect(cache.count == 0)
    }

    @Test("Past its capacity the oldest answer goes first; storing again makes an answer new")
    func bounded() {
        let cache = DecisionCache<Int, Bool>(timeToLive: .seconds(60), capacity: 3)
        for key in 1...3 { cache.store(true, for: key, now: at(0)) }
        cache.store(false, for: 1, now: at(1))
        cache.store(true, for: 4, now: at(2))
        #expect(cache.decision(for: 2, now: at(3)) == nil)
        #expect(cache.decision(for: 1, now: at(3)) == false)
        #expect(cache.decision(for: 3, now: at(3)) == true)
        #expect(cache.decision(for: 4, now: at(3)) == true)
        for key in 5...10_000 { cache.store(true, for: key, now: at(4)) }
        #expect(cache.count == 3)
    }

    @Test("A time to live of zero keeps nothing")
    func off() {
        let cache = DecisionCache<String, Bool>(timeToLive: .zero, capacity: 10)
        cache.store(true, for: "a", now: at(0))
        #expect(cache.decision(for: "a", now: at(0)) == nil)
    }
}
