import ArgumentParser
import Configuration
import Foundation

/// The arguments `petrel serve` runs with: the configuration file's values (`--config FILE` or `PETREL_CONFIG`),
/// under the environment's `PETREL_<KEY>` (`PETREL_MAX_INFLIGHT=64`; lists comma-separated), under the
/// command line's own options, in that order. Each layer is a swift-configuration provider; what they give is
/// handed to swift-argument-parser as options, so a value from a file is checked exactly as the same flag is.
struct ServeArguments {
    struct Failure: Error, CustomStringConvertible {
        var problems: [ConfigFile.Problem]
        var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    let catalog = ServeOptionCatalog()

    /// `arguments` after the executable's name. Other subcommands pass through untouched.
    func expand(_ arguments: [String], environment: [String: String]) throws(Failure) -> [String] {
        guard let (prefix, serveArguments) = Self.serveArguments(arguments) else { return arguments }
        var commandLine = serveArguments
        var filePath = environment["PETREL_CONFIG"]
        // `--config` stays among the arguments: `serve` knows its file, and re-reads it on SIGHUP.
        if let index = commandLine.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            if commandLine[index] == "--config" {
                guard index + 1 < commandLine.count else { return arguments }  // swift-argument-parser says so
                filePath = commandLine[index + 1]
            } else {
                filePath = String(commandLine[index].dropFirst("--config=".count))
            }
        } else if let filePath {
            commandLine = ["--config", filePath] + commandLine
        }
        var file: ConfigFile?
        if let filePath {
            let loaded = ConfigFile(path: filePath, catalog: catalog)
            let problems = loaded.problems + check(loaded)
            guard problems.isEmpty else { throw Failure(problems: problems) }
            file = loaded
        }
        let layered = layeredOptions(file: file, environment: environment, except: Self.optionsGiven(in: commandLine))
        return prefix + layered + commandLine
    }

    /// The problems of a file beyond its own reading: a value its option refuses (each key is parsed alone, and
    /// a refusal that names that key alone is its own), then what the options together refuse, at the line of the
    /// first key the refusal names.
    func check(_ file: ConfigFile) -> [ConfigFile.Problem] {
        var problems: [ConfigFile.Problem] = []
        for (key, entry) in file.entries.sorted(by: { $0.key < $1.key }) {
            guard let option = catalog.option(key) else { continue }
            do {
                _ = try Serve.parse(Self.arguments(for: option, entry.value))
            } catch {
                let message = Self.message(for: error)
                if mentionedKeys(message) == [key] {
                    problems.append(ConfigFile.Problem(file: file.path, line: entry.line, key: key, message: message))
                }
            }
        }
        guard problems.isEmpty, file.problems.isEmpty else { return problems }
        let all = file.entries.keys.sorted().flatMap { key in
            catalog.option(key).map { Self.arguments(for: $0, file.entries[key]!.value) } ?? []
        }
        do {
            _ = try Serve.parse(all)
        } catch {
            let message = Self.message(for: error)
            let key = mentionedKeys(message).first { file.entries[$0] != nil } ?? ""
            problems.append(ConfigFile.Problem(file: file.path, line: file.entries[key]?.line, key: key, message: message))
        }
        return problems
    }

    /// The keys whose flags a message names (`--max-inflight`), in the order it names them.
    private func mentionedKeys(_ message: String) -> [String] {
        var keys: [String] = []
        var rest = message[...]
        while let range = rest.range(of: "--") {
            let name = rest[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" }
            let key = name.hasPrefix("no-") ? String(name.dropFirst(3)) : String(name)
            if catalog.option(key) != nil, !keys.contains(key) { keys.append(key) }
            rest = rest[range.upperBound...]
        }
        return keys
    }

    /// Options from the environment over those of the file, for every key the command line leaves alone.
    private func layeredOptions(file: ConfigFile?, environment: [String: String], except given: Set<String>) -> [String] {
        var fileValues: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, entry) in file?.entries ?? [:] {
            let content: ConfigContent =
                switch entry.value {
                case .scalar(let value): .string(value)
                case .list(let values): .stringArray(values)
                }
            fileValues[Self.configKey(key)] = ConfigValue(content, isSecret: Self.isSecret(key))
        }
        let reader = ConfigReader(providers: [
            EnvironmentVariablesProvider(
                environmentVariables: environment,
                secretsSpecifier: .dynamic { name, _ in name.contains("HEADER") || name.contains("TOKEN") }
            ),
            InMemoryProvider(name: "configuration file", values: fileValues),
        ])
        var arguments: [String] = []
        for option in catalog.options where !given.contains(option.key) {
            let key = ConfigKey(["petrel", option.key])
            switch option.kind {
            case .list:
                if let values = reader.stringArray(forKey: key), !values.isEmpty {
                    arguments += Self.arguments(for: option, .list(values))
                }
            case .value, .flag, .invertibleFlag:
                if let value = reader.string(forKey: key) {
                    arguments += Self.arguments(for: option, .scalar(value))
                }
            }
        }
        return arguments
    }

    /// The arguments as keys and values: the last value of a repeated option wins, a list gathers them.
    func options(_ arguments: [String]) -> [(String, String)] {
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

    static func configKey(_ key: String) -> AbsoluteConfigKey {
        AbsoluteConfigKey(["petrel", key])
    }

    static func isSecret(_ key: String) -> Bool {
        key.contains("header") || key.contains("token") || key.contains("password")
    }

    static func arguments(for option: ServeOptionCatalog.Option, _ value: ConfigFile.Value) -> [String] {
        switch (option.kind, value) {
        case (.list, .list(let values)):
            return values.flatMap { ["--\(option.key)", $0] }
        case (.list, .scalar(let value)):
            return value.split(separator: ",").flatMap { ["--\(option.key)", String($0)] }
        case (.value, .scalar(let value)):
            return ["--\(option.key)", value]
        case (.flag, .scalar(let value)):
            return ConfigFile.boolean(value) == true ? ["--\(option.key)"] : []
        case (.invertibleFlag, .scalar(let value)):
            guard let flag = ConfigFile.boolean(value) else { return ["--\(option.key)=\(value)"] }
            return [flag ? "--\(option.key)" : "--no-\(option.key)"]
        case (.value, .list(let values)), (.flag, .list(let values)), (.invertibleFlag, .list(let values)):
            return ["--\(option.key)", values.joined(separator: ",")]
        }
    }

    /// The arguments of `serve` and what precedes them, or nil for another subcommand.
    static func serveArguments(_ arguments: [String]) -> (prefix: [String], rest: [String])? {
        guard let first = arguments.first else { return ([], []) }
        if first == "serve" { return (["serve"], Array(arguments.dropFirst())) }
        // `petrel` alone, or with options only, is `petrel serve`.
        if first.hasPrefix("-"), !["-h", "--help", "--version", "--experimental-dump-help"].contains(first) {
            return ([], arguments)
        }
        return nil
    }

    /// Keys the command line sets itself (`--max-inflight 64`, `--max-inflight=64`, `--no-allow-anonymous`).
    static func optionsGiven(in arguments: [String]) -> Set<String> {
        var keys: Set<String> = []
        for argument in arguments where argument.hasPrefix("--") {
            var key = String(argument.dropFirst(2).prefix { $0 != "=" })
            if key.hasPrefix("no-") { key.removeFirst(3) }
            keys.insert(key)
        }
        return keys
    }

    /// swift-argument-parser's own words for what is wrong, on one line.
    static func message(for error: any Error) -> String {
        Serve.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}
