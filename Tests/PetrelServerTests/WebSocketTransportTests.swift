import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOWebSocket
import Testing

@testable import PetrelServer

/// An embedded connection with the WebSocket transport in front of a handler that keeps what it reads.
private func webSocketChannel(maximumFrameSize: Int = 1024) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try WebSocketUpgrade.configure(
        channel,
        path: "/mqtt",
        maximumFrameSize: maximumFrameSize,
        timeout: .seconds(10),
        upgraded: { _ in }
    )
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).wait()
    return channel
}

private func request(_ lines: [String]) -> ByteBuffer {
    ByteBuffer(string: (lines + ["", ""]).joined(separator: "\r\n"))
}

private func upgradeRequest(path: String = "/mqtt", subprotocol: String? = "mqtt") -> ByteBuffer {
    var lines = [
        "GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ]
    if let subprotocol { lines.append("Sec-WebSocket-Protocol: \(subprotocol)") }
    return request(lines)
}

/// Hands bytes to the connection and lets the upgrade (future-based) finish. The upgrade handler also reports a
/// refused upgrade as an error, which an embedded channel rethrows: the answer is what matters here.
private func deliver(_ bytes: ByteBuffer, to channel: EmbeddedChannel) {
    _ = try? channel.writeInbound(bytes)
    channel.embeddedEventLoop.run()
}

/// Everything the server wrote, as text.
private func written(_ channel: EmbeddedChannel) throws -> String {
    var text = ""
    while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
        text += buffer.readString(length: buffer.readableBytes) ?? ""
    }
    return text
}

/// A masked client frame, as RFC 6455 section 5.3 requires of clients.
private func clientFrame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true) -> ByteBuffer {
    var frame = ByteBuffer()
    frame.writeInteger(UInt8((fin ? 0x80 : 0) | opcode.rawValue))
    precondition(bytes.count < 126)
    frame.writeInteger(UInt8(0x80 | bytes.count))
    let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
    frame.writeBytes(mask)
    frame.writeBytes(bytes.enumerated().map { $0.element ^ mask[$0.offset % 4] })
    return frame
}

extension WebSocketOpcode {
    fileprivate var rawValue: UInt8 {
        switch self {
        case .continuation: 0x0
        case .text: 0x1
        case .binary: 0x2
        case .connectionClose: 0x8
        case .ping: 0x9
        case .pong: 0xA
        default: 0xF
        }
    }
}

@Suite("MQTT over WebSockets: the upgrade")
struct WebSocketUpgradeTests {
    @Test("An upgrade on the path with the mqtt subprotocol is answered 101 with that subprotocol [MQTT-6.0.0-4]")
    func upgrades() throws {
        let channel = try webSocketChannel()
        deliver(upgradeRequest(subprotocol: "mqttv3.1, mqtt"), to: channel)
        let response = try written(channel)
        #expect(response.hasPrefix("HTTP/1.1 101"))
        #expect(response.lowercased().contains("sec-websocket-protocol: mqtt\r\n"))
        #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: WebSocketMQTTFrames.self) }
        _ = try? channel.finish()
    }

    @Test("Another path: 404, and the connection closes")
    func wrongPath() throws {
        let channel = try webSocketChannel()
        deliver(upgradeRequest(path: "/other"), to: channel)
        #expect(try written(channel).hasPrefix("HTTP/1.1 404"))
        #expect(!channel.isActive)
    }

    @Test("An upgrade without the mqtt subprotocol: 400 [MQTT-6.0.0-3]")
    func missingSubprotocol() throws {
        let channel = try webSocketChannel()
        deliver(upgradeRequest(subprotocol: nil), to: channel)
        #expect(try written(channel).hasPrefix("HTTP/1.1 400"))
        #expect(!channel.isActive)
    }

    @Test("A plain GET: 426 Upgrade Required")
    func plainRequest() throws {
        let channel = try webSocketChannel()
        deliver(request(["GET /mqtt HTTP/1.1", "Host: 127.0.0.1"]), to: channel)
        #expect(try written(channel).hasPrefix("HTTP/1.1 426"))
        #expect(!channel.isActive)
    }
}

