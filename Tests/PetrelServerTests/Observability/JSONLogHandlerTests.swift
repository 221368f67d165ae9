import Foundation
import Logging
import Synchronization
import Testing

@testable import PetrelServer

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    private final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    private func object(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)
        return try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("One object per line: time, level, message, label and each metadata key, any text escaped")
    func fields() throws {
        let lines = Lines()
        let level = RuntimeLogLevel(.info)
        let logger = Logger(label: "petrel") { JSONLogHandler(label: $0, level: level, write: lines.append) }
        logger.info(
            "Client connected",
            metadata: [
                "mqtt.client_id": "sensor \"7\"\n\u{1}é",
                "mqtt.keep_alive": "60",
                "nested": ["a": ["1", "2"]],
            ]
        )
        logger.debug("not shown at info")
        #expect(lines.all.count == 1)
        let fields = try object(lines.all[0])
        #expect(fields["message"] as? String == "Client connected")
        #expect(fields["level"] as? String == "info")
        #expect(fields["label"] as? String == "petrel")
        #expect(fields["mqtt.client_id"] as? String == "sensor \"7\"\n\u{1}é")
        #expect(fields["mqtt.keep_alive"] as? String == "60")
        #expect((fields["nested"] as? [String: [String]])?["a"] == ["1", "2"])
        let time = try #require(fields["time"] as? String)
        #expect(time.hasSuffix("Z") && time.contains("T") && time.contains("."))
    }

    @Test("The level can change while running; a logger's own level stays its own")
    func runtimeLevel() {
        let lines = Lines()
        let level = RuntimeLogLevel(.info)
        let logger = Logger(label: "petrel") { JSONLogHandler(label: $0, level: level, write: lines.append) }
        var quiet = logger
        quiet.logLevel = .error
        logger.debug("hidden")
        level.current = .debug
        logger.debug("shown")
        quiet.warning("still hidden")
        #expect(lines.all.count == 1)
        #expect(logger.logLevel == .debug)
    }
}
