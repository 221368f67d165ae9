import MQTTWire
import NIOCore
import Testing

struct RoundTripCase: Sendable, CustomTestStringConvertible {
    var version: ProtocolVersion
    var packet: MQTTPacket
    var testDescription: String { "\(self.packet.type) (\(self.version))" }
}

extension RoundTripCase {
    /// Every packet type with every field set that the version can carry, MQTT 5 with all the properties each
    /// packet allows.
    static let all: [RoundTripCase] = ProtocolVersion.allCases.flatMap { version in
        samplePackets(version).map { RoundTripCase(version: version, packet: $0) }
    }

    static func samplePackets(_ version: ProtocolVersion) -> [MQTTPacket] {
        let v5 = version.isV5
        func props(_ build: (inout MQTTProperties) -> Void) -> MQTTProperties {
            var properties = MQTTProperties()
            if v5 { build(&properties) }
            return properties
        }
        let users = [UserProperty(name: "a", value: "1"), UserProperty(name: "a", value: "2"),
            UserProperty(name: "ü", value: "€")]
        let reasonString = "because"
        var packets: [MQTTPacket] = [
            .connect(
                .init(
                    protocolVersion: version,
                    clientIdentifier: "client-1",
                    cleanStart: false,
                    keepAlive: 0xFFFF,
                    will: .init(
                        topic: "will/topic",
                        payload: payload([0, 1, 2, 0xFF]),
                        qos: .exactlyOnce,
                        retain: true,
                        properties: props {
                            $0.willDelayInterval = 30
                            $0.payloadFormatIndicator = 1
                            $0.messageExpiryInterval = 0xFFFF_FFFF
                            $0.contentType = "text/plain"
                            $0.responseTopic = "reply/here"
                            $0.correlationData = payload([9, 8, 7])
                            $0.userProperties = users
                        }
                    ),
                    username: "user",
                    password: payload(ascii("secret")),
                    properties: props {
                        $0.sessionExpiryInterval = 3600
                        $0.receiveMaximum = 20
                        $0.maximumPacketSize = 1_048_576
                        $0.topicAliasMaximum = 10
                        $0.requestResponseInformation = 1
                        $0.requestProblemInformation = 0
                        $0.userProperties = users
                        $0.authenticationMethod = "SCRAM-SHA-1"
                        $0.authenticationData = payload([1, 2, 3])
                    }
                )
            ),
            .connect(.init(protocolVersion: version, clientIdentifier: "")),
            .connack(
                .init(
                    sessionPresent: version != .v3_1,
                    reasonCode: .success,
                    properties: props {
                        $0.sessionExpiryInterval = 60
                        $0.receiveMaximum = 100
                        $0.maximumQoS = 1
                        $0.retainAvailable = 0
                        $0.maximumPacketSize = 65_536
                        $0.assignedClientIdentifier = "auto-1"
                        $0.topicAliasMaximum = 16
                        $0.reasonString = reasonString
                        $0.userProperties = users
                        $0.wildcardSubscriptionAvailable = 1
                        $0.subscriptionIdentifierAvailable = 0
                        $0.sharedSubscriptionAvailable = 1
                        $0.serverKeepAlive = 30
                        $0.responseInformation = "resp/"
                        $0.serverReference = "other:1883"
                        $0.authenticationMethod = "SCRAM-SHA-1"
                        $0.authenticationData = payload([4, 5])
                    }
                )
            ),
            .connack(.init(reasonCode: .badUserNameOrPassword)),
            .publish(
                .init(
                    topic: "sensors/ü/temp",
                    payload: payload(Array(repeating: 0xAB, count: 300)),
                    qos: .atLeastOnce,
                    retain: true,
                    dup: true,
                    packetIdentifier: 42,
                    properties: props {
                        $0.payloadFormatIndicator = 0
                        $0.messageExpiryInterval = 120
                        $0.topicAlias = 2
                        $0.responseTopic = "reply"
                        $0.correlationData = payload([1])
                        $0.userProperties = users
                        $0.subscriptionIdentifiers = [1, 268_435_455, 1]
                        $0.contentType = "application/json"
                    }
                )
            ),
            .publish(.init(topic: "t", payload: payload([]))),
            .publish(.init(topic: "t", payload: payload(ascii("x")), qos: .exactlyOnce, packetIdentifier: 1)),
        ]
        let ackReason: ReasonCode = v5 ? .implementationSpecificError : .success
        let ackProperties = props {
            $0.reasonString = reasonString
            $0.userProperties = users
        }
        packets += [
            .puback(.init(packetIdentifier: 1, reasonCode: ackReason, properties: ackProperties)),
            .pubrec(.init(packetIdentifier: 2, reasonCode: ackReason, properties: ackProperties)),
            .pubrel(.init(packetIdentifier: 3, reasonCode: v5 ? .packetIdentifierNotFound : .success)),
            .pubcomp(.init(packetIdentifier: 0xFFFF, reasonCode: .success, properties: ackProperties)),
            .subscribe(
                .init(
                    packetIdentifier: 7,
                    subscriptions: [
                        .init(filter: "a/+/c", qos: .atMostOnce),
                        .init(
                            filter: "$share/g/#",
                            options: .init(
                                qos: .exactlyOnce,
                                noLocal: v5,
                                retainAsPublished: v5,
                                retainHandling: v5 ? .sendOnNewSubscribe : .sendOnSubscribe
                            )
                        ),
                    ],
                    properties: props {
                        $0.subscriptionIdentifiers = [99]
                        $0.userProperties = users
                    }
                )
            ),
            .suback(
                .init(
                    packetIdentifier: 7,
                    reasonCodes: [.grantedQoS0, .grantedQoS1, .grantedQoS2, v5 ? .quotaExceeded : .unspecifiedError],
                    properties: ackProperties
                )
            ),
            .unsubscribe(
                .init(packetIdentifier: 8, filters: ["a/b", "#"], properties: props { $0.userProperties = users })
            ),
            .unsuback(
                .init(
                    packetIdentifier: 8,
                    reasonCodes: v5 ? [.success, .noSubscriptionExisted] : [],
                    properties: ackProperties
                )
            ),
            .pingreq,
            .pingresp,
            .disconnect(
                .init(
                    reasonCode: v5 ? .serverShuttingDown : .normalDisconnection,
                    properties: props {
                        $0.sessionExpiryInterval = 0
                        $0.reasonString = reasonString
                        $0.userProperties = users
                        $0.serverReference = "other:1883"
                    }
                )
            ),
        ]
        if v5 {
            packets.append(
                .auth(
                    .init(
                        reasonCode: .reAuthenticate,
                        properties: props {
                            $0.authenticationMethod = "SCRAM-SHA-1"
                            $0.authenticationData = payload([1, 2, 3])
                            $0.reasonString = reasonString
                            $0.userProperties = users
                        }
                    )
                )
            )
        }
        return packets
    }
}

