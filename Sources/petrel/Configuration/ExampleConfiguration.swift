/// A configuration file that names every key, commented out at its default, with its help text: what
/// `petrel config example` prints and docs/CONFIGURATION.md shows.
enum ExampleConfiguration {
    static func text(_ catalog: ServeOptionCatalog) -> String {
        var text = """
            # Petrel configuration: `petrel serve --config petrel.yaml` (or PETREL_CONFIG=petrel.yaml).
            # Every key is a `petrel serve` option without its dashes. The environment overrides a key as
            # PETREL_<KEY> (PETREL_MAX_INFLIGHT=64; lists comma-separated), and the command line overrides both.
            # Uncomment a key to set it; the value shown is the default.

            # Listeners: each {transport (mqtt, mqtts, ws, wss), host, port, path (WebSockets)}.
            # listeners:
            #   - {transport: mqtt, host: 0.0.0.0, port: 1883}
            #   - {transport: mqtts, host: 0.0.0.0, port: 8883}
            #   - {transport: ws, host: 0.0.0.0, port: 8080, path: /mqtt}


            """
        for option in catalog.options {
            for line in wrap(option.help, width: 110) { text += "# \(line)\n" }
            if let allowed = option.allowedValues, !allowed.isEmpty {
                text += "# One of: \(allowed.joined(separator: ", ")).\n"
            }
            text += "# \(option.key): \(example(option))\n\n"
        }
        return text
    }

    private static func example(_ option: ServeOptionCatalog.Option) -> String {
        switch option.kind {
        case .flag, .invertibleFlag:
            return option.defaultValue ?? "false"
        case .list:
            return "[]"
        case .value:
            guard let value = option.defaultValue else { return "<\(option.valueName ?? option.key)>  # unset" }
            return value.isEmpty || value.contains(": ") || value.hasPrefix("*") ? "\"\(value)\"" : value
        }
    }

    private static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty, current.count + word.count + 1 > width {
                lines.append(current)
                current = ""
            }
            current += current.isEmpty ? String(word) : " " + word
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }
}
