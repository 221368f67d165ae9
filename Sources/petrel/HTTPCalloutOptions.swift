import ArgumentParser
import Logging
import NIOCore
import PetrelCore
import PetrelServer

/// `--http-auth-url` and `--http-acl-url`: connect and access decisions made by an HTTP service.
struct HTTPCalloutOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("Decide each CONNECT by a JSON POST to this URL (see docs/SECURITY.md).", valueName: "url")
    )
    var httpAuthUrl: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Decide each PUBLISH topic, SUBSCRIBE filter and will topic by a JSON POST to this URL.",
            valueName: "url"
        )
    )
    var httpAclUrl: String?

    @Option(name: .long, help: "Seconds to wait for the HTTP service's answer; none in time denies.")
    var httpTimeout: Double = 2

    @Option(name: .long, help: "Seconds an HTTP service's answer is kept and reused (0 asks every time).")
    var httpCacheSeconds: Double = 30

    @Option(name: .long, help: "The most answers kept, for connects and for access checks each.")
    var httpCacheSize: Int = 100_000

    @Option(
        name: .long,
        help: ArgumentHelp("A header sent with each HTTP callout, such as 'Authorization: Bearer TOKEN'.", valueName: "name: value")
    )
    var httpHeader: [String] = []

    func validate() throws {
        guard httpTimeout > 0 else { throw ValidationError("--http-timeout must be above 0") }
        guard httpCacheSeconds >= 0 else { throw ValidationError("--http-cache-seconds must be 0 or more") }
        guard httpCacheSize >= 1 else { throw ValidationError("--http-cache-size must be at least 1") }
        _ = try headers()
        for url in [httpAuthUrl, httpAclUrl].compactMap({ $0 }) {
            do {
                try HTTPCallout.validate(settings(url: url))
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    private func headers() throws -> [(name: String, value: String)] {
        try httpHeader.map { header in
            guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                throw ValidationError("--http-header \(header) is not 'Name: value'")
            }
            let name = header[..<colon].trimmingCharacters(in: .whitespaces)
            let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            return (name, value)
        }
    }

    private func settings(url: String) -> HTTPCallout.Settings {
        HTTPCallout.Settings(url: url, timeout: .nanoseconds(Int64(httpTimeout * 1e9)), headers: (try? headers()) ?? [])
    }

    private var cacheTimeToLive: TimeAmount { .nanoseconds(Int64(httpCacheSeconds * 1e9)) }

    var authenticator: HTTPAuthenticator? {
        httpAuthUrl.map {
            HTTPAuthenticator(callout: HTTPCallout(settings: settings(url: $0)), cacheTimeToLive: cacheTimeToLive, cacheCapacity: httpCacheSize)
        }
    }

    func authorizer(logger: Logger) -> HTTPAuthorizer? {
        httpAclUrl.map {
            HTTPAuthorizer(
                callout: HTTPCallout(settings: settings(url: $0)),
                cacheTimeToLive: cacheTimeToLive,
                cacheCapacity: httpCacheSize
            ) { request, reason in
                logger.warning(
                    "Access check denied: the HTTP service gave no answer",
                    metadata: [
                        "mqtt.client_id": "\(request.identity.clientIdentifier)",
                        "mqtt.topic": "\(request.topic)",
                        "error": "\(reason)",
                    ]
                )
            }
        }
    }
}
