import MQTTWire
import PetrelCore
import Testing

@testable import PetrelServer

/// Acknowledgements wait for the store, and nothing the connection writes overtakes them [MQTT-4.6.0-2].
@Suite("Packets held for a store commit")
struct CommitHoldsTests {
    static func ack(_ identifier: UInt16) -> OutboundPacket {
        .packet(.puback(.init(packetIdentifier: identifier)))
    }

    static func identifiers(_ packets: [OutboundPacket]) -> [UInt16] {
        packets.compactMap { packet in
            guard case .packet(.puback(let ack)) = packet else { return nil }
            return ack.packetIdentifier
        }
    }

    @Test("With nothing held a packet goes at once")
    func nothingHeld() {
        var holds = CommitHolds()
        let queued = holds.queueBehind([Self.ack(1)])
        #expect(!queued)
        #expect(holds.isEmpty)
    }

    @Test("Packets behind a held acknowledgement wait for its commit and then go in order")
    func queuedBehind() {
        var holds = CommitHolds()
        let ticket = holds.hold([Self.ack(1)])
        let second = holds.queueBehind([Self.ack(2)])
        let third = holds.queueBehind([Self.ack(3)])
        #expect(second && third)
        #expect(!holds.isEmpty)
        let released = holds.committed(ticket)
        #expect(Self.identifiers(released) == [1, 2, 3])
        #expect(holds.isEmpty)
    }

    @Test("A later commit completing first releases nothing until the earlier one completes")
    func outOfOrderCommits() {
        var holds = CommitHolds()
        let first = holds.hold([Self.ack(1)])
        _ = holds.queueBehind([Self.ack(2)])
        let second = holds.hold([Self.ack(3)])
        _ = holds.queueBehind([Self.ack(4)])
        let early = holds.committed(second)
        #expect(early.isEmpty)
        let released = holds.committed(first)
        #expect(Self.identifiers(released) == [1, 2, 3, 4])
        #expect(holds.isEmpty)
    }

    @Test("Committing the first of two holds releases only what comes before the second")
    func partialRelease() {
        var holds = CommitHolds()
        let first = holds.hold([Self.ack(1)])
        let second = holds.hold([Self.ack(2)])
        let released = holds.committed(first)
        #expect(Self.identifiers(released) == [1])
        let queued = holds.queueBehind([Self.ack(3)])
        #expect(queued)
        let rest = holds.committed(second)
        #expect(Self.identifiers(rest) == [2, 3])
    }

    @Test("Dropped holds are never released")
    func removeAll() {
        var holds = CommitHolds()
        let ticket = holds.hold([Self.ack(1)])
        holds.removeAll()
        let released = holds.committed(ticket)
        #expect(released.isEmpty)
        let queued = holds.queueBehind([Self.ack(2)])
        #expect(!queued)
    }
}
