import ArgumentParser
import Foundation
import PetrelStorage

/// `petrel storage ...`: operator tasks on a data directory. Run them while the broker is stopped (stats and
/// export also work while it runs: they read a consistent snapshot).
struct StorageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Inspect, compact, export or import a data directory.",
        subcommands: [Stats.self, Compact.self, Export.self, Import.self]
    )

    struct Location: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("Directory of the database.", valueName: "dir"))
        var dataDir: String = "./petrel-data"
    }

    static func fail(_ error: any Error) -> ExitCode {
        FileHandle.standardError.write(Data("petrel: \(error)\n".utf8))
        return ExitCode(2)
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print row counts and file sizes.")
        @OptionGroup var location: Location

        func run() throws {
            do {
                let stats = try StorageMaintenance(directory: location.dataDir).statistics()
                print("schema \(stats.schemaVersion)")
                for (table, count) in stats.rows { print("\(table) \(count)") }
                print("file_bytes \(stats.fileBytes)")
                print("wal_bytes \(stats.walBytes)")
                print("free_bytes \(stats.freePages * stats.pageSize)")
            } catch {
                throw StorageCommand.fail(error)
            }
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Checkpoint the log and VACUUM the database.")
        @OptionGroup var location: Location

        func run() throws {
            do {
                let (before, after) = try StorageMaintenance(directory: location.dataDir).compact()
                print("compacted \(before) -> \(after) bytes")
            } catch {
                throw StorageCommand.fail(error)
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write every stored row as JSON lines.")
        @OptionGroup var location: Location
        @Option(name: .long, help: "File to write (default: standard output).")
        var output: String?

        func run() throws {
            do {
                let maintenance = try StorageMaintenance(directory: location.dataDir)
                let handle: FileHandle
                if let output {
                    guard FileManager.default.createFile(atPath: output, contents: nil),
                        let opened = FileHandle(forWritingAtPath: output)
                    else { throw ValidationError("cannot write \(output)") }
                    handle = opened
                } else {
                    handle = .standardOutput
                }
                let rows = try maintenance.export(to: handle)
                FileHandle.standardError.write(Data("exported \(rows) rows\n".utf8))
            } catch {
                throw StorageCommand.fail(error)
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load JSON lines written by export into an empty data directory.")
        @OptionGroup var location: Location
        @Option(name: .long, help: "File to read (default: standard input).")
        var input: String?

        func run() throws {
            do {
                let data: Data
                if let input {
                    data = try Data(contentsOf: URL(fileURLWithPath: input))
                } else {
                    data = FileHandle.standardInput.readDataToEndOfFile()
                }
                let rows = try StorageMaintenance(directory: location.dataDir, mustExist: false).importLines(from: data)
                print("imported \(rows) rows")
            } catch {
                throw StorageCommand.fail(error)
            }
        }
    }
}
