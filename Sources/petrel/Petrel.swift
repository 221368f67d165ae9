import ArgumentParser

@main
struct Petrel: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "petrel",
        abstract: "Petrel, an MQTT broker for MQTT 3.1, 3.1.1 and 5.0.",
        version: version,
        subcommands: [Serve.self, Passwd.self, StorageCommand.self],
        defaultSubcommand: Serve.self
    )
}
