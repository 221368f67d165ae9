/// What the TLS listeners (`mqtts`, `wss`) present and ask of clients. Files are named, not loaded, so that a
/// reload (SIGHUP) reads them again; see `TLSContextStore`.
public struct TLSSettings: Sendable, Hashable {
    public enum Version: String, Sendable, Hashable, CaseIterable {
        case tls1_2 = "1.2"
        case tls1_3 = "1.3"
    }

    /// PEM: the server certificate, then any intermediates.
    public var certificatePath: String
    /// PEM: the private key (RSA or EC).
    public var privateKeyPath: String
    /// PEM: the certificate authorities client certificates are verified against. Without it no client
    /// certificate is asked for.
    public var clientCAPath: String?
    /// A client without a certificate the CA signed fails the handshake. Needs `clientCAPath`.
    public var requireClientCertificate = false
    /// The client certificate's subject CN (or, without one, its first Subject Alternative Name) is the user
    /// name authentication and authorization see; the CONNECT's user name and password are not checked. A
    /// client without a certificate is refused (CONNACK 0x87, 3.1.1: 0x05). Needs `clientCAPath`.
    public var useIdentityAsUsername = false
    /// Default: TLS 1.2. TLS 1.3 is always offered.
    public var minimumVersion: Version = .tls1_2
    /// OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not configurable); nil keeps swift-nio-ssl's.
    public var cipherSuites: String?

    public init(certificatePath: String, privateKeyPath: String) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }
}
