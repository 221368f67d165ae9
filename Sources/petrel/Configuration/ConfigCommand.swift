import ArgumentParser
import Foundation

/// `petrel config`: checking a configuration file, writing an example of one, and turning a Mosquitto
/// configuration into one.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check, write or convert configuration files.",
        subcommands: [Check.self, Show.self, Example.self, FromMosquitto.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file: each problem is printed with its line and key; exit 1 if any."
        )

        @Argument(help: ArgumentHelp("The YAML or JSON file.", valueName: "file"))
        var file: String

        func run() throws {
            let arguments = ServeArguments()
            let config = ConfigFile(path: file, catalog: arguments.catalog)
            let problems = config.problems + arguments.check(config)
            guard problems.isEmpty else {
                for problem in problems.sorted(by: { ($0.line ?? 0) < ($1.line ?? 0) }) { print(problem) }
                throw ExitCode(1)
            }
            print("\(file): valid (\(config.entries.count) keys)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the options `petrel serve` would run with, given these arguments and the environment.",
            discussion: "E.g. `petrel config show --config petrel.yaml --port 1884`."
        )

        @Argument(parsing: .allUnrecognized, help: "The arguments of `petrel serve`.")
        var serveArguments: [String] = []

        func run() throws {
            let arguments = ServeArguments()
            let expanded: [String]
            do {
                expanded = try arguments.expand(["serve"] + serveArguments, environment: ProcessInfo.processInfo.environment)
            } catch {
                print(error)
                throw ExitCode(1)
            }
            _ = try Serve.parse(Array(expanded.dropFirst()))
            for (key, value) in Self.options(Array(expanded.dropFirst()), catalog: arguments.catalog) {
                print("\(key): \(value)")
            }
        }

        /// The arguments as keys and values: the last value of a repeated option wins, a list gathers them.
        static func options(_ arguments: [String], catalog: ServeOptionCatalog) -> [(String, String)] {
            var scalars: [String: String] = [:]
            var lists: [String: [String]] = [:]
            var order: [String] = []
            var index = 0
            while index < arguments.count {
                var name = String(arguments[index].dropFirst(2))
                var inline: String?
                if let equals = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                index += 1
                var key = name
                var value: String
                if let option = catalog.option(name) ?? (name.hasPrefix("no-") ? catalog.option(String(name.dropFirst(3))) : nil) {
                    key = option.key
                    switch option.kind {
                    case .flag, .invertibleFlag:
                        value = name.hasPrefix("no-") ? "false" : "true"
                    case .value, .list:
                        value = inline ?? (index < arguments.count ? arguments[index] : "")
                        if inline == nil { index += 1 }
                    }
                    if !order.contains(key) { order.append(key) }
                    if option.kind == .list { lists[key, default: []].append(value) } else { scalars[key] = value }
                }
            }
            return order.map { key in
                if let list = lists[key] { return (key, "[" + list.map(MosquittoConversion.quoted).joined(separator: ", ") + "]") }
                return (key, MosquittoConversion.quoted(scalars[key] ?? ""))
            }
        }
    }

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a configuration file with every key, its default, and what it means."
        )

        func run() {
            print(ExampleConfiguration.text(ServeOptionCatalog()), terminator: "")
        }
    }
}
