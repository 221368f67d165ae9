import MQTTWire
import NIOCore
import Testing

/// One packet and the bytes the spec says it is, written out by hand from the packet layouts of MQTT 3.1,
/// 3.1.1 and 5.0. Shared by the encoder and decoder tests so both directions agree with the spec, not just
/// with each other.
struct GoldenVector: Sendable, CustomTestStringConvertible {
    var name: String
    var version: ProtocolVersion
    var packet: MQTTPacket
    var bytes: [UInt8]

    var testDescription: String { "\(self.name) (\(self.version))" }

    init(_ name: String, _ version: ProtocolVersion, _ packet: MQTTPacket, _ bytes: [UInt8]) {
        self.name = name
        self.version = version
        self.packet = packet
        self.bytes = bytes
    }
}

extension GoldenVector {
    static let all: [GoldenVector] = connect + connack + publish + acks + subscribe + other

    static let connect: [GoldenVector] = [
        GoldenVector(
            "CONNECT minimal",
            .v3_1_1,
            .connect(.init(protocolVersion: .v3_1_1, clientIdentifier: "c", cleanStart: true, keepAlive: 60)),
            [0x10, 0x0D, 0x00, 0x04] + ascii("MQTT") + [0x04, 0x02, 0x00, 0x3C, 0x00, 0x01] + ascii("c")
        ),
        GoldenVector(
            "CONNECT MQIsdp",
            .v3_1,
            .connect(.init(protocolVersion: .v3_1, clientIdentifier: "c", cleanStart: true, keepAlive: 60)),
            [0x10, 0x0F, 0x00, 0x06] + ascii("MQIsdp") + [0x03, 0x02, 0x00, 0x3C, 0x00, 0x01] + ascii("c")
        ),
        GoldenVector(
            "CONNECT will, user name, password",
            .v3_1_1,
            .connect(
                .init(
                    protocolVersion: .v3_1_1,
                    clientIdentifier: "c",
                    cleanStart: false,
                    keepAlive: 0,
                    will: .init(topic: "w", payload: payload([0x01]), qos: .exactlyOnce, retain: false),
                    username: "u",
                    password: payload([0x70])
                )
            ),
            // Flags: user name 0x80, password 0x40, will QoS 2 0x10, will 0x04.
            [0x10, 0x19, 0x00, 0x04] + ascii("MQTT") + [0x04, 0xD4, 0x00, 0x00]
                + [0x00, 0x01] + ascii("c") + [0x00, 0x01] + ascii("w") + [0x00, 0x01, 0x01]
                + [0x00, 0x01] + ascii("u") + [0x00, 0x01, 0x70]
        ),
        GoldenVector(
            "CONNECT with properties and will properties",
            .v5,
            .connect(
                .init(
                    protocolVersion: .v5,
                    clientIdentifier: "c",
                    cleanStart: true,
                    keepAlive: 10,
                    will: .init(
                        topic: "w",
                        payload: payload([0x01]),
                        qos: .atLeastOnce,
                        retain: true,
                        properties: { var p = MQTTProperties(); p.willDelayInterval = 5; return p }()
                    ),
                    username: "u",
                    password: payload([0x70]),
                    properties: { var p = MQTTProperties(); p.sessionExpiryInterval = 0x78; return p }()
                )
            ),
            // Flags: user name 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04, clean 0x02.
            [0x10, 0x25, 0x00, 0x04] + ascii("MQTT") + [0x05, 0xEE, 0x00, 0x0A]
                + [0x05, 0x11, 0x00, 0x00, 0x00, 0x78]
                + [0x00, 0x01] + ascii("c")
                + [0x05, 0x18, 0x00, 0x00, 0x00, 0x05]
                + [0x00, 0x01] + ascii("w") + [0x00, 0x01, 0x01]
                + [0x00, 0x01] + ascii("u") + [0x00, 0x01, 0x70]
        ),
        GoldenVector(
            "CONNECT password without user name",
            .v5,
            .connect(.init(protocolVersion: .v5, clientIdentifier: "", keepAlive: 0, password: payload([0x70]))),
            [0x10, 0x10, 0x00, 0x04] + ascii("MQTT") + [0x05, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x70]
        ),
    ]

