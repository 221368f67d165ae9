/// One listener: an address, the transport MQTT is carried over there, and (for WebSockets) the HTTP path.
///
/// Written as a URL on the command line: `mqtt://0.0.0.0:1883`, `mqtts://0.0.0.0:8883`,
/// `ws://0.0.0.0:8080/mqtt`, `wss://[::]:8443/mqtt`.
public struct ListenerConfiguration: Sendable, Hashable, CustomStringConvertible {
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        /// MQTT over TCP.
        case mqtt
        /// MQTT over TLS over TCP.
        case mqtts
        /// MQTT over WebSockets (RFC 6455), MQTT 5.0 section 6.
        case ws
        /// MQTT over WebSockets over TLS.
        case wss

        public var usesTLS: Bool { self == .mqtts || self == .wss }
        public var usesWebSockets: Bool { self == .ws || self == .wss }

        /// The port a URL without one means (IANA's 1883 and 8883; the usual 8080 and 8443 for WebSockets).
        var defaultPort: Int {
            switch self {
            case .mqtt: 1883
            case .mqtts: 8883
            case .ws: 8080
            case .wss: 8443
            }
        }
    }

    public var transport: Transport
    /// An IP address or host name; `0.0.0.0` is every IPv4 interface, `::` every interface.
    public var host: String
    /// 0 picks a free port (the log line names the one bound).
    public var port: Int
    /// The HTTP path WebSocket clients upgrade on. Default: `/mqtt`.
    public var path: String

    public static let defaultWebSocketPath = "/mqtt"

    public init(transport: Transport, host: String, port: Int, path: String = Self.defaultWebSocketPath) {
        self.transport = transport
        self.host = host
        self.port = port
        self.path = path
    }

    /// Parses `SCHEME://HOST[:PORT][/PATH]`; IPv6 hosts are written in brackets.
    public init(url: String) throws(ListenerConfigurationError) {
        guard let schemeEnd = url.firstRange(of: "://") else { throw .init(url, "expected SCHEME://HOST:PORT") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard let transport = Transport(rawValue: scheme) else {
            throw .init(url, "unknown transport '\(scheme)' (mqtt, mqtts, ws or wss)")
        }
        var rest = url[schemeEnd.upperBound...]
        var path = Self.defaultWebSocketPath
        if let slash = rest.firstIndex(of: "/") {
            let given = String(rest[slash...])
            rest = rest[..<slash]
            if transport.usesWebSockets {
                path = given
            } else if given != "/" {
                throw .init(url, "a path is only meaningful for ws and wss")
            }
        }
        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .init(url, "unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .init(url, "expected :PORT after the address") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
            guard !host.contains(":") else { throw .init(url, "write IPv6 addresses in brackets: [::1]:1883") }
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw .init(url, "no host") }
        var port = transport.defaultPort
        if let portText {
            guard let value = Int(portText), (0...65535).contains(value) else {
                throw .init(url, "port must be between 0 and 65535")
            }
            port = value
        }
        self.init(transport: transport, host: String(host), port: port, path: path)
    }

    /// The listener as a URL, with `port` (the one bound, when known).
    public func url(port: Int? = nil) -> String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let address = "\(transport.rawValue)://\(shownHost):\(port ?? self.port)"
        return transport.usesWebSockets ? address + path : address
    }

    public var description: String { url() }
}

/// A `--listen` URL that cannot be understood.
public struct ListenerConfigurationError: Error, CustomStringConvertible, Sendable {
    public let url: String
    public let reason: String

    init(_ url: String, _ reason: String) {
        self.url = url
        self.reason = reason
    }

    public var description: String { "invalid listener '\(url)': \(reason)" }
}
