import Logging
import NIOCore
import NIOSSL

/// What a listener's transport puts in front of the MQTT handler, which is the same for every transport: it
/// reads and writes the MQTT byte stream as `ByteBuffer`s. `mqtt` adds nothing; `mqtts` a TLS handler;
/// `ws` HTTP with the WebSocket upgrade, then frames; `wss` both.
struct TransportPipeline: Sendable {
    let transport: ListenerConfiguration.Transport
    /// The WebSocket path.
    let path: String
    /// The TLS contexts, for `mqtts` and `wss`.
    let tls: TLSContextStore?
    /// WebSocket frames are bounded like MQTT packets: a frame longer than the largest packet accepted closes
    /// the connection (close code 1009) before it is buffered.
    let maximumFrameSize: Int
    /// How long a WebSocket connection may take to upgrade (the connect timeout).
    let upgradeTimeout: TimeAmount
    /// Bytes the MQTT handler leaves free in front of what it writes, for a frame header: NIOWebSocket
    /// writes the header there, so a frame is one buffer (and over TLS one record) rather than two.
    var outboundHeadroom: Int { transport.usesWebSockets ? 10 : 0 }
    let logger: Logger

    init(
        listener: ListenerConfiguration,
        tls: TLSContextStore?,
        maximumPacketSize: Int,
        upgradeTimeout: TimeAmount,
        logger: Logger
    ) {
        self.transport = listener.transport
        self.path = listener.path
        self.tls = tls
        // The largest packet plus the longest frame header (14 bytes), within what the decoder accepts.
        self.maximumFrameSize = min(maximumPacketSize + 14, Int(UInt32.max))
        self.upgradeTimeout = upgradeTimeout
        self.logger = logger
    }

    /// Builds the channel's pipeline on its event loop; `addMQTTHandler` adds the MQTT handler last, at once
    /// or (WebSockets) once the connection has upgraded.
    func configure(_ channel: any Channel, addMQTTHandler: @escaping @Sendable (any Channel) throws -> Void) throws {
        let pipeline = channel.pipeline.syncOperations
        if transport.usesTLS {
            guard let tls else { preconditionFailure("a TLS listener without TLS settings") }
            try pipeline.addHandler(NIOSSLServerHandler(context: tls.context))
            try pipeline.addHandler(
                TLSConnectionEvents(useIdentityAsUsername: tls.settings.useIdentityAsUsername, logger: logger)
            )
        }
        if transport.usesWebSockets {
            try WebSocketUpgrade.configure(
                channel,
                path: path,
                maximumFrameSize: maximumFrameSize,
                timeout: upgradeTimeout,
                upgraded: addMQTTHandler
            )
        } else {
            try addMQTTHandler(channel)
        }
    }
}