    static let connack: [GoldenVector] = [
        GoldenVector(
            "CONNACK session present",
            .v3_1_1,
            .connack(.init(sessionPresent: true)),
            [0x20, 0x02, 0x01, 0x00]
        ),
        GoldenVector(
            "CONNACK not authorized",
            .v3_1_1,
            .connack(.init(reasonCode: .notAuthorized)),
            [0x20, 0x02, 0x00, 0x05]
        ),
        GoldenVector(
            "CONNACK unacceptable protocol version",
            .v3_1,
            .connack(.init(reasonCode: .unsupportedProtocolVersion)),
            [0x20, 0x02, 0x00, 0x01]
        ),
        GoldenVector(
            "CONNACK with properties",
            .v5,
            .connack(
                .init(
                    sessionPresent: false,
                    reasonCode: .success,
                    properties: { var p = MQTTProperties(); p.receiveMaximum = 10; p.topicAliasMaximum = 5; return p }()
                )
            ),
            [0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x0A, 0x22, 0x00, 0x05]
        ),
        GoldenVector(
            "CONNACK unsupported protocol version",
            .v5,
            .connack(.init(reasonCode: .unsupportedProtocolVersion)),
            [0x20, 0x03, 0x00, 0x84, 0x00]
        ),
    ]

    static let publish: [GoldenVector] = [
        GoldenVector(
            "PUBLISH QoS 0",
            .v3_1_1,
            .publish(.init(topic: "a/b", payload: payload(ascii("hi")))),
            [0x30, 0x07, 0x00, 0x03] + ascii("a/b") + ascii("hi")
        ),
        GoldenVector(
            "PUBLISH QoS 1 retain dup",
            .v3_1_1,
            .publish(
                .init(topic: "a/b", payload: payload(ascii("hi")), qos: .atLeastOnce, retain: true, dup: true,
                    packetIdentifier: 10)
            ),
            [0x3B, 0x09, 0x00, 0x03] + ascii("a/b") + [0x00, 0x0A] + ascii("hi")
        ),
        GoldenVector(
            "PUBLISH QoS 2",
            .v3_1,
            .publish(.init(topic: "t", payload: payload([]), qos: .exactlyOnce, packetIdentifier: 0xFFFF)),
            [0x34, 0x05, 0x00, 0x01] + ascii("t") + [0xFF, 0xFF]
        ),
        GoldenVector(
            "PUBLISH QoS 2 topic alias",
            .v5,
            .publish(
                .init(topic: "t", payload: payload(ascii("x")), qos: .exactlyOnce, packetIdentifier: 1,
                    properties: { var p = MQTTProperties(); p.topicAlias = 1; return p }())
            ),
            [0x34, 0x0A, 0x00, 0x01] + ascii("t") + [0x00, 0x01, 0x03, 0x23, 0x00, 0x01] + ascii("x")
        ),
        GoldenVector(
            "PUBLISH QoS 0 no properties",
            .v5,
            .publish(.init(topic: "t", payload: payload(ascii("x")))),
            [0x30, 0x05, 0x00, 0x01] + ascii("t") + [0x00] + ascii("x")
        ),
        GoldenVector(
            "PUBLISH empty topic with alias",
            .v5,
            .publish(
                .init(topic: "", payload: payload([]),
                    properties: { var p = MQTTProperties(); p.topicAlias = 3; return p }())
            ),
            [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03]
        ),
    ]

    static let acks: [GoldenVector] = [
        GoldenVector("PUBACK", .v3_1_1, .puback(.init(packetIdentifier: 7)), [0x40, 0x02, 0x00, 0x07]),
        GoldenVector("PUBACK short form", .v5, .puback(.init(packetIdentifier: 7)), [0x40, 0x02, 0x00, 0x07]),
        GoldenVector(
            "PUBACK reason code only",
            .v5,
            .puback(.init(packetIdentifier: 7, reasonCode: .noMatchingSubscribers)),
            [0x40, 0x03, 0x00, 0x07, 0x10]
        ),
        GoldenVector(
            "PUBACK reason string",
            .v5,
            .puback(
                .init(packetIdentifier: 7, reasonCode: .notAuthorized,
                    properties: { var p = MQTTProperties(); p.reasonString = "no"; return p }())
            ),
            [0x40, 0x09, 0x00, 0x07, 0x87, 0x05, 0x1F, 0x00, 0x02] + ascii("no")
        ),
        GoldenVector("PUBREC", .v3_1_1, .pubrec(.init(packetIdentifier: 8)), [0x50, 0x02, 0x00, 0x08]),
        GoldenVector("PUBREL", .v3_1_1, .pubrel(.init(packetIdentifier: 8)), [0x62, 0x02, 0x00, 0x08]),
        GoldenVector("PUBREL", .v3_1, .pubrel(.init(packetIdentifier: 8)), [0x62, 0x02, 0x00, 0x08]),
        GoldenVector(
            "PUBREL packet identifier not found",
            .v5,
            .pubrel(.init(packetIdentifier: 8, reasonCode: .packetIdentifierNotFound)),
            [0x62, 0x03, 0x00, 0x08, 0x92]
        ),
        GoldenVector("PUBCOMP", .v3_1_1, .pubcomp(.init(packetIdentifier: 8)), [0x70, 0x02, 0x00, 0x08]),
        GoldenVector("PUBCOMP", .v5, .pubcomp(.init(packetIdentifier: 8)), [0x70, 0x02, 0x00, 0x08]),
        GoldenVector("PUBREC", .v5, .pubrec(.init(packetIdentifier: 8)), [0x50, 0x02, 0x00, 0x08]),
    ]

