import PetrelCore

/// Outbound packets that wait for a store commit, and everything the connection writes after them, in order.
///
/// A PUBACK or PUBREC is a promise that the message is kept: the engine hands it out together with a commit
/// ticket, and the acknowledgement is written only once the store has made the message durable. Packets that
/// follow a held one wait behind it, so that nothing overtakes an acknowledgement [MQTT-4.6.0-2]; commits may
/// complete in any order, and a packet is released once every ticket before it has committed.
struct CommitHolds {
    private var entries: [Entry] = []
    private var lastTicket: UInt64 = 0

    private struct Entry {
        var outbound: [OutboundPacket]
        /// The ticket still awaited; nil once committed (and for packets only queued behind a held one).
        var ticket: UInt64?
    }

    var isEmpty: Bool { entries.isEmpty }

    /// Holds `outbound` until the commit it waits for; returns the number `committed(_:)` is called with.
    mutating func hold(_ outbound: [OutboundPacket]) -> UInt64 {
        lastTicket &+= 1
        entries.append(Entry(outbound: outbound, ticket: lastTicket))
        return lastTicket
    }

    /// Queues `outbound` behind the held packets; false when nothing is held and it may be written at once.
    mutating func queueBehind(_ outbound: [OutboundPacket]) -> Bool {
        guard !entries.isEmpty else { return false }
        if !outbound.isEmpty { entries.append(Entry(outbound: outbound, ticket: nil)) }
        return true
    }

    /// Ticket `number` committed: the packets now free to go, in the order they were handed in.
    mutating func committed(_ number: UInt64) -> [OutboundPacket] {
        if let index = entries.firstIndex(where: { $0.ticket == number }) { entries[index].ticket = nil }
        var released = 0
        while released < entries.count, entries[released].ticket == nil { released += 1 }
        guard released > 0 else { return [] }
        let ready = entries[0..<released].flatMap(\.outbound)
        entries.removeFirst(released)
        return ready
    }

    /// The connection ends (or the store failed): held packets are never sent, and the client sends again.
    mutating func removeAll() {
        entries.removeAll()
    }
}
