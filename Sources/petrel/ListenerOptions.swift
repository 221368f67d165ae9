import ArgumentParser
import PetrelServer

extension TLSSettings.Version: ExpressibleByArgument {}

/// The `serve` options that say where clients reach the broker, and over what.
struct ListenerOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            """
            A listener as a URL, repeatable: mqtt://HOST:PORT, mqtts://HOST:PORT (TLS), ws://HOST:PORT/PATH \
            (WebSockets), wss://HOST:PORT/PATH (WebSockets over TLS). PATH defaults to /mqtt; port 0 picks a \
            free one.
            """,
            valueName: "url"
        )
    )
    var listen: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            """
            Address of a plain MQTT listener; repeat for several. 0.0.0.0 is every IPv4 interface, :: every \
            interface. Default: 127.0.0.1, unless --listen is given.
            """,
            valueName: "address"
        )
    )
    var host: [String] = []

    @Option(name: .long, help: "TCP port of the --host listeners (0 picks a free one). Default: 1883.")
    var port: Int?

    @Option(name: .long, help: ArgumentHelp("PEM certificate chain of mqtts and wss listeners.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("PEM private key (RSA or EC) of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "PEM certificate authorities client certificates are verified against (clients may present one).",
            valueName: "file"
        )
    )
    var tlsCa: String?

    @Flag(name: .long, help: "With --tls-ca: refuse TLS clients without a valid certificate.")
    var tlsRequireClientCert = false

    @Flag(
        name: .long,
        help: """
            With --tls-ca: the client certificate's subject CN (or first Subject Alternative Name) is the user \
            name; the CONNECT's user name and password are not checked, and a client without a certificate is \
            refused.
            """
    )
    var tlsUseIdentityAsUsername = false

    @Option(name: .long, help: "Oldest TLS version accepted: 1.2 or 1.3.")
    var tlsMinVersion: TLSSettings.Version = .tls1_2

    @Option(name: .long, help: ArgumentHelp("OpenSSL cipher list for TLS 1.2.", valueName: "list"))
    var tlsCiphers: String?

    /// The listeners, in the order the log lines name them: the --host ones first.
    func listeners() throws -> (hosts: [String], port: Int, others: [ListenerConfiguration]) {
        let others = try listen.map { url in
            do {
                return try ListenerConfiguration(url: url)
            } catch {
                throw ValidationError("--listen: \(error)")
            }
        }
        let plainHosts = host.isEmpty && (others.isEmpty || port != nil) ? ["127.0.0.1"] : host
        return (plainHosts, port ?? 1883, others)
    }

    /// Nil without TLS files.
    var tlsSettings: TLSSettings? {
        guard let tlsCert, let tlsKey else { return nil }
        var settings = TLSSettings(certificatePath: tlsCert, privateKeyPath: tlsKey)
        settings.clientCAPath = tlsCa
        settings.requireClientCertificate = tlsRequireClientCert
        settings.useIdentityAsUsername = tlsUseIdentityAsUsername
        settings.minimumVersion = tlsMinVersion
        settings.cipherSuites = tlsCiphers
        return settings
    }

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
        let others = try listeners().others
        if others.contains(where: { $0.transport.usesTLS }), tlsCert == nil || tlsKey == nil {
            throw ValidationError("mqtts and wss listeners need --tls-cert and --tls-key")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if tlsCa == nil, tlsRequireClientCert || tlsUseIdentityAsUsername {
            throw ValidationError("--tls-require-client-cert and --tls-use-identity-as-username need --tls-ca")
        }
        for listener in others where listener.transport.usesWebSockets {
            guard listener.path.hasPrefix("/") else { throw ValidationError("--listen \(listener): path must start with /") }
        }
    }
}
