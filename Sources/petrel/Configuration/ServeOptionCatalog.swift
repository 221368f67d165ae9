import ArgumentParser
import Foundation

/// Every option of `petrel serve`, as a configuration key: the key is the flag's long name without its dashes
/// (`max-inflight`), so a file, the environment and the command line speak of the same things. The list is read
/// from the command's own definition (swift-argument-parser's description of it), so no option can be missing.
struct ServeOptionCatalog {
    struct Option {
        enum Kind {
            /// `--key VALUE`.
            case value
            /// `--key VALUE`, repeatable: a list in a file, comma-separated in the environment.
            case list
            /// `--key` when true.
            case flag
            /// `--key` when true, `--no-key` when false.
            case invertibleFlag
        }

        var key: String
        var kind: Kind
        var defaultValue: String?
        var help: String
        var valueName: String?
        var allowedValues: [String]?
    }

    /// Keys that are not options of `serve`: the file itself, and what only the command line has.
    static let notConfigurable: Set<String> = ["config", "help", "version", "experimental-dump-help"]

    let options: [Option]

    /// The part of swift-argument-parser's description of a command (`--experimental-dump-help`) read here.
    private struct ToolInfo: Decodable {
        struct Command: Decodable { var arguments: [Argument]? }
        struct Argument: Decodable {
            struct Name: Decodable {
                var kind: String
                var name: String
            }
            var kind: String
            var names: [Name]?
            var isRepeating: Bool
            var defaultValue: String?
            var abstract: String?
            var valueName: String?
            var allValues: [String]?
        }
        var command: Command
    }

    init() {
        let info = try? JSONDecoder().decode(ToolInfo.self, from: Data(Serve._dumpHelp().utf8))
        let arguments = info?.command.arguments ?? []
        let names = Set(arguments.flatMap { $0.names ?? [] }.filter { $0.kind == "long" }.map(\.name))
        var options: [Option] = []
        for argument in arguments where argument.kind != "positional" {
            guard let name = argument.names?.first(where: { $0.kind == "long" })?.name,
                !Self.notConfigurable.contains(name)
            else { continue }
            // `--no-allow-anonymous` is the `false` of `allow-anonymous`.
            if name.hasPrefix("no-"), names.contains(String(name.dropFirst(3))) { continue }
            let kind: Option.Kind
            if argument.kind == "flag" {
                kind = names.contains("no-" + name) ? .invertibleFlag : .flag
            } else {
                kind = argument.isRepeating ? .list : .value
            }
            options.append(
                Option(
                    key: name,
                    kind: kind,
                    defaultValue: argument.defaultValue,
                    help: argument.abstract ?? "",
                    valueName: argument.valueName,
                    allowedValues: argument.allValues
                )
            )
        }
        self.options = options
    }

    func option(_ key: String) -> Option? {
        options.first { $0.key == key }
    }
}
