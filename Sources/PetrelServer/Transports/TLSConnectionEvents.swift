#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// The user name a connection's transport proved (the client certificate's, with
/// `--tls-use-identity-as-username`), sent up the pipeline as a user event before any MQTT byte; nil when the
/// client presented no certificate.
struct TransportIdentity: Sendable {
    var username: String?
}

/// Sits behind the TLS handler of a connection: logs a refused handshake with its reason (an expired or
/// untrusted client certificate, a protocol version below the minimum, a client speaking plain MQTT), and
/// with `useIdentityAsUsername` tells the MQTT handler who the certificate names once the handshake is done.
///
/// A connection closed before its handshake completed (one that stalled until the connect timeout) is closed
/// at once: the half-close an MQTT connection ends with, which keeps reading what the peer still sends, has
/// nothing to deliver to a peer that has not finished the handshake.
final class TLSConnectionEvents: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let useIdentityAsUsername: Bool
    private let logger: Logger
    /// What the handshake proved, for an MQTT handler added after it (WebSockets upgrade later).
    private(set) var identity: TransportIdentity?
    private var handshakeCompleted = false

    init(useIdentityAsUsername: Bool, logger: Logger) {
        self.useIdentityAsUsername = useIdentityAsUsername
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { handshakeCompleted = true }
        if case TLSUserEvent.handshakeCompleted = event, useIdentityAsUsername {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            let identity = TransportIdentity(username: certificate.flatMap(Self.identity))
            self.identity = identity
            context.fireUserInboundEventTriggered(event)
            context.fireUserInboundEventTriggered(identity)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let failure = error as? NIOSSLError, case .handshakeFailed(let reason) = failure {
            let peer = context.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
            var metadata: Logger.Metadata = ["net.peer": "\(peer)", "tls.error": "\(reason)"]
            // BoringSSL says only that verification failed: the certificate itself tells why.
            if let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate {
                metadata["tls.client_certificate"] = "\(Self.identity(of: certificate) ?? "unnamed")"
                metadata["tls.reason"] = "\(Self.problem(with: certificate))"
            }
            logger.warning("TLS handshake failed", metadata: metadata)
        }
        context.fireErrorCaught(error)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        context.close(mode: handshakeCompleted ? mode : .all, promise: promise)
    }

    /// Why a client certificate that failed verification may have failed, as far as the certificate shows.
    static func problem(with certificate: NIOSSLCertificate, now: time_t = time(nil)) -> String {
        if certificate.notValidAfter < now { return "certificate expired" }
        if certificate.notValidBefore > now { return "certificate not yet valid" }
        return "certificate not issued by a trusted CA (or its chain is incomplete)"
    }

    /// The subject's common name, or without one the first DNS name, email address or URI of the Subject
    /// Alternative Name extension, as Mosquitto's `use_identity_as_username` does with the CN.
    static func identity(of certificate: NIOSSLCertificate) -> String? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
            return nil
        }
        for relativeName in parsed.subject.reversed() {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value), !name.isEmpty { return name }
            }
        }
        guard let names = try? parsed.extensions.subjectAlternativeNames else { return nil }
        for name in names {
            switch name {
            case .dnsName(let value), .rfc822Name(let value), .uniformResourceIdentifier(let value):
                if !value.isEmpty { return value }
            default:
                continue
            }
        }
        return nil
    }
}
