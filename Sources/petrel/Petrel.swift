import ArgumentParser
import Foundation

@main
struct Petrel: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "petrel",
        abstract: "Petrel, an MQTT broker for MQTT 3.1, 3.1.1 and 5.0.",
        version: version,
        subcommands: [Serve.self, Passwd.self, StorageCommand.self, ConfigCommand.self],
        defaultSubcommand: Serve.self
    )

    /// `serve` takes its options from a configuration file and the environment too (`ServeArguments`).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            await main(try ServeArguments().expand(arguments, environment: ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("petrel: the configuration is not valid:\n\(error)\n".utf8))
            Foundation.exit(2)
        }
    }
}
