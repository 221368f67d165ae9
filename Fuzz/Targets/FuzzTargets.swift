import MQTTWire
import NIOCore
import PetrelCore

/// What the fuzzers feed their inputs to (scripts/fuzz.sh builds them with libFuzzer), kept here so that the
/// corpus and every crash found run as regression tests too (`FuzzRegressionTests`).
public enum FuzzTargets {
    /// The packet decoder: the first byte picks the protocol version the parser assumes (or none: then it
    /// expects a CONNECT to tell), the rest is read as packets. Each packet decoded is encoded again and the
    /// encoding decoded once more: it must give the same packet.
    public static func packetDecoder(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        var parser: MQTTPacketParser
        switch selector % 4 {
        case 0: parser = MQTTPacketParser(maximumPacketSize: 1 << 16)
        case 1: parser = MQTTPacketParser(version: .v3_1, maximumPacketSize: 1 << 16)
        case 2: parser = MQTTPacketParser(version: .v3_1_1, maximumPacketSize: 1 << 16)
        default: parser = MQTTPacketParser(version: .v5, maximumPacketSize: 1 << 16)
        }
        var buffer = ByteBuffer(bytes: input.dropFirst())
        while true {
            let packet: MQTTPacket
            do {
                guard let parsed = try parser.parse(&buffer) else { return }
                packet = parsed
            } catch {
                return
            }
            guard let version = parser.version else { continue }
            var encoded = ByteBuffer()
            guard (try? encoded.writeMQTTPacket(packet, version: version)) != nil else { continue }
            var again = MQTTPacketParser(version: version, maximumPacketSize: MQTTPacketParser.largestPossiblePacketSize)
            let reparsed = try? again.parse(&encoded)
            precondition(reparsed == packet, "a decoded packet does not survive encoding: \(packet)")
        }
    }

    /// The connection state machine: the input is a packet stream (as for `packetDecoder`, without a version)
    /// spread over two connections to one broker by the low bit of a selector byte in front of each packet, with
    /// time moving on between packets; whatever the engine answers is encoded as the server would.
    public static func connection(_ input: [UInt8]) {
        var configuration = BrokerConfiguration()
        configuration.maximumQueuedMessages = 64
        configuration.maximumTopicLevels = 32
        configuration.maximumSubscriptionsPerSession = 64
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let broker = Broker(configuration: configuration, now: now)
        let wakers = [FuzzWaker(), FuzzWaker()]
        var machines = wakers.map {
            ConnectionStateMachine(broker: broker, waker: $0, remoteAddress: "192.0.2.1:1", now: now, random: SystemRandomNumberGenerator())
        }
        var parsers = [MQTTPacketParser(maximumPacketSize: 1 << 16), MQTTPacketParser(maximumPacketSize: 1 << 16)]
        var closed = [false, false]
        var rest = input[...]
        while let selector = rest.first {
            rest = rest.dropFirst()
            let side = Int(selector & 1)
            now = now + .milliseconds(Int64(selector >> 1) * 50)
            var buffer = ByteBuffer(bytes: rest)
            let before = buffer.readableBytes
            let packet: MQTTPacket?
            do {
                packet = try parsers[side].parse(&buffer)
            } catch let error as MQTTWireError {
                // The server answers and closes; so does the other connection, at the end.
                if !closed[side] { encode(machines[side].receiveError(error, reason: error.reasonCode, now: now), machines[side]) }
                break
            } catch {
                break
            }
            rest = rest.dropFirst(before - buffer.readableBytes)
            guard let packet else { break }
            // A closed connection reads nothing more, as the server's does not.
            if !closed[side] {
                let actions = machines[side].receive(packet, now: now)
                closed[side] = actions.close
                encode(actions, machines[side])
            }
            for index in machines.indices {
                encode(machines[index].deliverPending(now: now), machines[index])
                encode(machines[index].tick(now: now), machines[index])
            }
            _ = broker.tick(now: now)
        }
        for index in machines.indices { encode(machines[index].connectionClosed(now: now), machines[index]) }
        _ = closed
        _ = broker.tick(now: now + .seconds(3600))
    }

    private static func encode(_ actions: ConnectionActions, _ machine: ConnectionStateMachine) {
        let version = machine.protocolVersion ?? .v3_1_1
        var buffer = ByteBuffer()
        for outbound in actions.outbound {
            switch outbound {
            case .packet(let packet):
                _ = try? buffer.writeMQTTPacket(packet, version: version)
            case .publish(let publish):
                _ = try? buffer.writeMQTTPacket(.publish(publish.packet(for: version)), version: version)
            }
        }
    }
}

private final class FuzzWaker: DeliveryWaker {
    func wake() {}
}