    static let subscribe: [GoldenVector] = [
        GoldenVector(
            "SUBSCRIBE two filters",
            .v3_1_1,
            .subscribe(
                .init(packetIdentifier: 1, subscriptions: [.init(filter: "a/#", qos: .atLeastOnce),
                    .init(filter: "b", qos: .exactlyOnce)])
            ),
            [0x82, 0x0C, 0x00, 0x01, 0x00, 0x03] + ascii("a/#") + [0x01, 0x00, 0x01] + ascii("b") + [0x02]
        ),
        GoldenVector(
            "SUBSCRIBE options and subscription identifier",
            .v5,
            .subscribe(
                .init(
                    packetIdentifier: 2,
                    subscriptions: [
                        .init(filter: "a", options: .init(qos: .atLeastOnce, noLocal: true, retainAsPublished: true,
                            retainHandling: .doNotSend))
                    ],
                    properties: { var p = MQTTProperties(); p.subscriptionIdentifiers = [5]; return p }()
                )
            ),
            [0x82, 0x09, 0x00, 0x02, 0x02, 0x0B, 0x05, 0x00, 0x01] + ascii("a") + [0x2D]
        ),
        GoldenVector(
            "SUBACK",
            .v3_1_1,
            .suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS1, .unspecifiedError])),
            [0x90, 0x04, 0x00, 0x01, 0x01, 0x80]
        ),
        GoldenVector(
            "SUBACK",
            .v5,
            .suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS0, .topicFilterInvalid])),
            [0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x8F]
        ),
        GoldenVector(
            "UNSUBSCRIBE",
            .v3_1_1,
            .unsubscribe(.init(packetIdentifier: 3, filters: ["a/b"])),
            [0xA2, 0x07, 0x00, 0x03, 0x00, 0x03] + ascii("a/b")
        ),
        GoldenVector(
            "UNSUBSCRIBE user property",
            .v5,
            .unsubscribe(
                .init(packetIdentifier: 3, filters: ["a"],
                    properties: {
                        var p = MQTTProperties()
                        p.userProperties = [.init(name: "k", value: "v")]
                        return p
                    }())
            ),
            [0xA2, 0x0D, 0x00, 0x03, 0x07, 0x26, 0x00, 0x01] + ascii("k") + [0x00, 0x01] + ascii("v")
                + [0x00, 0x01] + ascii("a")
        ),
        GoldenVector("UNSUBACK", .v3_1_1, .unsuback(.init(packetIdentifier: 3)), [0xB0, 0x02, 0x00, 0x03]),
        GoldenVector(
            "UNSUBACK",
            .v5,
            .unsuback(.init(packetIdentifier: 3, reasonCodes: [.success, .noSubscriptionExisted])),
            [0xB0, 0x05, 0x00, 0x03, 0x00, 0x00, 0x11]
        ),
    ]

    static let other: [GoldenVector] = [
        GoldenVector("PINGREQ", .v3_1, .pingreq, [0xC0, 0x00]),
        GoldenVector("PINGREQ", .v3_1_1, .pingreq, [0xC0, 0x00]),
        GoldenVector("PINGREQ", .v5, .pingreq, [0xC0, 0x00]),
        GoldenVector("PINGRESP", .v3_1_1, .pingresp, [0xD0, 0x00]),
        GoldenVector("PINGRESP", .v5, .pingresp, [0xD0, 0x00]),
        GoldenVector("DISCONNECT", .v3_1_1, .disconnect(.init()), [0xE0, 0x00]),
        GoldenVector("DISCONNECT short form", .v5, .disconnect(.init()), [0xE0, 0x00]),
        GoldenVector(
            "DISCONNECT session taken over",
            .v5,
            .disconnect(.init(reasonCode: .sessionTakenOver)),
            [0xE0, 0x01, 0x8E]
        ),
        GoldenVector(
            "DISCONNECT with will and session expiry",
            .v5,
            .disconnect(
                .init(reasonCode: .disconnectWithWillMessage,
                    properties: { var p = MQTTProperties(); p.sessionExpiryInterval = 0; return p }())
            ),
            [0xE0, 0x07, 0x04, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]
        ),
        GoldenVector("AUTH short form", .v5, .auth(.init()), [0xF0, 0x00]),
        GoldenVector(
            "AUTH continue",
            .v5,
            .auth(
                .init(
                    reasonCode: .continueAuthentication,
                    properties: {
                        var p = MQTTProperties()
                        p.authenticationMethod = "m"
                        p.authenticationData = payload([0x01])
                        return p
                    }()
                )
            ),
            [0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x01] + ascii("m") + [0x16, 0x00, 0x01, 0x01]
        ),
    ]
}

