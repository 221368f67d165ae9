import NIOCore
import Testing

@testable import PetrelCore

@Suite("Will messages")
struct WillTests {
    private func will(_ body: String = "gone", qos: QoS = .atLeastOnce, retain: Bool = false, delay: UInt32? = nil) -> MQTTPacket.Will {
        var properties = MQTTProperties()
        properties.willDelayInterval = delay
        return MQTTPacket.Will(topic: "will", payload: payload(body), qos: qos, retain: retain, properties: properties)
    }

    private func watcher(_ broker: Broker) -> TestClient {
        var watcher = TestClient(broker)
        watcher.connect("watcher")
        watcher.subscribe("will", qos: .exactlyOnce)
        return watcher
    }

    @Test("[MQTT-3.1.2-8] will published when the connection is lost, with its QoS")
    func abnormalEnd() throws {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will())
        let actions = client.machine.connectionClosed(now: at(1))
        #expect(actions.wakes(watcher))
        let delivered = try #require(watcher.deliver().publishes.first)
        #expect(delivered.body == "gone")
        #expect(delivered.qos == .atLeastOnce)
    }

    @Test("an accepted will keeps its payload in storage of its own, not the buffer the CONNECT was read into")
    func willPayloadCompacted() throws {
        let broker = Broker(now: at(0))
        var read = ByteBuffer(repeating: 0, count: 4000)
        read.writeString("gone")
        let slice = try #require(read.getSlice(at: 4000, length: 4))
        var client = TestClient(broker)
        client.connect("a", will: MQTTPacket.Will(topic: "will", payload: slice))
        let session = try #require(broker.registry.withLock { $0.sessions["a"] })
        let stored = try #require(session.state.withLock { $0.will })
        #expect(stored.payload == ByteBuffer(string: "gone"))
        #expect(stored.payload.storageCapacity < 4000)
    }

    @Test("[MQTT-3.1.2-10] no will after a normal DISCONNECT")
    func normalDisconnect() {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will())
        let actions = client.send(.disconnect(.init()))
        #expect(actions.close)
        #expect(!actions.wakes(watcher))
        #expect(client.machine.connectionClosed(now: at(1)).wake.isEmpty)
        #expect(watcher.deliver().publishes.isEmpty)
    }

    @Test("3.1.1: no will after DISCONNECT")
    func normalDisconnectV311() {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var client = TestClient(broker, version: .v3_1_1)
        client.connect("a", will: self.will())
        client.send(.disconnect(.init()))
        _ = client.machine.connectionClosed(now: at(1))
        #expect(watcher.deliver().publishes.isEmpty)
    }

    @Test("v5 DISCONNECT 0x04 publishes the will")
    func disconnectWithWill() {
        let broker = Broker(now: at(0))
        let watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will())
        #expect(client.send(.disconnect(.init(reasonCode: .disconnectWithWillMessage))).wakes(watcher))
    }

    @Test("will published on keep-alive timeout and on protocol error")
    func timeoutAndProtocolError() {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var sleepy = TestClient(broker)
        sleepy.connect("a", keepAlive: 1, will: self.will("a"))
        #expect(sleepy.machine.tick(now: at(2)).wakes(watcher))
        #expect(watcher.deliver().publishes.map(\.body) == ["a"])
        var broken = TestClient(broker)
        broken.connect("b", will: self.will("b"))
        #expect(broken.send(.pingresp).wakes(watcher))
    }

    @Test("a retained will is stored as retained")
    func retainedWill() {
        let broker = Broker(now: at(0))
        var client = TestClient(broker)
        client.connect("a", will: self.will(retain: true))
        _ = client.machine.connectionClosed(now: at(1))
        var late = TestClient(broker)
        late.connect("late")
        let actions = late.subscribe("will")
        #expect(actions.publishes.map(\.body) == ["gone"])
        #expect(actions.publishes.first?.retain == true)
    }

    @Test("[MQTT-3.1.3-9] v5 Will Delay Interval: published by tick after the delay; cancelled by a reconnect")
    func willDelay() {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)
        var persistent = MQTTProperties()
        persistent.sessionExpiryInterval = 100
        var client = TestClient(broker)
        client.connect("a", cleanStart: false, will: self.will(delay: 5), properties: persistent)
        #expect(!client.machine.connectionClosed(now: at(1)).wakes(watcher))
        #expect(!broker.tick(now: at(5)).wake.contains { $0 === watcher.waker })
        #expect(broker.tick(now: at(6)).wake.contains { $0 === watcher.waker })
        #expect(watcher.deliver().publishes.map(\.body) == ["gone"])

        var again = TestClient(broker)
        again.connect("a", cleanStart: false, will: self.will("second", delay: 5), properties: persistent, at: at(10))
        _ = again.machine.connectionClosed(now: at(11))
        var back = TestClient(broker)
        back.connect("a", cleanStart: false, properties: persistent, at: at(12))
        #expect(broker.tick(now: at(20)).wake.isEmpty)
        #expect(watcher.deliver().publishes.isEmpty)
    }

    @Test("v5 will delay longer than the session expiry: published when the session ends")
    func willDelayBeyondSession() {
        let broker = Broker(now: at(0))
        let watcher = self.watcher(broker)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 3
        var client = TestClient(broker)
        client.connect("a", cleanStart: false, will: self.will(delay: 60), properties: properties)
        _ = client.machine.connectionClosed(now: at(1))
        #expect(broker.tick(now: at(4)).wake.contains { $0 === watcher.waker })
        #expect(broker.statistics.sessions == 1)  // only the watcher
    }

    @Test("v5 will delay with session expiry 0: published at once")
    func willDelayNoSession() {
        let broker = Broker(now: at(0))
        let watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will(delay: 60))
        #expect(client.machine.connectionClosed(now: at(1)).wakes(watcher))
    }

    @Test("takeover: 3.1.1 will published; v5 continued session with will delay: not published; v5 clean start: published")
    func willOnTakeover() {
        let broker = Broker(now: at(0))
        var watcher = self.watcher(broker)

        var oldV3 = TestClient(broker, version: .v3_1_1)
        oldV3.connect("v3", will: self.will("v3"))
        var newV3 = TestClient(broker, version: .v3_1_1)
        newV3.connect("v3")
        #expect(oldV3.deliver().wakes(watcher))
        #expect(watcher.deliver().publishes.map(\.body) == ["v3"])

        var persistent = MQTTProperties()
        persistent.sessionExpiryInterval = 100
        var oldV5 = TestClient(broker)
        oldV5.connect("v5", cleanStart: false, will: self.will("kept", delay: 10), properties: persistent)
        var continuing = TestClient(broker)
        continuing.connect("v5", cleanStart: false, properties: persistent)
        let continued = oldV5.deliver()
        #expect(continued.close)
        #expect(!continued.wakes(watcher))

        var oldClean = TestClient(broker)
        oldClean.connect("c", will: self.will("clean", delay: 10))
        var replacing = TestClient(broker)
        replacing.connect("c", cleanStart: true)
        #expect(oldClean.deliver().wakes(watcher))
        #expect(watcher.deliver().publishes.map(\.body) == ["clean"])
    }

    @Test("server shutdown publishes the will")
    func shutdownWill() {
        let broker = Broker(now: at(0))
        let watcher = self.watcher(broker)
        var client = TestClient(broker)
        client.connect("a", will: self.will())
        #expect(client.machine.shutdown(now: at(1)).wakes(watcher))
    }
}