@Suite("Encode then decode")
struct RoundTripTests {
    @Test("decode(encode(packet)) == packet", arguments: RoundTripCase.all)
    func roundTrip(sample: RoundTripCase) throws {
        let bytes = try encode(sample.packet, sample.version)
        #expect(try decode(bytes, sample.version) == sample.packet)
    }

    @Test("a server-mode parser decodes a whole session of each version", arguments: ProtocolVersion.allCases)
    func serverSession(version: ProtocolVersion) throws {
        let packets = RoundTripCase.samplePackets(version).filter {
            if case .connect = $0 { return false }
            return true
        }
        let connect = MQTTPacket.connect(.init(protocolVersion: version, clientIdentifier: "c"))
        var bytes = try encode(connect, version)
        for packet in packets { bytes += try encode(packet, version) }
        #expect(try decodeAsServer(bytes) == [connect] + packets)
    }

    @Test("the PUBLISH header and a shared payload make the same bytes as the whole packet",
        arguments: ProtocolVersion.allCases)
    func sharedPublishPayload(version: ProtocolVersion) throws {
        let body = payload(Array(repeating: 0x5A, count: 200))
        var properties = MQTTProperties()
        if version.isV5 { properties.subscriptionIdentifiers = [3] }
        let publish = MQTTPacket.Publish(
            topic: "x/y",
            payload: body,
            qos: .atLeastOnce,
            packetIdentifier: 9,
            properties: properties
        )
        var header = ByteBuffer()
        let written = try header.writeMQTTPublishHeader(publish, payloadLength: body.readableBytes, version: version)
        #expect(written == header.readableBytes)
        header.writeImmutableBuffer(body)
        #expect(Array(header.readableBytesView) == (try encode(.publish(publish), version)))
        #expect(publish.remainingLength(version: version) + 3 == header.readableBytes)
    }
}
