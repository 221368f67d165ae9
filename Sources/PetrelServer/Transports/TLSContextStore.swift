import NIOConcurrencyHelpers
import NIOSSL

/// The TLS context new connections are handed, read from the files `TLSSettings` names. `reload()` reads them
/// again (on SIGHUP): a connection takes the context current when it is accepted, so open connections keep
/// theirs, and a file that no longer loads leaves the last good context in place.
public final class TLSContextStore: Sendable {
    public let settings: TLSSettings
    private let current: NIOLockedValueBox<NIOSSLContext>

    /// Fails with the reason when a file is missing or is not valid PEM, or the key does not belong to the
    /// certificate.
    public init(settings: TLSSettings) throws {
        self.settings = settings
        self.current = NIOLockedValueBox(try Self.load(settings))
    }

    /// The context for a connection accepted now.
    var context: NIOSSLContext { self.current.withLockedValue { $0 } }

    /// Reads the files again and uses them for new connections; on an error the old context stays and the
    /// error is thrown for the caller to log.
    public func reload() throws {
        let fresh = try Self.load(self.settings)
        self.current.withLockedValue { $0 = fresh }
    }

    private static func load(_ settings: TLSSettings) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(settings.certificatePath)
        } catch {
            throw TLSFileError(path: settings.certificatePath, what: "certificate chain", underlying: error)
        }
        guard !chain.isEmpty else {
            throw TLSFileError(path: settings.certificatePath, what: "certificate chain", underlying: nil)
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: settings.privateKeyPath, format: .pem)
        } catch {
            throw TLSFileError(path: settings.privateKeyPath, what: "private key", underlying: error)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = settings.minimumVersion == .tls1_3 ? .tlsv13 : .tlsv12
        if let cipherSuites = settings.cipherSuites { configuration.cipherSuites = cipherSuites }
        if let caPath = settings.clientCAPath {
            let authorities: [NIOSSLCertificate]
            do {
                authorities = try NIOSSLCertificate.fromPEMFile(caPath)
            } catch {
                throw TLSFileError(path: caPath, what: "CA certificates", underlying: error)
            }
            guard !authorities.isEmpty else { throw TLSFileError(path: caPath, what: "CA certificates", underlying: nil) }
            configuration.trustRoots = .certificates(authorities)
            // Clients pick the certificate to present by the CA names the server asks for.
            configuration.sendCANameList = true
            configuration.certificateVerification =
                settings.requireClientCertificate ? .noHostnameVerification : .optionalVerification
        } else {
            configuration.certificateVerification = .none
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(path: settings.certificatePath, what: "TLS configuration", underlying: error)
        }
    }
}

/// A TLS file that does not load, named with its path.
public struct TLSFileError: Error, CustomStringConvertible {
    public let path: String
    public let what: String
    public let underlying: (any Error)?

    public var description: String {
        guard let underlying else { return "cannot load the \(what) from \(path): no PEM entry found" }
        return "cannot load the \(what) from \(path): \(underlying)"
    }
}
