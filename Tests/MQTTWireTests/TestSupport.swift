import MQTTWire
import NIOCore

/// The UTF-8 bytes of an ASCII string, to spell out packets readably.
func ascii(_ string: String) -> [UInt8] { Array(string.utf8) }

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func encode(_ packet: MQTTPacket, _ version: ProtocolVersion) throws -> [UInt8] {
    var buffer = ByteBuffer()
    let written = try buffer.writeMQTTPacket(packet, version: version)
    precondition(written == buffer.readableBytes, "writeMQTTPacket miscounted its bytes")
    return Array(buffer.readableBytesView)
}

/// Decodes exactly one packet that fills `bytes`, with a parser that knows `version`.
func decode(_ bytes: [UInt8], _ version: ProtocolVersion) throws -> MQTTPacket? {
    var parser = MQTTPacketParser(version: version)
    var input = buffer(bytes)
    let packet = try parser.parse(&input)
    precondition(packet == nil || input.readableBytes == 0, "bytes left after the packet")
    return packet
}

/// Decodes with a server-mode parser, which learns the version from CONNECT.
func decodeAsServer(_ bytes: [UInt8]) throws -> [MQTTPacket] {
    var parser = MQTTPacketParser()
    var input = buffer(bytes)
    var packets: [MQTTPacket] = []
    while let packet = try parser.parse(&input) { packets.append(packet) }
    return packets
}

func payload(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