@Suite("MQTT over WebSockets: frames")
struct WebSocketFrameTests {
    /// An upgraded connection: frames in, MQTT bytes out to the end of the pipeline.
    private func upgraded() throws -> EmbeddedChannel {
        let channel = try webSocketChannel(maximumFrameSize: 64)
        deliver(upgradeRequest(), to: channel)
        #expect(try written(channel).hasPrefix("HTTP/1.1 101"))
        return channel
    }

    private func readInboundBytes(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { bytes += Array(buffer.readableBytesView) }
        return bytes
    }

    /// The server's frames: opcode and payload (server frames are not masked).
    private func serverFrames(_ channel: EmbeddedChannel) throws -> [(UInt8, [UInt8])] {
        var all = ByteBuffer()
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&buffer) }
        var frames: [(UInt8, [UInt8])] = []
        while let first = all.readInteger(as: UInt8.self), let length = all.readInteger(as: UInt8.self) {
            frames.append((first & 0x0F, all.readBytes(length: Int(length & 0x7F)) ?? []))
        }
        return frames
    }

    @Test("Binary frames are one byte stream: a packet across frames, packets sharing one [MQTT-6.0.0-2]")
    func binaryFramesAreAStream() throws {
        let channel = try upgraded()
        try channel.writeInbound(clientFrame(.binary, [0x10, 0x02], fin: false))
        try channel.writeInbound(clientFrame(.continuation, [0xC0]))
        try channel.writeInbound(clientFrame(.binary, [0x00, 0xC0, 0x00]))
        #expect(try readInboundBytes(channel) == [0x10, 0x02, 0xC0, 0x00, 0xC0, 0x00])
        #expect(channel.isActive)
    }

    @Test("What the MQTT handler writes goes out as binary frames")
    func writesBinaryFrames() throws {
        let channel = try upgraded()
        try channel.writeOutbound(ByteBuffer(bytes: [0xD0, 0x00]))
        let frames = try serverFrames(channel)
        #expect(frames.count == 1)
        #expect(frames.first?.0 == 0x2)
        #expect(frames.first?.1 == [0xD0, 0x00])
    }

    @Test("A text frame closes the connection with 1003 [MQTT-6.0.0-1]")
    func textFrameCloses() throws {
        let channel = try upgraded()
        deliver(clientFrame(.text, Array("hello".utf8)), to: channel)
        let frames = try serverFrames(channel)
        #expect(frames.first?.0 == 0x8)
        #expect(frames.first?.1 == [0x03, 0xEB])
        #expect(!channel.isActive)
    }

    @Test("A ping is answered with a pong carrying its data")
    func pingPong() throws {
        let channel = try upgraded()
        deliver(clientFrame(.ping, [1, 2, 3]), to: channel)
        let frames = try serverFrames(channel)
        #expect(frames.first?.0 == 0xA)
        #expect(frames.first?.1 == [1, 2, 3])
    }

    @Test("A close frame is echoed and the connection ends")
    func closeIsEchoed() throws {
        let channel = try upgraded()
        deliver(clientFrame(.connectionClose, [0x03, 0xE8]), to: channel)
        let frames = try serverFrames(channel)
        #expect(frames.first?.0 == 0x8)
        #expect(frames.first?.1 == [0x03, 0xE8])
        #expect(!channel.isActive)
    }

    @Test("A frame larger than the bound closes the connection with 1009")
    func oversizedFrame() throws {
        let channel = try upgraded()
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(0x82))
        frame.writeInteger(UInt8(0x80 | 126))
        frame.writeInteger(UInt16(1000))
        frame.writeBytes([0, 0, 0, 0])
        deliver(frame, to: channel)
        let frames = try serverFrames(channel)
        #expect(frames.first?.0 == 0x8)
        #expect(frames.first?.1 == [0x03, 0xF1])
        #expect(!channel.isActive)
    }
}