@Suite("Golden byte vectors")
struct GoldenVectorTests {
    @Test("encodes to the spec's bytes", arguments: GoldenVector.all)
    func encodes(vector: GoldenVector) throws {
        #expect(try encode(vector.packet, vector.version) == vector.bytes)
    }

    @Test("decodes the spec's bytes", arguments: GoldenVector.all)
    func decodes(vector: GoldenVector) throws {
        #expect(try decode(vector.bytes, vector.version) == vector.packet)
    }

    @Test("every packet type has a vector in every version that has it")
    func coverage() {
        for version in ProtocolVersion.allCases {
            let types = Set(GoldenVector.all.filter { $0.version == version }.map(\.packet.type))
            let expected = Set(PacketType.allCases.filter { $0 != .auth || version.isV5 })
            if version != .v3_1 {
                #expect(types == expected, "\(version) lacks \(expected.subtracting(types))")
            }
        }
    }

    @Test("a server learns the version from CONNECT [MQTT-3.1.2-1]", arguments: GoldenVector.connect)
    func serverLearnsVersion(vector: GoldenVector) throws {
        var parser = MQTTPacketParser()
        #expect(parser.version == nil)
        var input = buffer(vector.bytes + [0xC0, 0x00])
        #expect(try parser.parse(&input) == vector.packet)
        #expect(parser.version == vector.version)
        #expect(try parser.parse(&input) == .pingreq)
    }

    @Test("3.1.1 SUBACK writes any failure as 0x80 [MQTT-3.9.3-2]")
    func legacySubAckFailure() throws {
        let packet = MQTTPacket.suback(.init(packetIdentifier: 1, reasonCodes: [.grantedQoS2, .notAuthorized]))
        #expect(try encode(packet, .v3_1_1) == [0x90, 0x04, 0x00, 0x01, 0x02, 0x80])
    }

    @Test("3.1.1 leaves out MQTT 5 reason codes and properties")
    func legacyLeavesOutV5Fields() throws {
        var properties = MQTTProperties()
        properties.reasonString = "x"
        let ack = MQTTPacket.PubAck(packetIdentifier: 7, reasonCode: .notAuthorized, properties: properties)
        #expect(try encode(.puback(ack), .v3_1_1) == [0x40, 0x02, 0x00, 0x07])
        #expect(try encode(.disconnect(.init(reasonCode: .serverBusy)), .v3_1_1) == [0xE0, 0x00])
        #expect(try encode(.unsuback(.init(packetIdentifier: 3, reasonCodes: [.success])), .v3_1_1)
            == [0xB0, 0x02, 0x00, 0x03])
        #expect(try encode(.connack(.init(reasonCode: .banned)), .v3_1_1) == [0x20, 0x02, 0x00, 0x05])
    }

    @Test("a refusing CONNACK never has Session Present [MQTT-3.2.2-4, MQTT-3.2.2-6]")
    func refusingConnAckClearsSessionPresent() throws {
        let packet = MQTTPacket.connack(.init(sessionPresent: true, reasonCode: .serverUnavailable))
        #expect(try encode(packet, .v3_1_1) == [0x20, 0x02, 0x00, 0x03])
        #expect(try encode(packet, .v5) == [0x20, 0x03, 0x00, 0x88, 0x00])
    }
}
