import Logging
import PetrelServer
import ServiceLifecycle
import UnixSignals

/// Re-reads the files an operator may replace while the broker runs (the TLS certificate, key and CA) on
/// SIGHUP, as daemons do. A file that no longer loads is logged and the old one stays in use.
struct ReloadOnHangup: Service {
    let tls: TLSContextStore?
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.notice("SIGHUP: reloading")
            guard let tls else { continue }
            do {
                try tls.reload()
                logger.notice(
                    "Reloaded the TLS certificate",
                    metadata: ["tls.cert": "\(tls.settings.certificatePath)", "tls.key": "\(tls.settings.privateKeyPath)"]
                )
            } catch {
                logger.error("TLS reload failed; the previous certificate stays in use", metadata: ["error": "\(error)"])
            }
        }
    }
}
