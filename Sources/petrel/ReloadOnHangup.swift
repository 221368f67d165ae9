import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the files an operator may replace while the broker runs (the TLS certificate, key and CA, the
/// password file, the ACL file) on SIGHUP, as daemons do. A file that no longer loads is logged with why and
/// the old contents stay in use.
struct ReloadOnHangup: Service {
    /// One file (or set of files) to re-read.
    struct Reload: Sendable {
        /// What it is, for the log line: "the TLS certificate", "the ACL file".
        var name: String
        /// Loads and puts the new contents in use, or throws and leaves the old ones; returns what to log.
        var perform: @Sendable () throws -> Logger.Metadata
    }

    let reloads: [Reload]
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.notice("SIGHUP: reloading")
            for reload in reloads {
                do {
                    let metadata = try reload.perform()
                    logger.notice("Reloaded \(reload.name)", metadata: metadata)
                } catch {
                    logger.error("Reloading \(reload.name) failed; the previous one stays in use", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
