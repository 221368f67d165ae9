import Foundation
import PetrelServer
import Yams

/// A configuration file (YAML, or JSON, which YAML reads too): each key is a `serve` option's name, and
/// `listeners` a list of `{transport, host, port, path}`. Reading it checks every key and value; each problem
/// keeps its line, so that `petrel config check` can point at it.
struct ConfigFile {
    enum Value: Equatable {
        case scalar(String)
        case list([String])
    }

    struct Entry {
        var value: Value
        var line: Int?
    }

    struct Problem: Error, CustomStringConvertible, Equatable {
        var file: String
        var line: Int?
        var key: String
        var message: String

        var description: String {
            let place = line.map { "\(file):\($0)" } ?? file
            return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
        }
    }

    let path: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var problems: [Problem] = []

    static let listenerKeys = ["transport", "host", "port", "path"]

    /// Reads and checks `path`; an unreadable file or one that is not YAML is one problem.
    init(path: String, catalog: ServeOptionCatalog) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            self.init(path: path, text: "", catalog: catalog)
            problems.append(Problem(file: path, key: "", message: "cannot read the file"))
            return
        }
        self.init(path: path, text: text, catalog: catalog)
    }

    init(path: String, text: String, catalog: ServeOptionCatalog) {
        self.path = path
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let (line, problem) = Self.describe(error)
            problems.append(Problem(file: path, line: line, key: "", message: "not YAML or JSON: \(problem)"))
            return
        }
        guard let root else { return }  // An empty file sets nothing.
        guard let mapping = root.mapping else {
            problems.append(Problem(file: path, line: root.mark?.line, key: "", message: "expected keys and values"))
            return
        }
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line
            guard let key = keyNode.scalar?.string else {
                problems.append(Problem(file: path, line: line, key: "", message: "a key must be a name"))
                continue
            }
            guard seen.insert(key).inserted else {
                problems.append(Problem(file: path, line: line, key: key, message: "given twice"))
                continue
            }
            if key == "listeners" {
                addListeners(valueNode, line: line)
                continue
            }
            guard let option = catalog.option(key) else {
                problems.append(Problem(file: path, line: line, key: key, message: "unknown key"))
                continue
            }
            read(valueNode, for: option, line: line)
        }
    }

    private mutating func read(_ node: Node, for option: ServeOptionCatalog.Option, line: Int?) {
        let key = option.key
        switch option.kind {
        case .list:
            if let sequence = node.sequence {
                var values: [String] = []
                for element in sequence {
                    guard let scalar = element.scalar?.string else {
                        problems.append(Problem(file: path, line: element.mark?.line ?? line, key: key, message: "expected a list of values"))
                        return
                    }
                    values.append(scalar)
                }
                append(values, to: key, line: line)
            } else if let scalar = node.scalar?.string {
                append([scalar], to: key, line: line)
            } else {
                problems.append(Problem(file: path, line: line, key: key, message: "expected a value or a list of values"))
            }
        case .flag, .invertibleFlag:
            guard let scalar = node.scalar?.string, let flag = Self.boolean(scalar) else {
                problems.append(Problem(file: path, line: line, key: key, message: "expected true or false"))
                return
            }
            if option.kind == .flag && !flag && option.defaultValue == "true" {
                problems.append(Problem(file: path, line: line, key: key, message: "cannot be turned off"))
                return
            }
            entries[key] = Entry(value: .scalar(flag ? "true" : "false"), line: line)
        case .value:
            guard let scalar = node.scalar?.string else {
                problems.append(Problem(file: path, line: line, key: key, message: "expected a single value"))
                return
            }
            if let allowed = option.allowedValues, !allowed.isEmpty, !allowed.contains(scalar) {
                problems.append(
                    Problem(
                        file: path,
                        line: line,
                        key: key,
                        message: "'\(scalar)' is not one of \(allowed.joined(separator: ", "))"
                    )
                )
                return
            }
            entries[key] = Entry(value: .scalar(scalar), line: line)
        }
    }

    private mutating func append(_ values: [String], to key: String, line: Int?) {
        if case .list(let earlier)? = entries[key]?.value {
            entries[key] = Entry(value: .list(earlier + values), line: entries[key]?.line ?? line)
        } else {
            entries[key] = Entry(value: .list(values), line: line)
        }
    }

    /// `listeners: [{transport: mqtt, host: 0.0.0.0, port: 1883}, {transport: ws, port: 8080, path: /mqtt}]`,
    /// each one a `--listen` URL.
    private mutating func addListeners(_ node: Node, line: Int?) {
        guard let sequence = node.sequence else {
            problems.append(Problem(file: path, line: line, key: "listeners", message: "expected a list of listeners"))
            return
        }
        var urls: [String] = []
        for (index, element) in sequence.enumerated() {
            let place = "listeners[\(index)]"
            let elementLine = element.mark?.line ?? line
            guard let mapping = element.mapping else {
                problems.append(Problem(file: path, line: elementLine, key: place, message: "expected {transport, host, port, path}"))
                continue
            }
            var fields: [String: String] = [:]
            var broken = false
            for (keyNode, valueNode) in mapping {
                let name = keyNode.scalar?.string ?? "?"
                guard Self.listenerKeys.contains(name) else {
                    problems.append(
                        Problem(
                            file: path,
                            line: keyNode.mark?.line,
                            key: "\(place).\(name)",
                            message: "unknown key (a listener has \(Self.listenerKeys.joined(separator: ", ")))"
                        )
                    )
                    broken = true
                    continue
                }
                guard let value = valueNode.scalar?.string else {
                    problems.append(Problem(file: path, line: keyNode.mark?.line, key: "\(place).\(name)", message: "expected a single value"))
                    broken = true
                    continue
                }
                fields[name] = value
            }
            guard !broken else { continue }
            guard let transportName = fields["transport"] else {
                problems.append(Problem(file: path, line: elementLine, key: "\(place).transport", message: "missing (mqtt, mqtts, ws or wss)"))
                continue
            }
            guard let transport = ListenerConfiguration.Transport(rawValue: transportName) else {
                problems.append(Problem(file: path, line: elementLine, key: "\(place).transport", message: "'\(transportName)' is not one of mqtt, mqtts, ws, wss"))
                continue
            }
            var host = fields["host"] ?? "127.0.0.1"
            if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
            var url = "\(transport.rawValue)://\(host)"
            if let port = fields["port"] { url += ":\(port)" }
            if let path = fields["path"] {
                guard transport.usesWebSockets else {
                    problems.append(Problem(file: path, line: elementLine, key: "\(place).path", message: "only WebSocket listeners (ws, wss) have a path"))
                    continue
                }
                url += path.hasPrefix("/") ? path : "/" + path
            }
            do {
                _ = try ListenerConfiguration(url: url)
                urls.append(url)
            } catch {
                problems.append(Problem(file: path, line: elementLine, key: place, message: "\(error)"))
            }
        }
        append(urls, to: "listen", line: line)
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": true
        case "false", "no", "off": false
        default: nil
        }
    }

    /// Where a YAML error is and what it says, without the whole document Yams' description repeats.
    private static func describe(_ error: any Error) -> (Int?, String) {
        guard let error = error as? YamlError else { return (nil, "\(error)") }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return (mark.line, problem)
        case .duplicatedKeysInMapping(let duplicates, _):
            return (nil, "keys given twice: \(duplicates.joined(separator: ", "))")
        default:
            return (nil, "\(error)")
        }
    }
}
