import Foundation
import ArgumentParser

/// `petrel config from-mosquitto`: a Mosquitto configuration file as a Petrel one. Each Mosquitto line either
/// becomes a key, or is named in the output (and on standard error) with the reason it has no counterpart.
struct MosquittoConversion {
    struct Unmapped: Equatable {
        var line: Int
        var text: String
        var reason: String
    }

    /// One `listener` block (or the default listener of `port` and `bind_address`).
    private struct Listener {
        var port: Int
        var host: String?
        var webSockets = false
        var tls = false
        var line: Int
    }

    private(set) var keys: [(String, String)] = []
    private(set) var unmapped: [Unmapped] = []
    private var listeners: [Listener] = []
    private var defaultListener: Listener?
    private var tlsFiles: [String: String] = [:]

    init(text: String) {
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            convert(words, line: index + 1, text: line)
        }
        finish()
    }

    private mutating func convert(_ words: [String], line: Int, text: String) {
        let name = words[0]
        let value = words.count > 1 ? words[1...].joined(separator: " ") : ""
        func set(_ key: String, _ converted: String) { keys.append((key, converted)) }
        func skip(_ reason: String) { unmapped.append(Unmapped(line: line, text: text, reason: reason)) }
        func boolean() -> String? { ["true", "false"].contains(value) ? value : nil }
        func number() -> Int? { Int(value) }

        switch name {
        case "listener":
            guard words.count >= 2, let port = Int(words[1]) else { return skip("a listener needs a port") }
            listeners.append(Listener(port: port, host: words.count > 2 ? words[2] : nil, line: line))
        case "port":
            guard let port = number() else { return skip("not a port number") }
            if defaultListener == nil { defaultListener = Listener(port: port, line: line) } else { defaultListener!.port = port }
        case "bind_address":
            if defaultListener == nil { defaultListener = Listener(port: 1883, line: line) }
            defaultListener!.host = value
        case "protocol":
            guard value == "websockets" || value == "mqtt" else { return skip("Petrel listens for mqtt and websockets") }
            guard !listeners.isEmpty else { return skip("protocol outside a listener block") }
            listeners[listeners.count - 1].webSockets = value == "websockets"
        case "cafile", "certfile", "keyfile":
            let key = ["cafile": "tls-ca", "certfile": "tls-cert", "keyfile": "tls-key"][name]!
            if let earlier = tlsFiles[key], earlier != value {
                return skip("Petrel's TLS listeners share one \(key) (\(earlier), from an earlier listener)")
            }
            tlsFiles[key] = value
            if name == "certfile" {
                if !listeners.isEmpty { listeners[listeners.count - 1].tls = true } else { defaultListener?.tls = true }
            }
        case "require_certificate":
            guard let flag = boolean() else { return skip("expected true or false") }
            set("tls-require-client-cert", flag)
        case "use_identity_as_username":
            guard let flag = boolean() else { return skip("expected true or false") }
            set("tls-use-identity-as-username", flag)
        case "tls_version":
            switch value {
            case "tlsv1.2": set("tls-min-version", "\"1.2\"")
            case "tlsv1.3": set("tls-min-version", "\"1.3\"")
            default: skip("Petrel speaks TLS 1.2 and 1.3 only")
            }
        case "ciphers":
            set("tls-ciphers", Self.quoted(value))
        case "password_file":
            set("password-file", Self.quoted(value))
        case "acl_file":
            set("acl-file", Self.quoted(value))
        case "allow_anonymous":
            guard let flag = boolean() else { return skip("expected true or false") }
            set("allow-anonymous", flag)
        case "max_inflight_messages":
            guard let count = number() else { return skip("not a number") }
            // Mosquitto's 0 is no limit; Petrel's largest window is the protocol's.
            set("max-inflight", count == 0 ? "65535" : "\(count)")
        case "max_queued_messages":
            guard let count = number() else { return skip("not a number") }
            set("max-queued-messages", count == 0 ? "\(Int32.max)" : "\(count)")
        case "max_queued_bytes":
            guard let count = number() else { return skip("not a number") }
            if count > 0 { set("max-queued-bytes", "\(count)") }
        case "persistence":
            guard let flag = boolean() else { return skip("expected true or false") }
            set("storage", flag == "true" ? "sqlite" : "memory")
        case "persistence_location":
            set("data-dir", Self.quoted(value))
        case "message_size_limit", "max_packet_size":
            guard let size = number() else { return skip("not a number") }
            // Mosquitto's message_size_limit bounds the payload; Petrel bounds the whole packet, a little more.
            if size > 0 { set("max-packet-size", name == "message_size_limit" ? "\(size + 65_536 + 16)" : "\(size)") }
        case "max_keepalive":
            guard let seconds = number() else { return skip("not a number") }
            if seconds > 0 { set("max-keep-alive", "\(seconds)") }
        case "max_connections":
            guard let count = number() else { return skip("not a number") }
            if count > 0 { set("max-connections", "\(count)") }
        case "sys_interval":
            guard let seconds = number() else { return skip("not a number") }
            set("sys-interval", "\(seconds)")
        case "retain_available":
            skip("Petrel always keeps retained messages")
        case "log_dest", "log_type", "log_timestamp", "log_timestamp_format", "connection_messages":
            skip("Petrel logs to standard error (--log-level, --log-format)")
        case "pid_file", "user":
            skip("the service manager does this (deploy/petrel.service)")
        case "include_dir":
            skip("Petrel reads one file: merge the included files into this one")
        case "autosave_interval", "autosave_on_changes", "persistence_file":
            skip("Petrel's store commits every change (see --durability)")
        default:
            skip("no Petrel counterpart")
        }
    }

    private mutating func finish() {
        var all = listeners
        if let defaultListener { all.insert(defaultListener, at: 0) }
        let urls: [String] = all.map { listener in
            let transport = listener.webSockets ? (listener.tls ? "wss" : "ws") : (listener.tls ? "mqtts" : "mqtt")
            // Mosquitto listens on every interface unless told otherwise.
            let host = listener.host ?? "0.0.0.0"
            let path = listener.webSockets ? ", path: /mqtt" : ""
            return "{transport: \(transport), host: \(Self.quoted(host)), port: \(listener.port)\(path)}"
        }
        if !urls.isEmpty { keys.insert(("listeners", "[" + urls.joined(separator: ", ") + "]"), at: 0) }
        for (key, file) in tlsFiles.sorted(by: { $0.key < $1.key }) { keys.append((key, Self.quoted(file))) }
    }

    /// The Petrel file: the keys, then the lines left out.
    func yaml(source: String) -> String {
        var text = "# Converted from \(source) by `petrel config from-mosquitto`.\n"
        for (key, value) in keys { text += "\(key): \(value)\n" }
        if !unmapped.isEmpty {
            text += "\n# Not converted:\n"
            for line in unmapped { text += "#   line \(line.line): \(line.text)  (\(line.reason))\n" }
        }
        return text
    }

    static func quoted(_ value: String) -> String {
        let plain = value.allSatisfy { $0.isLetter || $0.isNumber || "/._-:".contains($0) } && !value.isEmpty
        return plain ? value : "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

extension ConfigCommand {
    struct FromMosquitto: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "from-mosquitto",
            abstract: "Print a Mosquitto configuration file as a Petrel one; lines without a counterpart are named."
        )

        @Argument(help: ArgumentHelp("The mosquitto.conf to convert.", valueName: "file"))
        var file: String

        @Option(name: .shortAndLong, help: ArgumentHelp("Write the result here instead of standard output.", valueName: "file"))
        var output: String?

        func run() throws {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read \(file)")
            }
            let conversion = MosquittoConversion(text: text)
            let yaml = conversion.yaml(source: file)
            for line in conversion.unmapped {
                FileHandle.standardError.write(Data("\(file):\(line.line): not converted: \(line.text) (\(line.reason))\n".utf8))
            }
            if let output {
                try yaml.write(toFile: output, atomically: true, encoding: .utf8)
            } else {
                print(yaml, terminator: "")
            }
        }
    }
}
