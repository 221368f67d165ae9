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
            for (key, value) in arguments.options(Array(expanded.dropFirst())) {
                print("\(key): \(value)")
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
