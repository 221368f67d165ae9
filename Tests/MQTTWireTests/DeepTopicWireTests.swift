import MQTTWire
import NIOCore
import PetrelTestSupport
import Testing

/// The decoder's and the topic rules' walks over a 65,535-byte, 32,768-level topic or filter are loops: on a small
/// stack (`onSmallStack`) a recursion per level would crash the test process.
@Suite("Deep topics on the wire")
struct DeepTopicWireTests {
    @Test("Topic rules hold up at 32,768 levels")
    func topicRules() {
        onSmallStack {
            #expect(MQTTTopic.isValidTopicName(DeepTopics.topic))
            #expect(MQTTTopic.isValidTopicFilter(DeepTopics.wildcardFilter))
            #expect(!MQTTTopic.isValidTopicName(DeepTopics.wildcardFilter))
            #expect(MQTTTopic.levelCount(DeepTopics.topic) == DeepTopics.levels)
            #expect(MQTTTopic.levelCount(DeepTopics.wildcardFilter) == DeepTopics.levels)
            let shared = "$share/g/" + DeepTopics.wildcardFilter.dropFirst(9)
            #expect(MQTTTopic.parseSharedSubscription(String(shared)) != .invalid)
        }
    }

    @Test("CONNECT with a deep will topic, SUBSCRIBE, UNSUBSCRIBE and PUBLISH with 32,768 levels decode", arguments: ProtocolVersion.allCases)
    func decodeDeepPackets(version: ProtocolVersion) {
        onSmallStack {
            let packets: [MQTTPacket] = [
                .connect(
                    .init(
                        protocolVersion: version,
                        clientIdentifier: "deep",
                        will: .init(topic: DeepTopics.topic, payload: ByteBuffer(string: "w"), qos: .atMostOnce, retain: false)
                    )
                ),
                .subscribe(.init(packetIdentifier: 1, subscriptions: [.init(filter: DeepTopics.wildcardFilter, qos: .atLeastOnce)])),
                .unsubscribe(.init(packetIdentifier: 2, filters: [DeepTopics.exactThenPlus])),
                .publish(.init(topic: DeepTopics.topic, payload: ByteBuffer(string: "p"), qos: .atLeastOnce, packetIdentifier: 3)),
            ]
            var stream = ByteBuffer()
            for packet in packets {
                #expect(throws: Never.self) { try stream.writeMQTTPacket(packet, version: version) }
            }
            var parser = MQTTPacketParser()
            var decoded: [MQTTPacket] = []
            #expect(throws: Never.self) {
                while let packet = try parser.parse(&stream) { decoded.append(packet) }
            }
            #expect(decoded == packets)
        }
    }
}
